{{ config(materialized="view") }}

{#- The night being built, as one row: what the Python models read of it (their
    configs are fixed when dbt parses the project, before a night's values arrive). -#}

select
    {{ run_date() }} as run_date,
    {{ window_start() }} as window_start,
    {{ build_id() }} as build_id,
    {{ last_success_build_id() }} as last_success_build_id
