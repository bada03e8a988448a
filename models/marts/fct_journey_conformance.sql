-- One row per journey: how far it followed the ideal path (the ideal_path seed),
-- matched in order over the journey's steps (int_journey_steps). Step k is met by
-- the first step after the one that met step k - 1 whose stage (and touchpoint,
-- when the ideal step names one) match. conformance:
--   followed: every ideal step met, in order;
--   deviated: the next ideal step was not met, but a later one was, after the last
--             step met (the journey skipped it);
--   on_path:  no later step met yet, and the journey (or its post-purchase part)
--             is in progress: no deviation so far;
--   stopped:  no later step met and the journey is over (dropped, or converted and
--             done before the remaining post-purchase steps).
with steps as (
    select * from {{ ref('int_journey_steps') }}
),

journeys as (
    select * from {{ ref('fct_journeys') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

ideal as (
    select * from {{ ref('ideal_path') }}
),

path_length as (
    select count(*) as steps_in_path from ideal
),

-- Bit k - 1 of a step's mask is set when it meets ideal step k.
step_masks as (
    select
        steps.journey_id,
        steps.step_number,
        any_value(steps.touchpoint_id) as touchpoint_id,
        any_value(steps.stage) as stage,
        coalesce(bit_or(cast(1 as bigint) << (ideal.step - 1)), 0) as mask
    from steps
    left join ideal
        on steps.stage = ideal.stage
        and (ideal.touchpoint_id is null or steps.touchpoint_id = ideal.touchpoint_id)
    group by steps.journey_id, steps.step_number
),

sequences as (
    select
        journey_id,
        list(mask order by step_number) as masks,
        list(touchpoint_id order by step_number) as touchpoints,
        list(stage order by step_number) as stages
    from step_masks
    group by journey_id
),

-- Greedy in-order matching: the state holds the steps met so far (below 1000) and
-- 1000 x the position of the journey step that met the last of them.
matched as (
    select
        journey_id,
        masks,
        touchpoints,
        stages,
        list_reduce(
            masks,
            lambda state, mask, i: case
                when (mask >> (state % 1000)) & 1 = 1 then state % 1000 + 1 + 1000 * i
                else state
            end,
            cast(0 as bigint)
        ) as state
    from sequences
),

measured as (
    select
        journeys.journey_id,
        journeys.customer_id,
        journeys.status,
        journeys.post_purchase_outcome,
        journeys.population,
        path_length.steps_in_path,
        coalesce(matched.state % 1000, 0) as steps_followed,
        coalesce(matched.state // 1000, 0) as last_met_position,
        -- the ideal steps met anywhere after the last step met in order
        coalesce(
            list_aggregate(
                list_slice(matched.masks, coalesce(matched.state // 1000, 0) + 1, len(matched.masks)),
                'bit_or'
            ),
            0
        ) as later_mask,
        matched.touchpoints,
        matched.stages
    from journeys
    cross join path_length
    left join matched on journeys.journey_id = matched.journey_id
),

classified as (
    select
        *,
        case
            when steps_followed = steps_in_path then 'followed'
            when (later_mask >> (steps_followed + 1)) != 0 then 'deviated'
            when status = 'in_progress' or post_purchase_outcome = 'in_window' then 'on_path'
            else 'stopped'
        end as conformance
    from measured
),

final as (
    select
        classified.journey_id,
        classified.customer_id,
        coalesce(customers.persona, 'other') as persona,
        classified.population,
        classified.status,
        classified.steps_in_path,
        classified.steps_followed,
        classified.conformance = 'followed' as followed_ideal_path,
        classified.conformance,
        case when classified.conformance != 'followed' then classified.steps_followed + 1 end
            as deviation_step,
        expected.stage as expected_stage,
        expected.touchpoint_id as expected_touchpoint_id,
        expected.label as expected_label,
        case when classified.conformance != 'followed'
            then classified.touchpoints[classified.last_met_position + 1]
        end as deviation_touchpoint_id,
        case when classified.conformance != 'followed'
            then classified.stages[classified.last_met_position + 1]
        end as deviation_stage
    from classified
    left join customers on classified.customer_id = customers.customer_id
    left join ideal as expected
        on classified.conformance != 'followed'
        and expected.step = classified.steps_followed + 1
)

select * from final
