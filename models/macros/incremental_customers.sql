{#- Incremental models at customer grain rebuild, whole, every customer whose
    activity changed since the last successful build: customers with new activity
    events, and customers whose identity graph gained an edge (a crm row can merge two
    customers without any new event). Everything about such a customer is recomputed
    from all of their events, so a late event lands in the right session and journey.
    New company events (sends, deliveries) of other customers only add their own rows. -#}
{% macro activity_customers() -%}
    select identities.customer_id
    from {{ ref('int_events') }} as events
    inner join {{ ref('int_identity__customers') }} as identities
        on events.identity_node = identities.node
    where events.build_id > {{ last_success_build_id() }} and events.is_activity
    union
    select identities.customer_id
    from {{ ref('int_identity__edges') }} as edges
    inner join {{ ref('int_identity__customers') }} as identities
        on edges.node_a = identities.node
    where edges.build_id > {{ last_success_build_id() }}
{%- endmacro %}

{#- When two customers merge, the younger id disappears; its rows go before the
    survivor's rows are inserted. -#}
{% macro delete_merged_customers() -%}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where customer_id not in (select customer_id from {{ ref('int_identity__customers') }})
    {%- endif -%}
{%- endmacro %}
