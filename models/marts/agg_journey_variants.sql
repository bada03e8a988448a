-- The most common journey variants: the sequence of a journey's path nodes at the
-- stage or touchpoint level (int_journey_paths, without the start and end nodes),
-- with how many journeys took it and how they ended. Sequences longer than eight
-- nodes are cut after the eighth and end in ' > ...'. The top_variants variants
-- of each level are kept; the rest are one row 'other' (variant_rank null), so
-- shares add up to 1 per level.
with paths as (
    select * from {{ ref('int_journey_paths') }}
),

journeys as (
    select * from {{ ref('fct_journeys') }}
),

sequences as (
    select
        level,
        journey_id,
        string_agg(node, ' > ' order by position) filter (where position <= 8)
        || case when max(position) > 8 then ' > ...' else '' end as variant,
        max(position) as path_length
    from paths
    where node_kind not in ('start', 'end')
    group by level, journey_id
),

counted as (
    select
        sequences.level,
        sequences.variant,
        max(sequences.path_length) as path_length,
        count(*) as journeys,
        count(*) filter (where journeys.status = 'converted') as journeys_converted,
        count(*) filter (where journeys.status = 'dropped') as journeys_dropped,
        count(*) filter (where journeys.status = 'in_progress') as journeys_in_progress
    from sequences
    inner join journeys on sequences.journey_id = journeys.journey_id
    group by sequences.level, sequences.variant
),

ranked as (
    select
        *,
        row_number() over (partition by level order by journeys desc, variant) as variant_rank
    from counted
),

kept as (
    select
        level,
        variant_rank,
        variant,
        path_length,
        journeys,
        journeys_converted,
        journeys_dropped,
        journeys_in_progress
    from ranked
    where variant_rank <= {{ var('top_variants') | int }}

    union all

    select
        level,
        null as variant_rank,
        'other' as variant,
        null as path_length,
        sum(journeys) as journeys,
        sum(journeys_converted) as journeys_converted,
        sum(journeys_dropped) as journeys_dropped,
        sum(journeys_in_progress) as journeys_in_progress
    from ranked
    where variant_rank > {{ var('top_variants') | int }}
    group by level
),

final as (
    select
        level,
        variant_rank,
        variant,
        path_length,
        journeys,
        journeys / sum(journeys) over (partition by level) as share,
        journeys_converted,
        journeys_dropped,
        journeys_in_progress,
        journeys_converted / journeys as conversion_rate,
        journeys_dropped / nullif(journeys_converted + journeys_dropped, 0) as drop_off_rate
    from kept
)

select * from final
