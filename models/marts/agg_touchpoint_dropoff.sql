-- Per stage and touchpoint: how many journeys touched it, and how many of the
-- journeys that dropped had it as their last touch. A high exit rate marks the
-- place customers lose interest.
with touches as (
    select * from {{ ref('int_journey_touchpoints') }}
),

journeys as (
    select * from {{ ref('fct_journeys') }}
),

touchpoints as (
    select * from {{ ref('dim_touchpoints') }}
),

touching as (
    select
        stage,
        touchpoint_id,
        count(distinct journey_id) as journeys_touching,
        sum(event_count) as events
    from touches
    group by stage, touchpoint_id
),

last_touches as (
    select
        last_touch_stage as stage,
        last_touchpoint_id as touchpoint_id,
        count(*) filter (where status = 'dropped') as journeys_dropped_after,
        count(*) filter (where post_purchase_status = 'dropped')
            as post_purchase_dropped_after,
        count(*) filter (where status = 'in_progress' or post_purchase_status = 'in_progress')
            as journeys_in_progress_at
    from journeys
    group by all
),

final as (
    select
        touching.stage,
        touching.touchpoint_id,
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
        on touching.stage = last_touches.stage
        and touching.touchpoint_id = last_touches.touchpoint_id
    left join touchpoints on touching.touchpoint_id = touchpoints.touchpoint_id
)

select * from final
