-- Where each layer lands in the database. The marts and dimensions BI tools read are in
-- the target's schema (main, the schema a DuckDB connection opens by default); a layer
-- with a custom schema (staging, intermediate, and the rule seeds in `rules`, set in
-- dbt_project.yml) gets that schema as named, not dbt's default `<target>_<custom>`,
-- so that nothing but the marts sits beside the marts.
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
