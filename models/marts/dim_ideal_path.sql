-- The ideal path journeys are compared with (the ideal_path seed), one row per step,
-- with the touchpoint's name, so that fct_journey_conformance.steps_followed and the
-- expected_* columns of agg_path_conformance can be read against it in a BI tool.
with ideal_path as (
    select * from {{ ref('ideal_path') }}
),

touchpoints as (
    select * from {{ ref('dim_touchpoints') }}
),

final as (
    select
        ideal_path.step,
        ideal_path.stage,
        ideal_path.touchpoint_id,
        touchpoints.touchpoint_name,
        ideal_path.label,
        ideal_path.description
    from ideal_path
    left join touchpoints on ideal_path.touchpoint_id = touchpoints.touchpoint_id
)

select * from final
