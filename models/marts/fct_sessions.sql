{{
    config(
        materialized='incremental',
        unique_key='customer_id',
        incremental_strategy='delete+insert',
        pre_hook="{{ delete_merged_customers() }}",
        tags=['marts', 'sessions'],
    )
}}
-- depends_on: {{ ref('int_customers_changed') }} {{ ref('int_identity__customers') }}
with journey_events as (
    select * from {{ ref('fct_journey_events') }}
    where session_id is not null
    {% if is_incremental() %}
        and customer_id in (select customer_id from {{ ref('int_customers_changed') }})
    {% endif %}
),

stages as (
    select * from {{ ref('dim_stages') }}
),

sessions as (
    select
        session_id,
        any_value(customer_id) as customer_id,
        -- the journey of its first event: an event naming an earlier order belongs to
        -- that order's journey, and can share a session with the next journey's start
        arg_min(journey_id, (occurred_at, event_id)) as journey_id,
        any_value(session_number) as session_number,
        min(occurred_at) as started_at,
        max(occurred_at) as ended_at,
        count(*) as event_count,
        list_sort(list_distinct(list(channel))) as channels,
        list_sort(list_distinct(list(source))) as sources,
        arg_min(touchpoint_id, (occurred_at, event_id)) as entry_touchpoint_id,
        arg_max(touchpoint_id, (occurred_at, event_id)) as exit_touchpoint_id,
        max(stage_order) as furthest_stage_order,
        count(*) filter (where event_type = 'order_completed') as orders,
        -- Summed as decimal: money, and the same total whatever order rows arrive in.
        coalesce(sum(revenue::decimal(18, 2)) filter (where event_type = 'order_completed'), 0)
            as revenue,
        max(landing_date) as last_landing_date
    from journey_events
    group by session_id
),

final as (
    select
        sessions.session_id,
        sessions.customer_id,
        sessions.journey_id,
        sessions.session_number,
        sessions.started_at,
        sessions.ended_at,
        epoch(sessions.ended_at - sessions.started_at) as duration_seconds,
        sessions.event_count,
        sessions.channels,
        sessions.sources,
        sessions.entry_touchpoint_id,
        sessions.exit_touchpoint_id,
        stages.stage as furthest_stage,
        sessions.orders,
        sessions.revenue,
        sessions.last_landing_date
    from sessions
    left join stages on sessions.furthest_stage_order = stages.stage_order
)

select * from final
