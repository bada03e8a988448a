-- An identifier that does not merge (int_identity__overloaded) is the only identifier
-- of its customer. Returns each one that shares its customer, with how many
-- identifiers that customer holds.

with listed as (
    select node from {{ ref('int_identity__overloaded') }}
),

identities as (
    select node, customer_id from {{ ref('int_identity__customers') }}
),

listed_customers as (
    select identities.customer_id, listed.node
    from listed
    inner join identities on listed.node = identities.node
)

select listed_customers.node, count(*) as identifiers_in_customer
from listed_customers
inner join identities on listed_customers.customer_id = identities.customer_id
group by listed_customers.node
having count(*) > 1
