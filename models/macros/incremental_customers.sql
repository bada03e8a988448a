{#- When two customers merge, the younger id disappears; its rows go before the
    survivor's rows are inserted. -#}
{% macro delete_merged_customers() -%}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where customer_id not in (select customer_id from {{ ref('int_identity__customers') }})
    {%- endif -%}
{%- endmacro %}
