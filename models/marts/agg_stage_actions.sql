-- What customers do at each stage: per stage, persona and event type, the events
-- and the journeys that did it (the "actions" lane of the journey map).
with journey_events as (
    select * from {{ ref('fct_journey_events') }}
    where is_activity and journey_id is not null
),

customers as (
    select * from {{ ref('dim_customers') }}
),

event_types as (
    select * from {{ ref('event_types') }}
),

final as (
    select
        journey_events.stage,
        journey_events.stage_order,
        coalesce(customers.persona, 'other') as persona,
        journey_events.event_type,
        any_value(event_types.description) as event_description,
        count(*) as events,
        count(distinct journey_events.journey_id) as journeys,
        count(distinct journey_events.customer_id) as customers
    from journey_events
    left join customers on journey_events.customer_id = customers.customer_id
    left join event_types on journey_events.event_type = event_types.event_type
    group by journey_events.stage, journey_events.stage_order, 3, journey_events.event_type
)

select * from final
