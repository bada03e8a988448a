-- Edges between consecutive nodes of journey paths (int_journey_paths), at the
-- stage and the touchpoint level, per position: the input of a Sankey diagram.
-- Every journey with a path contributes one edge from '(start)' and one into its end
-- node, so the journeys leaving '(start)' equal the journeys with a path, and the
-- edges into '(drop-off)' the dropped ones among them. Positions after transition_max_step
-- share that position (a tool drawing a Sankey stops before it).
with paths as (
    select * from {{ ref('int_journey_paths') }}
),

edges as (
    select
        level,
        journey_id,
        position as from_step,
        node as from_node,
        node_kind as from_node_kind,
        lead(node) over by_position as to_node,
        lead(node_kind) over by_position as to_node_kind,
        epoch(lead(started_at) over by_position - ended_at) as gap_seconds
    from paths
    window by_position as (partition by level, journey_id order by position)
),

final as (
    select
        level,
        least(from_step, {{ var('transition_max_step') | int }}) as from_step,
        from_node,
        from_node_kind,
        to_node,
        to_node_kind,
        count(*) as transitions,
        count(distinct journey_id) as journeys,
        quantile_cont(gap_seconds, 0.5) / 3600.0 as median_gap_hours
    from edges
    where to_node is not null
    group by all
)

select * from final
