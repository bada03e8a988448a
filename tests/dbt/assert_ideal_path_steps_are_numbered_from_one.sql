-- The ideal path's steps are numbered 1, 2, 3, ... without gaps, and there are at
-- most 60 (fct_journey_conformance keeps the steps a journey met as bits of a bigint).
-- Returns a row when they are not.

with ideal as (
    select * from {{ ref('ideal_path') }}
),

numbered as (
    select count(*) as steps, min(step) as first_step, max(step) as last_step
    from ideal
)

select *
from numbered
where steps > 0 and (first_step != 1 or last_step != steps or steps > 60)
