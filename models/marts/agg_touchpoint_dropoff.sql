-- Per population, stage, touchpoint and persona: how many journeys touched it (the
-- touchpoint's reach, unlinked voices included), and how many of the journeys that
-- dropped had it as their last touch. A high exit rate marks the place customers lose
-- interest; the report reads it for the funnel populations (known, anonymous) only.
-- After an order the drop is a lapse: the return window passed without a loyalty
-- signal.
with touches as (
    select * from {{ ref('int_journey_touchpoints') }}
),

journeys as (
    select * from {{ ref('fct_journeys') }}
),

touchpoints as (
    select * from {{ ref('dim_touchpoints') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

touching as (
    select
        journeys.population,
        touches.stage,
        touches.touchpoint_id,
        coalesce(customers.persona, 'other') as persona,
        count(distinct touches.journey_id) as journeys_touching,
        sum(touches.event_count) as events
    from touches
    inner join journeys on touches.journey_id = journeys.journey_id
    left join customers on touches.customer_id = customers.customer_id
    group by all
),

last_touches as (
    select
        journeys.population,
        journeys.last_touch_stage as stage,
        journeys.last_touchpoint_id as touchpoint_id,
        coalesce(customers.persona, 'other') as persona,
        count(*) filter (where journeys.status = 'dropped') as journeys_dropped_after,
        count(*) filter (where journeys.post_purchase_outcome = 'lapsed')
            as post_purchase_dropped_after,
        count(*) filter (
            where journeys.status = 'in_progress' or journeys.post_purchase_outcome = 'in_window'
        ) as journeys_in_progress_at
    from journeys
    left join customers on journeys.customer_id = customers.customer_id
    group by all
),

final as (
    select
        touching.population,
        touching.stage,
        touching.touchpoint_id,
        touching.persona,
        touchpoints.touchpoint_name,
        touchpoints.touchpoint_type,
        touchpoints.channel,
        touching.journeys_touching,
        touching.events,
        coalesce(last_touches.journeys_dropped_after, 0) as journeys_dropped_after,
        coalesce(last_touches.post_purchase_dropped_after, 0) as post_purchase_dropped_after,
        coalesce(last_touches.journeys_in_progress_at, 0) as journeys_in_progress_at,
        coalesce(last_touches.journeys_dropped_after, 0)
            / touching.journeys_touching as exit_rate,
        coalesce(last_touches.post_purchase_dropped_after, 0)
            / touching.journeys_touching as post_purchase_exit_rate
    from touching
    left join last_touches
        on touching.population = last_touches.population
        and touching.stage = last_touches.stage
        and touching.touchpoint_id = last_touches.touchpoint_id
        and touching.persona = last_touches.persona
    left join touchpoints on touching.touchpoint_id = touchpoints.touchpoint_id
)

select * from final
