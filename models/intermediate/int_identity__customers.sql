{{ config(tags=['intermediate', 'identity']) }}
-- One row per identifier: the customer it belongs to. A customer is a connected
-- component of the identity graph.
--
-- Stable ids: a component is named after its oldest identifier (earliest first
-- landing date, ties broken by the identifier). A component that grows keeps its
-- oldest identifier, so it keeps its id. When two components merge, the id of the
-- one with the older identifier survives and the other id disappears; its events
-- are re-assigned to the survivor by the incremental models.
--
-- Identifiers that do not merge (int_identity__overloaded: shared by more people
-- than the cap, or placeholders) keep their edges out of the components, so each is
-- a customer of its own and the people it linked stay apart. When an identifier
-- crosses the cap, the customer it had merged splits: the piece holding the oldest
-- identifier keeps the id, the others are named after their own oldest identifier.
--
-- An event belongs to the customer of its strongest identifier (user id, email,
-- handle, device id) that merges (with_customer_node). A shared device seen with a
-- login goes with the login; a shared mailbox seen with a device goes with the
-- device; a shared device seen alone goes to the device's own customer.
-- Read where used, not held: DuckDB keeps a CTE read twice in memory, and the edge
-- table is the largest input (a 10M-identifier graph's ran out of 1 GB that way).
with edges as not materialized (
    select * from {{ ref('int_identity__edges') }}
),

not_merging as (
    select node from {{ ref('int_identity__overloaded') }}
),

merging_edges as (
    select node_a, node_b
    from edges
    where node_a not in (select node from not_merging)
        and node_b not in (select node from not_merging)
),

nodes as (
    select node, min(first_landing_date) as first_landing_date
    from (
        select node_a as node, first_landing_date from edges
        union all
        select node_b as node, first_landing_date from edges
    )
    group by node
),

-- Nodes numbered from 0, oldest first: a component's smallest number is its oldest
-- identifier.
ranked as (
    select
        node,
        first_landing_date,
        row_number() over (order by first_landing_date, node) - 1 as node_rank
    from nodes
),

-- (An identifier's edge to itself, seen alone, joins nothing: every node is in ranked.)
numbered_edges as (
    select a.node_rank as rank_a, b.node_rank as rank_b
    from merging_edges
    inner join ranked as a on a.node = merging_edges.node_a
    inner join ranked as b on b.node = merging_edges.node_b
    where merging_edges.node_a <> merging_edges.node_b
),

-- The connected components of the merging edges, in one pass over the graph (SciPy's
-- connected_components, registered by cjm_pipeline/dbt_functions.py): for each node
-- number, the smallest number in its component.
labelled as (
    select
        cjm_component_ranks(
            (select count(*) from ranked), list({'a': rank_a, 'b': rank_b})
        ) as component_ranks
    from numbered_edges
),

components as (
    select
        unnest(range(len(component_ranks))) as node_rank,
        unnest(component_ranks) as component_rank
    from labelled
),

anchors as (
    select node_rank, node as anchor_node from ranked
),

final as (
    select
        ranked.node,
        split_part(ranked.node, ':', 1) as identifier_kind,
        {{ short_id('cus', 'anchors.anchor_node') }} as customer_id,
        ranked.first_landing_date
    from components
    inner join anchors on components.component_rank = anchors.node_rank
    inner join ranked on components.node_rank = ranked.node_rank
)

select * from final
