-- The most common deviations from the ideal path: per persona, conformance, the
-- ideal step not met and the touchpoint the journey went to instead (null when it
-- went nowhere), how many journeys and how many of them still converted.
-- Followed journeys are one row per persona with null deviation columns.
with conformance as (
    select * from {{ ref('fct_journey_conformance') }}
    where population in {{ var_list('funnel_populations') }}
),

touchpoints as (
    select * from {{ ref('dim_touchpoints') }}
),

counted as (
    select
        persona,
        conformance,
        deviation_step,
        any_value(expected_stage) as expected_stage,
        any_value(expected_touchpoint_id) as expected_touchpoint_id,
        any_value(expected_label) as expected_label,
        deviation_touchpoint_id,
        any_value(deviation_stage) as deviation_stage,
        count(*) as journeys,
        count(*) filter (where status = 'converted') as journeys_converted
    from conformance
    group by persona, conformance, deviation_step, deviation_touchpoint_id
),

final as (
    select
        counted.persona,
        counted.conformance,
        counted.deviation_step,
        counted.expected_stage,
        counted.expected_touchpoint_id,
        counted.expected_label,
        counted.deviation_touchpoint_id,
        touchpoints.touchpoint_name as deviation_touchpoint_name,
        counted.deviation_stage,
        counted.journeys,
        counted.journeys / sum(counted.journeys) over () as share_of_journeys,
        counted.journeys_converted,
        counted.journeys_converted / counted.journeys as conversion_rate
    from counted
    left join touchpoints on counted.deviation_touchpoint_id = touchpoints.touchpoint_id
)

select * from final
