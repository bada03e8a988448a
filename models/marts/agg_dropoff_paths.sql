-- What journeys did just before they dropped: per persona scope ('all', then each
-- persona) and stage, the journeys that dropped there (at experience: lapsed) by their
-- last three steps (int_journey_steps: runs of one touchpoint), the most common first.
-- The 20 most common paths of a scope and stage are kept; the rest are one
-- '(other paths)' row, so the journeys add up to the stage's drops.
with dropped as (
    select journey_id, customer_id, stage, stage_order
    from {{ ref('int_journey_stages') }}
    where population in {{ var_list('funnel_populations') }}
        and outcome = 'dropped'
        and stage_order between 1 and 4
),

steps as (
    select * from {{ ref('int_journey_steps') }}
),

customers as (
    select customer_id, persona from {{ ref('dim_customers') }}
),

last_steps as (
    select
        journey_id,
        string_agg(touchpoint_id, ' > ' order by step_number) as last_steps,
        count(*) as steps
    from (
        select
            journey_id,
            step_number,
            touchpoint_id,
            row_number() over (partition by journey_id order by step_number desc) as from_end
        from steps
    )
    where from_end <= 3
    group by journey_id
),

paths as (
    select
        dropped.stage,
        dropped.stage_order,
        coalesce(customers.persona, 'other') as persona,
        coalesce(last_steps.last_steps, '(no steps)') as last_steps
    from dropped
    left join last_steps on dropped.journey_id = last_steps.journey_id
    left join customers on dropped.customer_id = customers.customer_id
),

scoped as (
    select 'all' as persona_scope, stage, stage_order, last_steps from paths
    union all
    select persona, stage, stage_order, last_steps from paths
),

counted as (
    select
        persona_scope,
        stage,
        stage_order,
        last_steps,
        count(*) as journeys,
        sum(count(*)) over (partition by persona_scope, stage) as stage_dropped,
        row_number() over (
            partition by persona_scope, stage order by count(*) desc, last_steps
        ) as path_rank
    from scoped
    group by persona_scope, stage, stage_order, last_steps
),

folded as (
    select
        persona_scope,
        stage,
        stage_order,
        case when path_rank <= 20 then last_steps else '(other paths)' end as last_steps,
        case when path_rank <= 20 then path_rank else 21 end as path_rank,
        journeys,
        stage_dropped
    from counted
),

final as (
    select
        persona_scope,
        stage,
        stage_order,
        path_rank,
        last_steps,
        sum(journeys) as journeys,
        sum(journeys) / any_value(stage_dropped) as share_of_dropped
    from folded
    group by persona_scope, stage, stage_order, path_rank, last_steps
)

select * from final
