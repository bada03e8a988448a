-- What customers did after leaving a checkout: an abandoned checkout is a session with
-- checkout activity (checkout started, a checkout step, payment details) and no order.
-- Each is followed to the same customer's next order, if any: after how long (in
-- buckets) and through which touchpoint (the entry touchpoint of the session of that
-- order). Without a later order it is 'not_yet' while the journey gap has not passed
-- since the abandonment (the customer may still come back), else 'never'. Per persona
-- scope ('all', then each persona), of the funnel's populations.
-- The events are read where used, not held in memory (see int_customers_changed).
with events as not materialized (
    select * from {{ ref('fct_journey_events') }}
    where session_id is not null
),

journeys as (
    select journey_id, population from {{ ref('fct_journeys') }}
),

sessions as (
    select session_id, entry_touchpoint_id from {{ ref('fct_sessions') }}
),

customers as (
    select customer_id, persona from {{ ref('dim_customers') }}
),

checkout_sessions as (
    select
        events.session_id,
        any_value(events.customer_id) as customer_id,
        any_value(events.journey_id) as journey_id,
        max(events.occurred_at) as left_at
    from events
    group by events.session_id
    having bool_or(
            events.event_type in (
                'checkout_started',
                'checkout_step_viewed',
                'checkout_step_completed',
                'payment_info_entered'
            )
        )
        and not bool_or(events.is_conversion)
),

abandoned as (
    select checkout_sessions.*
    from checkout_sessions
    inner join journeys on checkout_sessions.journey_id = journeys.journey_id
    where journeys.population in {{ var_list('funnel_populations') }}
),

orders as (
    select customer_id, session_id, occurred_at
    from events
    where is_conversion
),

next_order as (
    select
        abandoned.session_id,
        arg_min(orders.session_id, orders.occurred_at) as order_session_id,
        min(orders.occurred_at) as ordered_at
    from abandoned
    inner join orders
        on abandoned.customer_id = orders.customer_id
        and orders.occurred_at > abandoned.left_at
    group by abandoned.session_id
),

followed as (
    select
        abandoned.session_id,
        coalesce(customers.persona, 'other') as persona,
        case
            when next_order.ordered_at is not null then 'ordered_later'
            when {{ run_end() }} - abandoned.left_at <= {{ journey_gap() }} then 'not_yet'
            else 'never'
        end as outcome,
        coalesce(sessions.entry_touchpoint_id, 'none') as returned_through,
        epoch(next_order.ordered_at - abandoned.left_at) as seconds_to_order
    from abandoned
    left join next_order on abandoned.session_id = next_order.session_id
    left join sessions on next_order.order_session_id = sessions.session_id
    left join customers on abandoned.customer_id = customers.customer_id
),

bucketed as (
    select
        *,
        case
            when seconds_to_order is null then 'none'
            when seconds_to_order < 3600 then 'under 1 hour'
            when seconds_to_order < 86400 then '1-24 hours'
            when seconds_to_order < 3 * 86400 then '1-3 days'
            when seconds_to_order < 7 * 86400 then '3-7 days'
            when seconds_to_order < 30 * 86400 then '7-30 days'
            else '30 days or more'
        end as time_to_order
    from followed
),

scoped as (
    select 'all' as persona_scope, * from bucketed
    union all
    select persona as persona_scope, * from bucketed
),

final as (
    select
        persona_scope,
        outcome,
        returned_through,
        time_to_order,
        count(*) as abandoned_checkouts,
        count(*) / sum(count(*)) over (partition by persona_scope) as share_of_abandoned,
        round(median(seconds_to_order) / 3600.0, 4) as median_hours_to_order
    from scoped
    group by persona_scope, outcome, returned_through, time_to_order
)

select * from final
