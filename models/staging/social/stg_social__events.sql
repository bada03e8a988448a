-- Social-listening events (mentions, comments, shares, DMs, ad clicks), one row per canonical event, up to the run date.
with source as (
    {{ lake_events('social') }}
),

up_to_run_date as (
    select
        {{ canonical_event_columns() }}
    from source
    where cast(date as date) <= {{ run_date() }}
)

select * from up_to_run_date
