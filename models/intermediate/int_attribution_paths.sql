-- The marketing touches of each journey whose outcome is known (converted or
-- dropped; journeys in progress are right-censored and left out), in order, at
-- the channel and the touchpoint level. A touch is a step off the company's site
-- (an ad, a search visit, an email, a post, a review) or a step that opens a
-- session on the site without one (channel 'direct'). For a converted journey only
-- the touches before its first conversion count. Consecutive touches of the same
-- node are one touch. A converted journey with no touch before the order has one
-- touch '(none)', so every conversion is credited somewhere.
with steps as (
    select * from {{ ref('int_journey_steps') }}
),

journeys as (
    select * from {{ ref('fct_journeys') }}
    where status in ('converted', 'dropped')
        and population in {{ var_list('funnel_populations') }}
),

touches as (
    select
        steps.journey_id,
        steps.step_number,
        steps.touchpoint_id,
        case when steps.channel = 'web' then 'direct' else steps.channel end as channel,
        steps.ended_at
    from steps
    inner join journeys on steps.journey_id = journeys.journey_id
    where (steps.channel != 'web' or steps.starts_session)
        and (journeys.converted_at is null or steps.started_at < journeys.converted_at)
),

by_level as (
    select 'touchpoint' as level, journey_id, step_number, touchpoint_id as node, channel, ended_at
    from touches
    union all
    select 'channel' as level, journey_id, step_number, channel as node, channel, ended_at
    from touches
),

run_starts as (
    select
        *,
        case when lag(node) over by_step = node then 0 else 1 end as starts_touch
    from by_level
    window by_step as (partition by level, journey_id order by step_number)
),

numbered as (
    select
        *,
        sum(starts_touch) over (
            partition by level, journey_id order by step_number rows unbounded preceding
        ) as touch_number
    from run_starts
),

collapsed as (
    select
        level,
        journey_id,
        touch_number,
        any_value(node) as node,
        any_value(channel) as channel,
        max(ended_at) as touched_at
    from numbered
    group by level, journey_id, touch_number
),

untouched as (
    select
        levels.level,
        journeys.journey_id,
        1 as touch_number,
        '(none)' as node,
        '(none)' as channel,
        journeys.started_at as touched_at
    from journeys
    cross join (values ('touchpoint'), ('channel')) as levels (level)
    where journeys.status = 'converted'
        and journeys.journey_id not in (select journey_id from collapsed)
),

paths as (
    select * from collapsed
    union all
    select * from untouched
),

final as (
    select
        paths.level,
        paths.journey_id,
        journeys.customer_id,
        paths.touch_number,
        count(*) over (partition by paths.level, paths.journey_id) as touches,
        paths.node,
        paths.channel,
        paths.touched_at,
        journeys.status,
        journeys.converted_at,
        journeys.revenue
    from paths
    inner join journeys on paths.journey_id = journeys.journey_id
)

select * from final
