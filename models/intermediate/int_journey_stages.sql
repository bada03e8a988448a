-- One row per journey and stage it entered, with what happened next. The two
-- funnels never mix:
--   before purchase (discovery, consideration, purchase):
--     advanced     the journey went on to a later stage; at purchase: it ordered
--                  (every journey with an order advanced through every stage before);
--     dropped      no order, and past the inactivity cutoff at this stage (at
--                  purchase: an abandoned checkout);
--     in_progress  no order, and not past the cutoff;
--   after purchase (converted journeys only):
--     experience   advanced (retained), dropped (lapsed: the return window passed
--                  without a loyalty signal) or in_progress (in the window);
--     loyalty      completed, the last stage.
-- Journeys of no stage (population unclassified) get one row at stage
-- 'unclassified' (order 0), outcome 'unclassified', so they are counted, not lost.
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
        journeys.population,
        journeys.started_at as journey_started_at,
        journeys.first_touch_channel,
        journeys.status,
        journeys.post_purchase_outcome,
        journeys.furthest_stage_order,
        stages.stage,
        stages.stage_order,
        stages.funnel,
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

staged as (
    select
        journey_id,
        customer_id,
        population,
        journey_started_at,
        first_touch_channel,
        stage,
        stage_order,
        funnel,
        entered_at,
        next_stage_entered_at,
        epoch(next_stage_entered_at - entered_at) as seconds_to_next_stage,
        status = 'converted' as is_converted,
        case
            when stage_order = 5 then 'completed'
            when furthest_stage_order > stage_order then 'advanced'
            when stage_order = 4 and post_purchase_outcome = 'lapsed' then 'dropped'
            when stage_order < 4 and status = 'dropped' then 'dropped'
            else 'in_progress'
        end as outcome
    from entered
),

unstaged as (
    select
        journey_id,
        customer_id,
        population,
        started_at as journey_started_at,
        first_touch_channel,
        'unclassified' as stage,
        0 as stage_order,
        null::varchar as funnel,
        started_at as entered_at,
        null::timestamptz as next_stage_entered_at,
        null::double as seconds_to_next_stage,
        false as is_converted,
        'unclassified' as outcome
    from journeys
    where furthest_stage_order = 0
)

select * from staged
union all by name
select * from unstaged
