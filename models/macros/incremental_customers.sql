{#- Rows a customer-grain incremental model removes before it inserts what it rebuilt:
    those of customers that no longer exist (when two customers merge, the younger
    id disappears) and those of the customers it rebuilds whole. Delete+insert alone
    only replaces the keys it inserts again, and a customer that an identifier over
    the link cap split apart can keep its id yet be left with fewer rows, or none. -#}
{% macro delete_merged_customers() -%}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where customer_id not in (select customer_id from {{ ref('int_identity__customers') }})
        or customer_id in (select customer_id from {{ ref('int_customers_changed') }})
    {%- endif -%}
{%- endmacro %}
