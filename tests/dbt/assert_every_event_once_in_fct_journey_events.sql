-- Every event of int_events appears exactly once in fct_journey_events, and nothing
-- else does (so the two row counts are equal). Returns each event that is missing,
-- duplicated or unknown, with how often the mart holds it.

with events as (
    select event_id from {{ ref('int_events') }}
),

journey_events as (
    select event_id, count(*) as times_in_mart
    from {{ ref('fct_journey_events') }}
    group by event_id
)

select
    coalesce(events.event_id, journey_events.event_id) as event_id,
    events.event_id is not null as in_int_events,
    coalesce(journey_events.times_in_mart, 0) as times_in_mart
from events
full outer join journey_events on events.event_id = journey_events.event_id
where events.event_id is null
    or coalesce(journey_events.times_in_mart, 0) <> 1
