{#- The run's notion of time, shared by every model so incremental nights and a full
    refresh agree. run_date is the last landing date the run includes. -#}

{% macro run_date() -%}
    cast('{{ var("run_date") }}' as date)
{%- endmacro %}

{#- End of the run date (exclusive), the instant journey status is decided at. -#}
{% macro run_end() -%}
    (cast('{{ var("run_date") }}' as date) + interval 1 day)::timestamptz
{%- endmacro %}

{#- First landing date an incremental run re-reads: the lookback covers late events
    and nights that were skipped (`cjm run` widens it when more nights were missed). -#}
{% macro window_start() -%}
    (cast('{{ var("run_date") }}' as date) - {{ var("lookback_days") | int }})
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
    {{ var("build_id") | int }}
{%- endmacro %}

{% macro last_success_build_id() -%}
    {{ var("last_success_build_id") | int }}
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
