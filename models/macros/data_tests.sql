{#
    not_null_columns: every listed column of the model holds no null, checked in one
    scan of the model. It fails with a row per column that holds nulls (column_name,
    null_rows), so a failure still names each column, as a not_null test per column
    would; one test per model instead of one per column saves dbt's cost per test node
    (about 20 ms each, over two hundred columns, every night).
#}
{% test not_null_columns(model, column_names) %}

with null_counts as (

    select
        {%- for column in column_names %}
        sum(case when {{ adapter.quote(column) }} is null then 1 else 0 end)
            as {{ adapter.quote(column) }}
        {%- if not loop.last %},{% endif %}
        {%- endfor %}
    from {{ model }}

)

{% for column in column_names %}
select '{{ column }}' as column_name, {{ adapter.quote(column) }} as null_rows
from null_counts
where {{ adapter.quote(column) }} > 0
{% if not loop.last %}union all{% endif %}
{% endfor %}

{% endtest %}

{#-
    A test's where config may name the night's values as {build_id}, {run_date} and
    {window_start}: dbt renders where when it parses the project, and the night's
    values reach dbt only as its nodes run (see night() in run_window.sql), so they
    are filled in here, where dbt wraps the tested relation in the filter.
-#}
{% macro default__get_where_subquery(relation) -%}
    {%- set where = config.get("where", "") -%}
    {%- if where -%}
        {%- set where = where
            | replace("{build_id}", build_id() | string)
            | replace("{run_date}", run_date())
            | replace("{window_start}", window_start()) -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
