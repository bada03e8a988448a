{{
    config(
        materialized='incremental',
        unique_key='customer_id',
        incremental_strategy='delete+insert',
        pre_hook="{{ delete_merged_customers() }}",
        tags=['intermediate', 'events'],
    )
}}
-- depends_on: {{ ref('int_events') }} {{ ref('int_identity__edges') }} {{ ref('int_identity__customers') }}
-- Each event with its customer, session and journey.
--
-- Sessions and journeys are made of customer activity (event_types.initiated_by =
-- 'customer'): a customer's activity, across every channel, ordered by time, starts
-- a new session after more than `session_gap_minutes` without activity, and a new
-- journey after more than `journey_gap_days`. A session longer than
-- `session_cap_hours` is cut into pieces of that length counted from its first event.
-- Company-initiated events (email sends, deliveries, bounces) have no session; they
-- belong to the journey of the customer's latest activity if that is less than the
-- journey gap before them.
with events as (
    select * from {{ ref('int_events') }}
),

identities as (
    select * from {{ ref('int_identity__customers') }}
),

customer_events as (
    select
        identities.customer_id,
        events.event_id,
        events.occurred_at,
        events.is_activity,
        events.landing_date
    from events
    inner join identities on events.identity_node = identities.node
    {% if is_incremental() %}
    where identities.customer_id in ({{ affected_customers() }})
    {% endif %}
),

activity as (
    select
        *,
        occurred_at - lag(occurred_at) over customer_timeline as gap
    from customer_events
    where is_activity
    window customer_timeline as (partition by customer_id order by occurred_at, event_id)
),

gap_breaks as (
    select
        *,
        count(*) filter (where gap is null or gap > {{ session_gap() }})
            over customer_so_far as activity_block,
        count(*) filter (where gap is null or gap > {{ journey_gap() }})
            over customer_so_far as journey_number
    from activity
    window customer_so_far as (
        partition by customer_id order by occurred_at, event_id
        rows between unbounded preceding and current row
    )
),

capped as (
    select
        *,
        floor(
            epoch(occurred_at - min(occurred_at) over (partition by customer_id, activity_block))
            / {{ session_cap_seconds() }}
        ) as cap_piece
    from gap_breaks
),

numbered as (
    select
        *,
        dense_rank() over (
            partition by customer_id order by activity_block, cap_piece
        ) as session_number
    from capped
),

activity_ids as (
    select
        customer_id,
        event_id,
        occurred_at,
        is_activity,
        landing_date,
        session_number,
        journey_number,
        {{ short_id('ses', "customer_id || ':' || first_value(event_id) over (partition by customer_id, session_number order by occurred_at, event_id)") }}
            as session_id,
        {{ short_id('jny', "customer_id || ':' || first_value(event_id) over (partition by customer_id, journey_number order by occurred_at, event_id)") }}
            as journey_id
    from numbered
),

company_events as (
    select * from customer_events
    where not is_activity
),

company_in_journeys as (
    select
        company_events.customer_id,
        company_events.event_id,
        company_events.occurred_at,
        company_events.is_activity,
        company_events.landing_date,
        null::bigint as session_number,
        case
            when company_events.occurred_at - latest.occurred_at <= {{ journey_gap() }}
                then latest.journey_number
        end as journey_number,
        null::varchar as session_id,
        case
            when company_events.occurred_at - latest.occurred_at <= {{ journey_gap() }}
                then latest.journey_id
        end as journey_id
    from company_events
    asof left join activity_ids as latest
        on company_events.customer_id = latest.customer_id
        and company_events.occurred_at >= latest.occurred_at
),

final as (
    select * from activity_ids
    union all
    select * from company_in_journeys
)

select * from final
