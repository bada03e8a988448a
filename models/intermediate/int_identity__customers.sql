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
with recursive edges as (
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

directed as (
    select node_a as node, node_b as neighbour from merging_edges
    union
    select node_b as node, node_a as neighbour from merging_edges
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

ranked as (
    select
        node,
        first_landing_date,
        row_number() over (order by first_landing_date, node) as node_rank
    from nodes
),

-- Label propagation: every node takes the smallest rank among its neighbours until
-- nothing changes; the rows that change in a round drive the next round.
components (node, component_rank) using key (node) as (
    select node, node_rank from ranked
    union
    select directed.neighbour, min(components.component_rank)
    from components
    inner join directed on directed.node = components.node
    inner join recurring.components as current_label
        on current_label.node = directed.neighbour
    group by directed.neighbour
    having min(components.component_rank) < min(current_label.component_rank)
),

anchors as (
    select node_rank, node as anchor_node from ranked
),

final as (
    select
        components.node,
        split_part(components.node, ':', 1) as identifier_kind,
        {{ short_id('cus', 'anchors.anchor_node') }} as customer_id,
        ranked.first_landing_date
    from components
    inner join anchors on components.component_rank = anchors.node_rank
    inner join ranked on components.node = ranked.node
)

select * from final
