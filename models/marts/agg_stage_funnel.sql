-- The stage funnel per journey-start period, population, first-touch channel and
-- persona. Journeys that skip a stage count as entering and advancing through it. The
-- drop-off rate is over journeys whose outcome at the stage is known
-- (advanced + dropped): in-progress journeys are right-censored, not failures. The
-- pre-purchase funnel (discovery to purchase: at purchase, advanced = ordered,
-- dropped = abandoned checkout) and the post-purchase one (experience: retained,
-- lapsed, in window) are told apart by `funnel`. Only the populations of
-- `funnel_populations` are counted; journeys that reached no stage are the
-- 'unclassified' rows.
with journey_stages as (
    select * from {{ ref('int_journey_stages') }}
    where population in {{ var_list('funnel_populations') }}
        or population = 'unclassified'
),

customers as (
    select * from {{ ref('dim_customers') }}
),

funnel as (
    select
        cast(date_trunc('{{ var("funnel_period") }}', journey_started_at) as date)
            as period_start,
        journey_stages.population,
        coalesce(journey_stages.first_touch_channel, 'unclassified') as first_touch_channel,
        coalesce(customers.persona, 'other') as persona,
        stage,
        stage_order,
        coalesce(funnel, 'unclassified') as funnel,
        count(*) as journeys_entered,
        count(*) filter (where outcome = 'advanced') as journeys_advanced,
        count(*) filter (where outcome = 'dropped') as journeys_dropped,
        count(*) filter (where outcome = 'in_progress') as journeys_in_progress,
        count(*) filter (where outcome = 'completed') as journeys_completed,
        count(*) filter (where is_converted) as journeys_converted,
        quantile_cont(seconds_to_next_stage, 0.5) / 3600.0 as median_hours_to_next_stage,
        quantile_cont(seconds_to_next_stage, 0.9) / 3600.0 as p90_hours_to_next_stage
    from journey_stages
    left join customers on journey_stages.customer_id = customers.customer_id
    group by all
),

final as (
    select
        period_start,
        '{{ var("funnel_period") }}' as period_grain,
        population,
        first_touch_channel,
        persona,
        stage,
        stage_order,
        funnel,
        journeys_entered,
        journeys_advanced,
        journeys_dropped,
        journeys_in_progress,
        journeys_completed,
        journeys_converted,
        journeys_dropped / nullif(journeys_advanced + journeys_dropped, 0) as drop_off_rate,
        journeys_advanced / nullif(journeys_entered, 0) as advance_rate,
        median_hours_to_next_stage,
        p90_hours_to_next_stage
    from funnel
)

select * from final
