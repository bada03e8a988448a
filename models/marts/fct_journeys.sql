-- One row per journey with its status as of the run date.
--   converted:   the journey holds a conversion (event_types.is_conversion: an order).
--   dropped:     it has no conversion and has had no activity for longer than
--                `journey_gap_days` before the end of the run date (a checkout that
--                was abandoned is a drop at the purchase stage).
--   in_progress: neither yet. Not past the cutoff, so never counted as dropped.
-- The post-purchase part of a converted journey has its own status: reached_loyalty,
-- dropped (inactive past the cutoff before loyalty) or in_progress.
with journeys as (
    select * from {{ ref('int_journeys') }}
),

stages as (
    select * from {{ ref('dim_stages') }}
),

statused as (
    select
        *,
        {{ run_end() }} - last_activity_at > {{ journey_gap() }} as is_past_cutoff
    from journeys
),

final as (
    select
        statused.journey_id,
        statused.customer_id,
        statused.journey_number,
        statused.started_at,
        statused.last_activity_at,
        epoch(statused.last_activity_at - statused.started_at) as duration_seconds,
        case
            when statused.converted_at is not null then 'converted'
            when statused.is_past_cutoff then 'dropped'
            else 'in_progress'
        end as status,
        case
            when statused.converted_at is null then null
            when statused.furthest_stage_order >= 5 then 'reached_loyalty'
            when statused.is_past_cutoff then 'dropped'
            else 'in_progress'
        end as post_purchase_status,
        furthest.stage as furthest_stage,
        statused.furthest_stage_order,
        last_stage.stage as last_touch_stage,
        statused.first_touchpoint_id,
        statused.first_touch_channel,
        statused.last_touchpoint_id,
        statused.session_count,
        statused.activity_event_count,
        statused.stage_1_entered_at as discovery_entered_at,
        statused.stage_2_entered_at as consideration_entered_at,
        statused.stage_3_entered_at as purchase_entered_at,
        statused.stage_4_entered_at as experience_entered_at,
        statused.stage_5_entered_at as loyalty_entered_at,
        statused.converted_at,
        epoch(statused.converted_at - statused.started_at) as seconds_to_conversion,
        statused.orders,
        statused.revenue,
        statused.reviews,
        statused.average_rating,
        epoch({{ run_end() }} - statused.last_activity_at) / 86400.0
            as days_since_last_activity,
        {{ run_date() }} as as_of_date
    from statused
    left join stages as furthest on statused.furthest_stage_order = furthest.stage_order
    left join stages as last_stage on statused.last_touch_stage_order = last_stage.stage_order
)

select * from final
