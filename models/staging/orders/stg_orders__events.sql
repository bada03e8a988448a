-- Marketplace or shop orders, one row per canonical event (an order's purchase and
-- each status it reached since), up to the run date.
with source as (
    {{ lake_events('orders') }}
),

up_to_run_date as (
    select
        {{ canonical_event_columns() }}
    from source
    where cast(date as date) <= {{ run_date() }}
)

select * from up_to_run_date
