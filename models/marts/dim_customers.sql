with identities as (
    select * from {{ ref('int_identity__customers') }}
),

journeys as (
    select * from {{ ref('fct_journeys') }}
),

identifiers as (
    select
        customer_id,
        min(first_landing_date) as first_landing_date,
        count(*) as identifiers,
        count(*) filter (where identifier_kind = 'anon') as anonymous_ids,
        count(*) filter (where identifier_kind = 'user') as user_ids,
        count(*) filter (where identifier_kind = 'email') as emails,
        count(*) filter (where identifier_kind = 'handle') as social_handles
    from identities
    group by customer_id
),

journey_summary as (
    select
        customer_id,
        count(*) as journeys,
        count(*) filter (where status = 'converted') as converted_journeys,
        count(*) filter (where status = 'dropped') as dropped_journeys,
        count(*) filter (where status = 'in_progress') as in_progress_journeys,
        min(started_at) as first_activity_at,
        max(last_activity_at) as last_activity_at,
        arg_min(first_touch_channel, started_at) as acquisition_channel,
        sum(orders) as orders,
        sum(revenue) as revenue
    from journeys
    group by customer_id
),

final as (
    select
        identifiers.customer_id,
        identifiers.first_landing_date,
        journey_summary.first_activity_at,
        journey_summary.last_activity_at,
        journey_summary.acquisition_channel,
        identifiers.identifiers,
        identifiers.anonymous_ids,
        identifiers.user_ids,
        identifiers.emails,
        identifiers.social_handles,
        coalesce(journey_summary.journeys, 0) as journeys,
        coalesce(journey_summary.converted_journeys, 0) as converted_journeys,
        coalesce(journey_summary.dropped_journeys, 0) as dropped_journeys,
        coalesce(journey_summary.in_progress_journeys, 0) as in_progress_journeys,
        coalesce(journey_summary.orders, 0) as orders,
        coalesce(journey_summary.revenue, 0) as revenue
    from identifiers
    left join journey_summary on identifiers.customer_id = journey_summary.customer_id
)

select * from final
