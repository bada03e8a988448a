-- Crm identity rows: a user id with its hashed email and, per row, one hashed handle.
with source as (
    {% if lake_has_files('crm_customers/*/*.parquet') %}
    select * from {{ source('lake', 'crm_customers') }}
    {% else %}
    select
        null::varchar as user_id,
        null::varchar as email_sha256,
        null::varchar as social_handle_sha256,
        null::varchar as source_file,
        null::bigint as source_line,
        null::timestamptz as ingested_at,
        null::date as date
    where false
    {% endif %}
),

up_to_run_date as (
    select
        user_id,
        email_sha256,
        social_handle_sha256,
        source_file,
        source_line,
        cast(date as date) as landing_date
    from source
    where cast(date as date) <= {{ run_date() }}
)

select * from up_to_run_date
