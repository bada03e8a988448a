-- One row per journey and stage it entered, with what happened next:
--   advanced:    the journey went on to a later stage;
--   dropped:     it stayed at this stage and is past the inactivity cutoff (before
--                purchase: the journey dropped; after purchase: the post-purchase
--                part did);
--   in_progress: it stays at this stage and is not past the cutoff;
--   completed:   loyalty, the last stage.
with journeys as (
    select * from {{ ref('fct_journeys') }}
),

stages as (
    select * from {{ ref('dim_stages') }}
    where stage_order > 0
),

entered as (
    select
        journeys.journey_id,
        journeys.customer_id,
        journeys.started_at as journey_started_at,
        journeys.first_touch_channel,
        journeys.status,
        journeys.post_purchase_status,
        journeys.furthest_stage_order,
        stages.stage,
        stages.stage_order,
        case stages.stage_order
            when 1 then journeys.discovery_entered_at
            when 2 then journeys.consideration_entered_at
            when 3 then journeys.purchase_entered_at
            when 4 then journeys.experience_entered_at
            when 5 then journeys.loyalty_entered_at
        end as entered_at,
        case stages.stage_order
            when 1 then journeys.consideration_entered_at
            when 2 then journeys.purchase_entered_at
            when 3 then journeys.experience_entered_at
            when 4 then journeys.loyalty_entered_at
        end as next_stage_entered_at
    from journeys
    inner join stages on journeys.furthest_stage_order >= stages.stage_order
),

final as (
    select
        journey_id,
        customer_id,
        journey_started_at,
        first_touch_channel,
        stage,
        stage_order,
        entered_at,
        next_stage_entered_at,
        epoch(next_stage_entered_at - entered_at) as seconds_to_next_stage,
        status = 'converted' as is_converted,
        case
            when stage_order = 5 then 'completed'
            when furthest_stage_order > stage_order then 'advanced'
            when coalesce(post_purchase_status, status) = 'dropped' then 'dropped'
            else 'in_progress'
        end as outcome
    from entered
)

select * from final
