-- How long journeys take: per persona scope ('all', then each persona) and step, the
-- distribution of the time from entering a stage to entering the next (journeys that
-- advanced), and of the time from a journey's start to its order (time to convert).
-- One row per bucket (every bucket, so a histogram has its empty bars), each carrying
-- the step's journeys and percentiles in hours (to 4 decimals: a third of a second). Journeys of the funnel's populations.
with journey_stages as (
    select * from {{ ref('int_journey_stages') }}
    where population in {{ var_list('funnel_populations') }}
        and outcome = 'advanced'
        and stage_order between 1 and 4
        and seconds_to_next_stage is not null
),

journeys as (
    select * from {{ ref('fct_journeys') }}
    where population in {{ var_list('funnel_populations') }}
        and status = 'converted'
        and seconds_to_conversion is not null
),

stages as (
    select stage, stage_order, next_stage from {{ ref('dim_stages') }}
),

customers as (
    select customer_id, persona from {{ ref('dim_customers') }}
),

steps as (
    select
        journey_stages.customer_id,
        journey_stages.stage as from_stage,
        stages.next_stage as to_stage,
        journey_stages.stage_order as step_order,
        journey_stages.seconds_to_next_stage as seconds
    from journey_stages
    inner join stages on journey_stages.stage = stages.stage
    union all
    select customer_id, 'start', 'order', 0, seconds_to_conversion
    from journeys
),

scoped as (
    select 'all' as persona_scope, steps.*
    from steps
    union all
    select coalesce(customers.persona, 'other'), steps.*
    from steps
    left join customers on steps.customer_id = customers.customer_id
),

buckets as (
    select * from (
        values
            (1, 'under 1 minute', 0, 60),
            (2, '1-10 minutes', 60, 600),
            (3, '10-60 minutes', 600, 3600),
            (4, '1-6 hours', 3600, 21600),
            (5, '6-24 hours', 21600, 86400),
            (6, '1-3 days', 86400, 259200),
            (7, '3-7 days', 259200, 604800),
            (8, '7-30 days', 604800, 2592000),
            (9, '30 days or more', 2592000, null)
    ) as b (bucket_order, bucket, from_seconds, to_seconds)
),

summary as (
    select
        persona_scope,
        from_stage,
        to_stage,
        any_value(step_order) as step_order,
        count(*) as journeys,
        round(quantile_cont(seconds, 0.1) / 3600.0, 4) as p10_hours,
        round(quantile_cont(seconds, 0.25) / 3600.0, 4) as p25_hours,
        round(quantile_cont(seconds, 0.5) / 3600.0, 4) as median_hours,
        round(quantile_cont(seconds, 0.75) / 3600.0, 4) as p75_hours,
        round(quantile_cont(seconds, 0.9) / 3600.0, 4) as p90_hours
    from scoped
    group by persona_scope, from_stage, to_stage
),

counted as (
    select
        scoped.persona_scope,
        scoped.from_stage,
        scoped.to_stage,
        buckets.bucket_order,
        count(*) as journeys_in_bucket
    from scoped
    inner join buckets
        on scoped.seconds >= buckets.from_seconds
        and (buckets.to_seconds is null or scoped.seconds < buckets.to_seconds)
    group by all
),

final as (
    select
        summary.persona_scope,
        summary.from_stage,
        summary.to_stage,
        summary.step_order,
        buckets.bucket_order,
        buckets.bucket,
        coalesce(counted.journeys_in_bucket, 0) as journeys_in_bucket,
        coalesce(counted.journeys_in_bucket, 0) / summary.journeys as share_in_bucket,
        summary.journeys,
        summary.p10_hours,
        summary.p25_hours,
        summary.median_hours,
        summary.p75_hours,
        summary.p90_hours
    from summary
    cross join buckets
    left join counted
        on summary.persona_scope = counted.persona_scope
        and summary.from_stage = counted.from_stage
        and summary.to_stage = counted.to_stage
        and buckets.bucket_order = counted.bucket_order
)

select * from final
