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
        events.stage_order,
        events.landing_date
    from events
    inner join identities on events.identity_node = identities.node
    {% if is_incremental() %}
    where identities.customer_id in ({{ affected_customers() }})
    {% endif %}
),

-- Each step below orders a customer's activity the same way (time, then event id),
-- which keeps the number of sorts down.
activity as (
    select
        *,
        lag(occurred_at) over customer_timeline as previous_at
    from customer_events
    where is_activity
    window customer_timeline as (partition by customer_id order by occurred_at, event_id)
),

breaks as (
    select
        *,
        previous_at is null or occurred_at - previous_at > {{ session_gap() }} as starts_block,
        previous_at is null or occurred_at - previous_at > {{ journey_gap() }} as starts_journey
    from activity
),

blocks as (
    select
        *,
        max(case when starts_block then occurred_at end) over customer_so_far as block_started_at,
        count(*) filter (where starts_journey) over customer_so_far as journey_number
    from breaks
    window customer_so_far as (
        partition by customer_id order by occurred_at, event_id
        rows between unbounded preceding and current row
    )
),

-- A block longer than the cap is cut into cap-long pieces counted from its first
-- event: a session starts with a block or when the piece number changes.
pieces as (
    select
        *,
        starts_block or floor(
            epoch(occurred_at - block_started_at) / {{ session_cap_seconds() }}
        ) <> floor(
            epoch(previous_at - block_started_at) / {{ session_cap_seconds() }}
        ) as starts_session
    from blocks
),

numbered as (
    select
        customer_id,
        event_id,
        occurred_at,
        is_activity,
        landing_date,
        count(*) filter (where starts_session) over customer_so_far as session_number,
        journey_number,
        last_value(case when starts_session then event_id end ignore nulls)
            over customer_so_far as session_first_event_id,
        last_value(case when starts_journey then event_id end ignore nulls)
            over customer_so_far as journey_first_event_id,
        -- The furthest stage so far within the journey: journey numbers only grow,
        -- so a running maximum of (journey, stage) over the customer's timeline
        -- resets at each new journey.
        max(journey_number * 100 + stage_order) over customer_so_far
            - journey_number * 100 as journey_stage_order_so_far
    from pieces
    window customer_so_far as (
        partition by customer_id order by occurred_at, event_id
        rows between unbounded preceding and current row
    )
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
        {{ short_id('ses', "customer_id || ':' || session_first_event_id") }} as session_id,
        {{ short_id('jny', "customer_id || ':' || journey_first_event_id") }} as journey_id,
        journey_stage_order_so_far
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
        end as journey_id,
        null::bigint as journey_stage_order_so_far
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
