{#- The run's notion of time, shared by every model so incremental nights and a full
    refresh agree. run_date is the last landing date the run includes. -#}

{#- A value of the night being built: run_date, lookback_days, build_id or
    last_success_build_id. `cjm run`, `cjm build` and the DAG hand them to dbt in the
    environment (CJM_NIGHT, a JSON object), read only while nodes run, and keep --vars
    for the settings, which change only with the settings: dbt's parse of the project
    then stays valid from one night to the next (a change in --vars makes dbt parse it
    all again). A value CJM_NIGHT does not give (dbt run by hand without it) comes from
    --vars. While dbt parses, the defaults of dbt_project.yml stand in: nothing parsed
    depends on them. A unit test sets the night with `overrides: env_vars: CJM_NIGHT`. -#}
{% macro night(name) -%}
    {%- set given = env_var("CJM_NIGHT", "") if execute else "" -%}
    {%- if given -%}
        {{ return(fromjson(given).get(name, var(name))) }}
    {%- else -%}
        {{ return(var(name)) }}
    {%- endif -%}
{%- endmacro %}

{% macro run_date() -%}
    cast('{{ night("run_date") }}' as date)
{%- endmacro %}

{#- End of the run date (exclusive), the instant journey status is decided at. -#}
{% macro run_end() -%}
    (cast('{{ night("run_date") }}' as date) + interval 1 day)::timestamptz
{%- endmacro %}

{#- First landing date an incremental run re-reads: the lookback covers late events
    and nights that were skipped (`cjm run` widens it when more nights were missed). -#}
{% macro window_start() -%}
    (cast('{{ night("run_date") }}' as date) - {{ night("lookback_days") | int }})
{%- endmacro %}

{% macro session_gap() -%}
    interval '{{ var("session_gap_minutes") | int }} minutes'
{%- endmacro %}

{% macro session_cap_seconds() -%}
    {{ (var("session_cap_hours") | float) * 3600 }}
{%- endmacro %}

{% macro journey_gap() -%}
    interval '{{ var("journey_gap_days") | int }} days'
{%- endmacro %}

{#- Every build has a number, one more than the last build that succeeded (`cjm
    build` keeps it). Rows an incremental model inserts carry the build's number, so
    the next models can tell what this build (or a failed build since the last
    success) added. -#}
{% macro build_id() -%}
    {{ night("build_id") | int }}
{%- endmacro %}

{% macro last_success_build_id() -%}
    {{ night("last_success_build_id") | int }}
{%- endmacro %}

{#- How long after an order a loyalty signal still makes the journey retained. -#}
{% macro return_window() -%}
    interval '{{ var("return_window_days") | int }} days'
{%- endmacro %}

{#- A SQL list of the quoted strings of a list var, e.g. funnel_populations. -#}
{% macro var_list(name) -%}
    ({%- for value in var(name) -%}
    '{{ value | replace("'", "''") }}'{{ ", " if not loop.last }}
    {%- endfor -%})
{%- endmacro %}
