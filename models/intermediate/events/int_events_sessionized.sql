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
-- An event that carries the order id of one of the customer's orders, at or after
-- that order (a delivery, a return, a review of the order, a support contact),
-- belongs to the order's journey whatever the gap: it neither starts a journey nor
-- keeps a later one going. Without an order id the time rules above apply.
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
        events.order_id,
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

-- Each customer's orders: the first conversion event carrying each order id.
orders as (
    select customer_id, order_id, min(occurred_at) as ordered_at
    from customer_events
    where is_conversion and is_rebuilt and order_id is not null
    group by customer_id, order_id
),

-- Each step below orders a customer's activity the same way (time, then event id),
-- which keeps the number of sorts down.
activity as (
    select
        customer_events.*,
        -- The event belongs to the journey of the order it names.
        orders.ordered_at is not null as follows_order,
        lag(customer_events.occurred_at) over customer_timeline as previous_at,
        -- the latest activity before this one that follows the time rules
        max(case when orders.ordered_at is null then customer_events.occurred_at end)
            over (customer_timeline rows between unbounded preceding and 1 preceding)
            as previous_free_at
    from customer_events
    left join orders
        on customer_events.customer_id = orders.customer_id
        and customer_events.order_id = orders.order_id
        and customer_events.occurred_at >= orders.ordered_at
        and not customer_events.is_conversion
    where customer_events.is_activity and customer_events.is_rebuilt
    window customer_timeline as (
        partition by customer_events.customer_id
        order by customer_events.occurred_at, customer_events.event_id
    )
),

breaks as (
    select
        *,
        previous_at is null or occurred_at - previous_at > {{ session_gap() }} as starts_block,
        not follows_order and (
            previous_free_at is null or occurred_at - previous_free_at > {{ journey_gap() }}
        ) as starts_journey
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
            when not is_post_purchase or follows_order or last_conversion_at >= journey_started_at
                then stage_order
            else 0
        end as progress_stage_order
    from blocks
),

{#- the first event of the current session and journey, carried along the timeline -#}
{%- set session_first_event = "last_value(case when starts_session then event_id end ignore nulls) over customer_so_far" %}
{%- set journey_first_event = "last_value(case when starts_journey then event_id end ignore nulls) over customer_so_far" %}
timeline_ids as (
    select
        customer_id,
        event_id,
        occurred_at,
        is_activity,
        landing_date,
        order_id,
        is_conversion,
        follows_order,
        count(*) filter (where starts_session) over customer_so_far as session_number,
        journey_number,
        {{ short_id('ses', "customer_id || ':' || " ~ session_first_event) }} as session_id,
        {{ short_id('jny', "customer_id || ':' || " ~ journey_first_event) }} as journey_id,
        progress_stage_order
    from pieces
    window customer_so_far as (
        partition by customer_id order by occurred_at, event_id
        rows between unbounded preceding and current row
    )
),

-- The journey of each order: the journey its conversion event is in.
order_journeys as (
    select
        customer_id,
        order_id,
        min(occurred_at) as ordered_at,
        arg_min(journey_number, (occurred_at, event_id)) as journey_number,
        arg_min(journey_id, (occurred_at, event_id)) as journey_id
    from timeline_ids
    where is_conversion and order_id is not null
    group by customer_id, order_id
),

in_journeys as (
    select
        timeline_ids.* exclude (journey_number, journey_id),
        case when timeline_ids.follows_order then order_journeys.journey_number
            else timeline_ids.journey_number end as journey_number,
        case when timeline_ids.follows_order then order_journeys.journey_id
            else timeline_ids.journey_id end as journey_id
    from timeline_ids
    left join order_journeys
        on timeline_ids.follows_order
        and timeline_ids.customer_id = order_journeys.customer_id
        and timeline_ids.order_id = order_journeys.order_id
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
        session_id,
        journey_id,
        progress_stage_order,
        -- The furthest stage so far within the journey.
        max(progress_stage_order) over (
            partition by customer_id, journey_number order by occurred_at, event_id
            rows between unbounded preceding and current row
        ) as journey_stage_order_so_far
    from in_journeys
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

-- The orders company events can name (a shipment, a delivery, an order email): rebuilt
-- customers' from above, and, on an incremental night, the stored ones of customers
-- who only received company events.
known_orders as (
    select customer_id, order_id, ordered_at, journey_number, journey_id from order_journeys
    {% if is_incremental() %}
    union all
    select
        stored.customer_id,
        events.order_id,
        min(stored.occurred_at) as ordered_at,
        arg_min(stored.journey_number, (stored.occurred_at, stored.event_id)) as journey_number,
        arg_min(stored.journey_id, (stored.occurred_at, stored.event_id)) as journey_id
    from {{ this }} as stored
    inner join events on stored.event_id = events.event_id
    where events.is_conversion
        and events.order_id is not null
        and stored.customer_id in (
            select customer_id from company_events where not is_rebuilt and order_id is not null
        )
    group by stored.customer_id, events.order_id
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
            when named_order.order_id is not null then named_order.journey_number
            when company_events.occurred_at - latest.occurred_at <= {{ journey_gap() }}
                then latest.journey_number
        end as journey_number,
        null::varchar as session_id,
        case
            when named_order.order_id is not null then named_order.journey_id
            when company_events.occurred_at - latest.occurred_at <= {{ journey_gap() }}
                then latest.journey_id
        end as journey_id,
        null::integer as progress_stage_order,
        null::bigint as journey_stage_order_so_far
    from company_events
    asof left join known_activity as latest
        on company_events.customer_id = latest.customer_id
        and company_events.occurred_at >= latest.occurred_at
    left join known_orders as named_order
        on company_events.customer_id = named_order.customer_id
        and company_events.order_id = named_order.order_id
        and company_events.occurred_at >= named_order.ordered_at
),

final as (
    select *, {{ build_id() }} as build_id from activity_ids
    union all
    select *, {{ build_id() }} as build_id from company_in_journeys
)

select * from final
