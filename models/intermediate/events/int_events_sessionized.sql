{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='delete+insert',
        pre_hook="{{ delete_merged_customers() }}",
        tags=['intermediate', 'events'],
    )
}}
-- depends_on: {{ ref('int_customers_changed') }} {{ ref('int_identity__customers') }}
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
--
-- A journey moves through the stages with its activity, but reaches the
-- post-purchase stages (experience, loyalty) only after a conversion in the same
-- journey: a review or a loyalty email opened in a journey without an order does
-- not make it a post-purchase journey.
--
-- An event belongs to the customer of its strongest identifier that merges (see
-- with_customer_node): a shared mailbox or a placeholder user id does not take the
-- event away from the person whose device it was seen with.
--
-- Incremental: customers whose activity or identity changed since the last
-- successful build are rebuilt whole; new company events of other customers are
-- added on their own.
with events as (
    select * from {{ ref('int_events') }}
),

identities as (
    select * from {{ ref('int_identity__customers') }}
),

not_merging as (
    select node from {{ ref('int_identity__overloaded') }}
),

events_with_customer_node as (
    {{ with_customer_node('events', 'not_merging') }}
),

{% if is_incremental() %}
changed_customers as (
    select * from {{ ref('int_customers_changed') }}
),
{% endif %}

customer_events as (
    select
        identities.customer_id,
        events.event_id,
        events.occurred_at,
        events.is_activity,
        events.is_conversion,
        events.is_post_purchase,
        events.stage_order,
        events.landing_date,
        {% if is_incremental() %}
        changed_customers.customer_id is not null as is_rebuilt
        {% else %}
        true as is_rebuilt
        {% endif %}
    from events_with_customer_node as events
    inner join identities on events.customer_node = identities.node
    {% if is_incremental() %}
    left join changed_customers on identities.customer_id = changed_customers.customer_id
    where changed_customers.customer_id is not null
        or (events.build_id > {{ last_success_build_id() }} and not events.is_activity)
    {% endif %}
),

-- Each step below orders a customer's activity the same way (time, then event id),
-- which keeps the number of sorts down.
activity as (
    select
        *,
        lag(occurred_at) over customer_timeline as previous_at
    from customer_events
    where is_activity and is_rebuilt
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
        count(*) filter (where starts_journey) over customer_so_far as journey_number,
        max(case when starts_journey then occurred_at end) over customer_so_far
            as journey_started_at,
        max(case when is_conversion then occurred_at end) over customer_so_far
            as last_conversion_at
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
        ) as starts_session,
        case
            when not is_post_purchase or last_conversion_at >= journey_started_at
                then stage_order
            else 0
        end as progress_stage_order
    from blocks
),

{#- the first event of the current session and journey, carried along the timeline -#}
{%- set session_first_event = "last_value(case when starts_session then event_id end ignore nulls) over customer_so_far" %}
{%- set journey_first_event = "last_value(case when starts_journey then event_id end ignore nulls) over customer_so_far" %}
activity_ids as (
    select
        customer_id,
        event_id,
        occurred_at,
        is_activity,
        landing_date,
        count(*) filter (where starts_session) over customer_so_far as session_number,
        journey_number,
        {{ short_id('ses', "customer_id || ':' || " ~ session_first_event) }} as session_id,
        {{ short_id('jny', "customer_id || ':' || " ~ journey_first_event) }} as journey_id,
        progress_stage_order,
        -- The furthest stage so far within the journey: journey numbers only grow,
        -- so a running maximum of (journey, stage) over the customer's timeline
        -- resets at each new journey.
        max(journey_number * 100 + progress_stage_order) over customer_so_far
            - journey_number * 100 as journey_stage_order_so_far
    from pieces
    window customer_so_far as (
        partition by customer_id order by occurred_at, event_id
        rows between unbounded preceding and current row
    )
),

company_events as (
    select * from customer_events
    where not is_activity
),

-- The activity company events are placed against: rebuilt customers' activity from
-- above, and, on an incremental night, the stored activity of customers who only
-- received company events.
known_activity as (
    select customer_id, occurred_at, journey_number, journey_id from activity_ids
    {% if is_incremental() %}
    union all
    select customer_id, occurred_at, journey_number, journey_id
    from {{ this }}
    where is_activity
        and customer_id in (
            select customer_id from company_events where not is_rebuilt
        )
    {% endif %}
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
        null::integer as progress_stage_order,
        null::bigint as journey_stage_order_so_far
    from company_events
    asof left join known_activity as latest
        on company_events.customer_id = latest.customer_id
        and company_events.occurred_at >= latest.occurred_at
),

final as (
    select *, {{ build_id() }} as build_id from activity_ids
    union all
    select *, {{ build_id() }} as build_id from company_in_journeys
)

select * from final
