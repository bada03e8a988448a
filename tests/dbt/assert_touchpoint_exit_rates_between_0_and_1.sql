-- Exit rates are shares of the journeys touching a touchpoint: returns rows with a
-- rate outside 0 to 1 (more journeys leaving from a touchpoint than touched it).

select
    stage,
    touchpoint_id,
    journeys_touching,
    journeys_dropped_after,
    post_purchase_dropped_after,
    exit_rate,
    post_purchase_exit_rate
from {{ ref('agg_touchpoint_dropoff') }}
where exit_rate is null
    or exit_rate not between 0 and 1
    or post_purchase_exit_rate is null
    or post_purchase_exit_rate not between 0 and 1
