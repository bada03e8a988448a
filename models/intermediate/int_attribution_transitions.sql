-- The first-order Markov chain of the attribution paths: transition counts between
-- touches, from '(start)' to the first touch and from the last touch to
-- '(conversion)' or '(null)' (the journey dropped). int_attribution_markov solves it.
with paths as (
    select * from {{ ref('int_attribution_paths') }}
),

moves as (
    select
        level,
        journey_id,
        case when touch_number = 1 then '(start)' end as start_node,
        node as from_node,
        coalesce(
            lead(node) over by_touch,
            case when status = 'converted' then '(conversion)' else '(null)' end
        ) as to_node
    from paths
    window by_touch as (partition by level, journey_id order by touch_number)
),

edges as (
    select level, '(start)' as from_node, from_node as to_node
    from moves
    where start_node is not null
    union all
    select level, from_node, to_node
    from moves
),

final as (
    select level, from_node, to_node, count(*) as transitions
    from edges
    group by all
)

select * from final
