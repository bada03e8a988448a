-- Every journey that enters a stage has exactly one outcome there: before the last
-- stage it advanced, dropped or is in progress; at the last stage (loyalty) it is
-- completed. Journeys of no stage (the 'unclassified' rows) are only counted, with no
-- outcome. Returns the funnel rows whose outcome counts do not add up.

with funnel as (
    select * from {{ ref('agg_stage_funnel') }}
),

stages as (
    select * from {{ ref('dim_stages') }}
),

checked as (
    select
        funnel.period_start,
        funnel.first_touch_channel,
        funnel.stage,
        funnel.journeys_entered,
        funnel.journeys_advanced,
        funnel.journeys_dropped,
        funnel.journeys_in_progress,
        funnel.journeys_completed,
        stages.stage_order = 0 as is_unclassified,
        stages.next_stage is null and stages.stage_order > 0 as is_last_stage
    from funnel
    inner join stages on funnel.stage = stages.stage
)

select *
from checked
where
    (is_unclassified and (
        journeys_advanced + journeys_dropped + journeys_in_progress + journeys_completed <> 0
    ))
    or (not is_last_stage and not is_unclassified and (
        journeys_entered <> journeys_advanced + journeys_dropped + journeys_in_progress
        or journeys_completed <> 0
    ))
    or (is_last_stage and journeys_entered <> journeys_completed)
