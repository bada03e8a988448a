{{ config(tags=['intermediate', 'identity']) }}
-- Identifiers the identity graph does not merge customers through: one row each.
--
-- A user id or an email stands for one person. An identifier directly linked to more
-- people than `max_customers_per_identifier` is shared (a family device, a mailbox
-- such as info@, a test account, a bot's device id seen with many logins): merging
-- through it would fuse strangers into one customer. People are counted before any
-- merging, from the identifier's own edges: the larger of its distinct user ids and
-- its distinct email hashes, as one person brings one of each (a user id's own
-- count is then its emails, an email's its user ids). A placeholder value ('true',
-- 'null', ...) never identifies anyone and is listed whatever its count.
--
-- int_identity__customers leaves these identifiers' edges out, so each is a customer
-- of its own, and so is anyone it alone linked. Edges are only ever added, so an
-- identifier over the cap stays over it: a customer splits at most once per such
-- identifier, in the build that saw it cross the cap.
{%- set past_cap = max_customers_per_identifier() | int + 1 %}
-- Read where used, not held in memory (see int_identity__customers).
with edges as not materialized (
    select * from {{ ref('int_identity__edges') }}
),

-- Each edge with a user id or an email at one end, seen from its other end. Edges
-- are unique pairs, so counting a node's rows counts its distinct identities.
strong_ends as (
    select node_a as node, node_b as neighbour from edges
    where node_a <> node_b and (starts_with(node_b, 'user:') or starts_with(node_b, 'email:'))
    union all
    select node_b as node, node_a as neighbour from edges
    where node_a <> node_b and (starts_with(node_a, 'user:') or starts_with(node_a, 'email:'))
),

-- The one pass over every node: only a count per node is kept.
over_cap as (
    select node
    from strong_ends
    group by node
    having greatest(
        count(*) filter (where starts_with(neighbour, 'user:')),
        count(*) filter (where starts_with(neighbour, 'email:'))
    ) > {{ max_customers_per_identifier() }}
),

placeholders as (
    select node_a as node from edges where {{ is_placeholder_node('node_a') }}
    union
    select node_b as node from edges where {{ is_placeholder_node('node_b') }}
),

listed as (
    select node, true as is_placeholder from placeholders
    union all
    select node, false as is_placeholder from over_cap
    where node not in (select node from placeholders)
),

-- The listed identifiers' own edges, from both ends, for what the report shows.
listed_ends as (
    select
        listed.node,
        listed.is_placeholder,
        -- null for the edge of a node seen alone
        case when edges.node_b <> edges.node_a then split_part(edges.node_b, ':', 1) end
            as link_kind,
        edges.first_landing_date,
        edges.build_id
    from edges
    inner join listed on edges.node_a = listed.node
    union all
    select
        listed.node,
        listed.is_placeholder,
        split_part(edges.node_a, ':', 1) as link_kind,
        edges.first_landing_date,
        edges.build_id
    from edges
    inner join listed on edges.node_b = listed.node
    where edges.node_a <> edges.node_b
),

-- When each one went over the cap: the landing date and the build of the link that
-- took its user ids, or its emails, past the cap (the cap + 1-th smallest of that
-- kind; null when that kind is within the cap).
linked as (
    select
        node,
        any_value(is_placeholder) as is_placeholder,
        count(*) filter (where link_kind = 'user') as linked_user_ids,
        count(*) filter (where link_kind = 'email') as linked_emails,
        min(first_landing_date) as first_landing_date,
        min(build_id) as first_build_id,
        least(
            list_sort(list(first_landing_date) filter (where link_kind = 'user'))[{{ past_cap }}],
            list_sort(list(first_landing_date) filter (where link_kind = 'email'))[{{ past_cap }}]
        ) as over_cap_since,
        least(
            list_sort(list(build_id) filter (where link_kind = 'user'))[{{ past_cap }}],
            list_sort(list(build_id) filter (where link_kind = 'email'))[{{ past_cap }}]
        ) as over_cap_build_id
    from listed_ends
    group by node
),

final as (
    select
        node,
        split_part(node, ':', 1) as identifier_kind,
        case when is_placeholder then 'placeholder' else 'over_cap' end as reason,
        linked_user_ids,
        linked_emails,
        greatest(linked_user_ids, linked_emails) as linked_people,
        {{ max_customers_per_identifier() }} as max_customers_per_identifier,
        first_landing_date,
        over_cap_since,
        -- A placeholder never merged anything; a shared identifier stopped merging
        -- when it crossed the cap.
        case when is_placeholder then first_build_id else over_cap_build_id end as build_id
    from linked
)

select * from final
