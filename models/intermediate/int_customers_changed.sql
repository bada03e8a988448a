{{ config(tags=['intermediate', 'identity']) }}
-- The customers an incremental build rebuilds whole: those with new activity since
-- the last successful build, those whose identity graph gained an edge (a crm row
-- can merge two customers without any new event), those an identifier over the
-- link cap split apart, and those that events of such an identifier moved to.
-- Computed once per build and read by every customer-grain incremental model;
-- everything about such a customer is recomputed from all of their events, so a
-- late event lands in the right session and journey. New company events (sends,
-- deliveries) of other customers only add their own rows.
--
-- Events are matched to customers as int_events_sessionized does: through their
-- strongest identifier that merges (with_customer_node).
-- The inputs are read where used, not held in memory: DuckDB keeps a CTE read twice
-- in memory, all of int_events with it (at 1M events 0.3 s and 430 MB instead of
-- 0.1 s and 170 MB).
with events as not materialized (
    select * from {{ ref('int_events') }}
),

edges as not materialized (
    select * from {{ ref('int_identity__edges') }}
),

identities as not materialized (
    select * from {{ ref('int_identity__customers') }}
),

overloaded as not materialized (
    select * from {{ ref('int_identity__overloaded') }}
),

not_merging as (
    select node from overloaded
),

new_events as (
    select * from events
    where build_id > {{ last_success_build_id() }} and is_activity
),

new_events_with_customer_node as (
    {{ with_customer_node('new_events', 'not_merging') }}
),

new_activity as (
    select identities.customer_id
    from new_events_with_customer_node as new_events
    inner join identities on new_events.customer_node = identities.node
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

-- The events that carried such an identifier as the one deciding their customer now
-- go with their next identifier that merges. The customer they leave is one of the
-- pieces above; the one they join need not be, since an event's identifiers are
-- linked only through its strongest one, which may have stopped merging before.
-- Listing only ever grows, so no other event changes customer this way.
events_of_stopped as (
    select * from events
    where user_node in (select node from stopped_merging)
        or email_node in (select node from stopped_merging)
        or handle_node in (select node from stopped_merging)
        or anonymous_node in (select node from stopped_merging)
        or order_node in (select node from stopped_merging)
),

moved_events as (
    {{ with_customer_node('events_of_stopped', 'not_merging') }}
),

moved_to as (
    select identities.customer_id
    from moved_events
    inner join identities on moved_events.customer_node = identities.node
),

final as (
    select customer_id from new_activity
    union
    select customer_id from new_edges
    union
    select customer_id from split_apart
    union
    select customer_id from moved_to
)

select * from final
