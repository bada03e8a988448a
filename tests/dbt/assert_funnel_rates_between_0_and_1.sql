-- Funnel rates are shares of journeys: returns rows with a rate outside 0 to 1.

select
    period_start,
    first_touch_channel,
    stage,
    drop_off_rate,
    advance_rate
from {{ ref('agg_stage_funnel') }}
where drop_off_rate not between 0 and 1
    or advance_rate not between 0 and 1
