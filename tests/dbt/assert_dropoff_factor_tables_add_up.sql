-- Each two-by-two table of a stage splits the stage's journeys of known outcome (the
-- funnel's advanced and dropped journeys in the scope): with + without = all, and no
-- cell is negative. Returns the tables that do not add up.

with factors as (
    select * from {{ ref('int_dropoff_factors') }}
),

funnel as (
    select
        'all' as persona_scope,
        stage,
        sum(journeys_dropped) as dropped,
        sum(journeys_advanced) as advanced
    from {{ ref('agg_stage_funnel') }}
    where population in {{ var_list('funnel_populations') }}
    group by stage
)

select factors.*, funnel.dropped, funnel.advanced
from factors
left join funnel
    on factors.persona_scope = funnel.persona_scope and factors.stage = funnel.stage
where least(dropped_with, advanced_with, dropped_without, advanced_without) < 0
    or (
        factors.persona_scope = 'all'
        and (
            funnel.stage is null
            or dropped_with + dropped_without != funnel.dropped
            or advanced_with + advanced_without != funnel.advanced
        )
    )
