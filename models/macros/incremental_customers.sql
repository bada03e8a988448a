{#- Incremental models at customer grain rebuild every customer the night touched,
    whole: customers with events in the lookback window, and customers whose
    identity graph gained an edge there (a crm row can merge two customers without
    any new event). Everything else about such a customer is recomputed from all of
    their events, so a late event lands in the right session and journey. -#}
{% macro affected_customers() -%}
    select identities.customer_id
    from {{ ref('int_events') }} as events
    inner join {{ ref('int_identity__customers') }} as identities
        on events.identity_node = identities.node
    where events.landing_date >= {{ window_start() }}
    union
    select identities.customer_id
    from {{ ref('int_identity__edges') }} as edges
    inner join {{ ref('int_identity__customers') }} as identities
        on edges.node_a = identities.node
    where edges.first_landing_date >= {{ window_start() }}
{%- endmacro %}

{#- When two customers merge, the younger id disappears; its rows go before the
    survivor's rows are inserted. -#}
{% macro delete_merged_customers() -%}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where customer_id not in (select customer_id from {{ ref('int_identity__customers') }})
    {%- endif -%}
{%- endmacro %}
