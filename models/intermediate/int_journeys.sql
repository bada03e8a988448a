{{
    config(
        materialized='incremental',
        unique_key='customer_id',
        incremental_strategy='delete+insert',
        pre_hook="{{ delete_merged_customers() }}",
        tags=['intermediate', 'journeys'],
    )
}}
-- depends_on: {{ ref('int_customers_changed') }} {{ ref('int_identity__customers') }}
-- One row per journey: what its activity reached and when (the furthest stage is the
-- journey's stage so far at its last event: post-purchase stages count only after a
-- conversion in the journey). Status depends on the run
-- date and is decided in fct_journeys, so this model only changes when events do.
with journey_events as (
    select * from {{ ref('fct_journey_events') }}
    where journey_id is not null
    {% if is_incremental() %}
        and customer_id in (select customer_id from {{ ref('int_customers_changed') }})
    {% endif %}
),

journeys as (
    select
        journey_id,
        any_value(customer_id) as customer_id,
        any_value(journey_number) as journey_number,
        min(occurred_at) filter (where is_activity) as started_at,
        max(occurred_at) filter (where is_activity) as last_activity_at,
        count(distinct session_id) as session_count,
        count(*) filter (where is_activity) as activity_event_count,
        arg_min(touchpoint_id, (occurred_at, event_id)) filter (where is_activity)
            as first_touchpoint_id,
        arg_min(channel, (occurred_at, event_id)) filter (where is_activity)
            as first_touch_channel,
        arg_max(touchpoint_id, (occurred_at, event_id)) filter (where is_activity)
            as last_touchpoint_id,
        arg_max(stage_order, (occurred_at, event_id)) filter (where is_activity)
            as last_touch_stage_order,
        coalesce(max(journey_stage_order_so_far), 0) as furthest_stage_order,
        min(occurred_at) filter (where is_activity and is_conversion) as converted_at,
        -- A stage is entered when the journey first reaches it or a later stage, so a
        -- skipped stage is entered and left at the same moment.
        {% for stage_order in range(1, 6) %}
        min(occurred_at) filter (where is_activity and journey_stage_order_so_far >= {{ stage_order }})
            as stage_{{ stage_order }}_entered_at,
        {% endfor %}
        -- Activity on the company's own channels (the site, email, orders, direct
        -- social touchpoints), as opposed to what customers say elsewhere.
        count(*) filter (
            where is_activity
                and not (source in {{ var_list('voice_sources') }} and touchpoint_type = 'indirect')
        ) as owned_activity_events,
        count(*) filter (where event_type = 'review_posted') as reviews,
        count(*) filter (where event_type = 'review_posted' and order_id is not null)
            as order_reviews,
        avg(rating) filter (where event_type = 'review_posted') as average_rating,
        max(landing_date) as last_landing_date
    from journey_events
    group by journey_id
),

-- Each order once: the site's order_completed and an orders export's can name the same
-- order id. The export's revenue wins (it has the items, freight and later changes);
-- a conversion without an order id is an order of its own.
order_values as (
    select
        journey_id,
        coalesce(order_id, event_id) as order_key,
        arg_min(revenue, (source != 'orders', occurred_at, event_id))
            filter (where revenue is not null) as revenue
    from journey_events
    where is_conversion
    group by journey_id, coalesce(order_id, event_id)
),

journey_orders as (
    select
        journey_id,
        count(*) as orders,
        -- Summed as decimal: money, and the same total whatever order rows arrive in.
        sum(revenue::decimal(18, 2)) as revenue
    from order_values
    group by journey_id
),

final as (
    select
        journeys.*,
        coalesce(journey_orders.orders, 0) as orders,
        coalesce(journey_orders.revenue, 0) as revenue
    from journeys
    left join journey_orders on journeys.journey_id = journey_orders.journey_id
)

select * from final
