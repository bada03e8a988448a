-- Who the journeys belong to, per journey-start period and population (see
-- fct_journeys): how many journeys and customers, how they ended, and how much they
-- said. The report's header states this split; the funnel counts only the
-- populations of `funnel_populations`, so this is where the others are counted.
with journeys as (
    select * from {{ ref('fct_journeys') }}
),

final as (
    select
        cast(date_trunc('{{ var("funnel_period") }}', started_at) as date) as period_start,
        '{{ var("funnel_period") }}' as period_grain,
        population,
        population in {{ var_list('funnel_populations') }} as is_in_funnel,
        count(*) as journeys,
        count(distinct customer_id) as customers,
        count(*) filter (where status = 'converted') as journeys_converted,
        count(*) filter (where status = 'dropped') as journeys_dropped,
        count(*) filter (where status = 'in_progress') as journeys_in_progress,
        count(*) filter (where post_purchase_outcome = 'retained') as journeys_retained,
        count(*) filter (where post_purchase_outcome = 'lapsed') as journeys_lapsed,
        count(*) filter (where post_purchase_outcome = 'in_window') as journeys_in_window,
        sum(activity_event_count) as activity_events,
        sum(orders) as orders,
        sum(reviews) as reviews
    from journeys
    group by all
)

select * from final
