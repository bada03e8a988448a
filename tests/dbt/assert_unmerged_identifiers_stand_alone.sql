-- An identifier that does not merge (int_identity__overloaded) stands alone: it is the
-- only identifier of its customer, and an event sits with that customer only when
-- every identifier the event carries is listed too (otherwise it belongs with its
-- strongest identifier that merges). Returns each listed identifier that shares its
-- customer, with how many identifiers that customer holds, and each event written by
-- this build that sits with a listed identifier's customer though it carries an
-- identifier that merges.

with listed as (
    select node from {{ ref('int_identity__overloaded') }}
),

identities as (
    select node, customer_id from {{ ref('int_identity__customers') }}
),

events as (
    select event_id, user_node, email_node, handle_node, anonymous_node, order_node
    from {{ ref('int_events') }}
),

-- Only the rows this build wrote: the other nights were checked when they were written.
sessionized as (
    select event_id, customer_id from {{ ref('int_events_sessionized') }}
    where build_id = {{ build_id() }}
),

listed_customers as (
    select identities.customer_id, listed.node
    from listed
    inner join identities on listed.node = identities.node
),

shared as (
    select listed_customers.node, count(*) as identifiers_in_customer
    from listed_customers
    inner join identities on listed_customers.customer_id = identities.customer_id
    group by listed_customers.node
    having count(*) > 1
),

-- The identifiers of each event held by a listed identifier's customer.
held_by_listed as (
    select
        listed_customers.node,
        sessionized.event_id,
        unnest([
            events.user_node, events.email_node, events.handle_node, events.anonymous_node,
            events.order_node
        ]) as carried_node
    from sessionized
    inner join listed_customers on sessionized.customer_id = listed_customers.customer_id
    inner join events on sessionized.event_id = events.event_id
),

misplaced as (
    select node, event_id
    from held_by_listed
    where carried_node is not null
        and carried_node not in (select node from listed)
    group by node, event_id
)

select node, identifiers_in_customer, null::varchar as event_id from shared
union all
select node, null::bigint as identifiers_in_customer, event_id from misplaced
