with touchpoints as (
    select * from {{ ref('touchpoints') }}
),

final as (
    select
        touchpoint_id,
        touchpoint_name,
        channel,
        touchpoint_type,
        description
    from touchpoints
    union all
    select
        'unclassified' as touchpoint_id,
        'Unclassified' as touchpoint_name,
        'unclassified' as channel,
        'unclassified' as touchpoint_type,
        'Events no touchpoint rule matches: add a rule to touchpoint_rules to place them'
            as description
)

select * from final
