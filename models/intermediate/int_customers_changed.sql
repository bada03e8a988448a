{{ config(tags=['intermediate', 'identity']) }}
-- The customers an incremental build rebuilds whole: those with new activity since
-- the last successful build, those whose identity graph gained an edge (a crm row
-- can merge two customers without any new event), and those an identifier over the
-- link cap split apart. Computed once per build and read by every customer-grain
-- incremental model; everything about such a customer is recomputed from all of
-- their events, so a late event lands in the right session and journey. New company
-- events (sends, deliveries) of other customers only add their own rows.
with events as (
    select * from {{ ref('int_events') }}
),

edges as (
    select * from {{ ref('int_identity__edges') }}
),

identities as (
    select * from {{ ref('int_identity__customers') }}
),

overloaded as (
    select * from {{ ref('int_identity__overloaded') }}
),

new_activity as (
    select identities.customer_id
    from events
    inner join identities on events.identity_node = identities.node
    where events.build_id > {{ last_success_build_id() }} and events.is_activity
),

new_edges as (
    select identities.customer_id
    from edges
    inner join identities on edges.node_a = identities.node
    where edges.build_id > {{ last_success_build_id() }}
),

-- An identifier that stopped merging in this build splits the customer it had merged:
-- each piece holds one of its neighbours, so every neighbour's customer is rebuilt,
-- and the identifier's own.
stopped_merging as (
    select node from overloaded
    where build_id > {{ last_success_build_id() }}
),

split_apart as (
    select identities.customer_id
    from (
        select unnest([node_a, node_b]) as node
        from edges
        where node_a in (select node from stopped_merging)
            or node_b in (select node from stopped_merging)
    ) as touched
    inner join identities on touched.node = identities.node
),

final as (
    select customer_id from new_activity
    union
    select customer_id from new_edges
    union
    select customer_id from split_apart
)

select * from final
