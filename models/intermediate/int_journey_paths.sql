-- One row per journey, level and position: the journey's path at two levels.
--   touchpoint: runs of one touchpoint over its steps (a newsletter opened, then
--               clicked, is one position though the two steps differ in stage), as
--               they happened: customers go back and forth;
--   stage:      its progress through the stages (the furthest stage so far, which
--               never goes back), one position per stage reached, skipped stages
--               left out. Journeys that reach no stage (post-purchase activity
--               without an order) have no stage path, as in agg_stage_funnel.
-- Position 0 is the start node '(start)', and the position after the last step is
-- an end node named for the journey's status: '(drop-off)', '(converted)' or
-- '(in progress)'.
-- The inputs are read where used, not held in memory (see int_customers_changed).
with journeys as not materialized (
    select * from {{ ref('fct_journeys') }}
    where population in {{ var_list('funnel_populations') }}
),

-- The steps of journeys of the funnel populations only.
steps as not materialized (
    select * from {{ ref('int_journey_steps') }}
    where journey_id in (select journey_id from journeys)
),

stages as (
    select * from {{ ref('stages') }}
),

touchpoint_runs as (
    select
        *,
        case when lag(touchpoint_id) over by_step = touchpoint_id then 0 else 1 end
            as starts_run
    from steps
    window by_step as (partition by journey_id order by step_number)
),

touchpoint_positions as (
    select
        *,
        sum(starts_run) over (
            partition by journey_id order by step_number rows unbounded preceding
        ) as position
    from touchpoint_runs
),

stage_runs as (
    select
        *,
        case
            when lag(journey_stage_order_so_far) over by_step = journey_stage_order_so_far
                then 0
            else 1
        end as starts_run
    from steps
    where journey_stage_order_so_far >= 1
    window by_step as (partition by journey_id order by step_number)
),

stage_positions as (
    select
        *,
        sum(starts_run) over (
            partition by journey_id order by step_number rows unbounded preceding
        ) as position
    from stage_runs
),

step_nodes as (
    select
        'touchpoint' as level,
        journey_id,
        position,
        any_value(touchpoint_id) as node,
        'touchpoint' as node_kind,
        min(started_at) as started_at,
        max(ended_at) as ended_at
    from touchpoint_positions
    group by journey_id, position

    union all

    select
        'stage' as level,
        stage_positions.journey_id,
        stage_positions.position,
        any_value(stages.stage) as node,
        'stage' as node_kind,
        min(stage_positions.started_at) as started_at,
        max(stage_positions.ended_at) as ended_at
    from stage_positions
    inner join stages on stage_positions.journey_stage_order_so_far = stages.stage_order
    group by stage_positions.journey_id, stage_positions.position
),

starts as (
    select distinct
        level,
        journey_id,
        0 as position,
        '(start)' as node,
        'start' as node_kind,
        cast(null as timestamptz) as started_at,
        cast(null as timestamptz) as ended_at
    from step_nodes
),

ends as (
    select
        step_nodes.level,
        step_nodes.journey_id,
        max(step_nodes.position) + 1 as position,
        case any_value(journeys.status)
            when 'dropped' then '(drop-off)'
            when 'converted' then '(converted)'
            else '(in progress)'
        end as node,
        'end' as node_kind,
        cast(null as timestamptz) as started_at,
        cast(null as timestamptz) as ended_at
    from step_nodes
    inner join journeys on step_nodes.journey_id = journeys.journey_id
    group by step_nodes.level, step_nodes.journey_id
),

final as (
    select * from starts
    union all
    select * from step_nodes
    union all
    select * from ends
)

select * from final
