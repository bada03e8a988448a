{{
    config(
        materialized='incremental',
        unique_key=['node_a', 'node_b'],
        incremental_strategy='append',
        tags=['intermediate', 'identity'],
    )
}}
-- Edges of the identity graph: two identifiers seen together in one event or one crm
-- row. A node seen alone gets an edge to itself so it still becomes a customer.
-- One row per unordered pair, with the first landing date it was seen on and the
-- build that added it.
with events as (
    select * from {{ ref('int_events') }}
    {% if is_incremental() %}
    where build_id > {{ last_success_build_id() }}
    {% endif %}
),

crm as (
    select * from {{ ref('stg_crm__customers') }}
    {% if is_incremental() %}
    where landing_date >= {{ window_start() }}
    {% endif %}
),

event_pairs as (
    select
        identity_node as node_a,
        unnest([identity_node, user_node, email_node, handle_node, anonymous_node, order_node])
            as node_b,
        landing_date
    from events
),

crm_pairs as (
    select
        {{ identity_node('user', 'user_id') }} as node_a,
        unnest([
            {{ identity_node('user', 'user_id') }},
            {{ identity_node('email', 'email_sha256') }},
            {{ identity_node('handle', 'social_handle_sha256') }}
        ]) as node_b,
        landing_date
    from crm
    where user_id is not null
),

pairs as (
    select least(node_a, node_b) as node_a, greatest(node_a, node_b) as node_b, landing_date
    from (
        select * from event_pairs
        union all
        select * from crm_pairs
    )
    where node_b is not null
),

first_seen as (
    select node_a, node_b, min(landing_date) as first_landing_date, {{ build_id() }} as build_id
    from pairs
    group by node_a, node_b
),

final as (
    select first_seen.*
    from first_seen
    {% if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as known
        where known.node_a = first_seen.node_a and known.node_b = first_seen.node_b
    )
    {% endif %}
)

select * from final
