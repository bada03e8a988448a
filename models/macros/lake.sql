{#- Reading the canonical lake. A source with no files yet (the first night, or a
    source that never landed) reads as zero typed rows instead of failing the build. -#}

{% macro lake_glob(pattern) -%}
    {{ env_var('CJM_LAKE_DIR', 'data/lake') }}/{{ pattern }}
{%- endmacro %}

{% macro lake_has_files(pattern) -%}
    {%- if not execute -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set found = run_query("select count(*) from glob('" ~ lake_glob(pattern) ~ "')") -%}
    {{ return(found.columns[0].values()[0] > 0) }}
{%- endmacro %}

{% macro lake_events(source_name) -%}
    {%- if lake_has_files('events/source=' ~ source_name ~ '/*/*.parquet') -%}
        select * from {{ source('lake', source_name ~ '_events') }}
    {%- else -%}
        {{ empty_canonical_events() }}
    {%- endif -%}
{%- endmacro %}

{% macro empty_canonical_events() -%}
    select
        null::varchar as event_id,
        null::varchar as source,
        null::varchar as native_id,
        null::varchar as event_type,
        null::varchar as native_event,
        null::timestamptz as occurred_at,
        null::timestamptz as ingested_at,
        null::varchar as anonymous_id,
        null::varchar as user_id,
        null::varchar as email_sha256,
        null::varchar as social_handle_sha256,
        null::varchar as order_id,
        null::varchar as channel,
        null::varchar as platform,
        null::varchar as campaign,
        null::varchar as utm_source,
        null::varchar as utm_medium,
        null::varchar as utm_campaign,
        null::varchar as utm_term,
        null::varchar as utm_content,
        null::varchar as url,
        null::varchar as path,
        null::varchar as referrer,
        null::tinyint as rating,
        null::double as revenue,
        null::varchar as text,
        null::varchar as properties,
        null::varchar as source_file,
        null::bigint as source_line,
        null::date as date
    where false
{%- endmacro %}
