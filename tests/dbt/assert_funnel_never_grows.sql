-- Within a period, population, first-touch channel and persona, no stage is entered by more journeys
-- than the stage before it, and the journeys entering a stage are exactly those
-- that advanced from the stage before (skipped stages count as entered). Returns
-- each offending pair of consecutive stages.

with funnel as (
    select * from {{ ref('agg_stage_funnel') }}
),

stages as (
    select * from {{ ref('dim_stages') }}
    where stage_order > 0
),

-- Every period, channel, persona and stage, with zeros for stages no journey entered.
grid as (
    select
        segments.period_start,
        segments.population,
        segments.first_touch_channel,
        segments.persona,
        stages.stage,
        stages.stage_order,
        coalesce(funnel.journeys_entered, 0) as journeys_entered,
        coalesce(funnel.journeys_advanced, 0) as journeys_advanced
    from (
        select distinct period_start, population, first_touch_channel, persona from funnel
        where stage != 'unclassified'
    ) as segments
    cross join stages
    left join funnel
        on segments.period_start = funnel.period_start
        and segments.population = funnel.population
        and segments.first_touch_channel = funnel.first_touch_channel
        and segments.persona = funnel.persona
        and stages.stage = funnel.stage
),

consecutive as (
    select
        previous.period_start,
        previous.population,
        previous.first_touch_channel,
        previous.persona,
        previous.stage,
        previous.journeys_entered,
        previous.journeys_advanced,
        following.stage as next_stage,
        following.journeys_entered as next_stage_journeys_entered
    from grid as previous
    inner join grid as following
        on previous.period_start = following.period_start
        and previous.population = following.population
        and previous.first_touch_channel = following.first_touch_channel
        and previous.persona = following.persona
        and following.stage_order = previous.stage_order + 1
)

select *
from consecutive
where next_stage_journeys_entered > journeys_entered
    or next_stage_journeys_entered <> journeys_advanced
