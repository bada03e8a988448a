with stages as (
    select * from {{ ref('stages') }}
),

final as (
    select
        stage,
        stage_order,
        funnel,
        description,
        lead(stage) over (order by stage_order) as next_stage
    from stages
    union all
    select
        'unclassified' as stage,
        0 as stage_order,
        null as funnel,
        'Events no stage rule matches: counted, but they never move a journey' as description,
        null as next_stage
)

select * from final
