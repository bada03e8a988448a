with identities as (
    select * from {{ ref('int_identity__customers') }}
),

journeys as (
    select * from {{ ref('fct_journeys') }}
),

journey_events as (
    select * from {{ ref('fct_journey_events') }}
),

persona_rules as (
    select * from {{ ref('persona_rules') }}
),

identifiers as (
    select
        customer_id,
        min(first_landing_date) as first_landing_date,
        count(*) as identifiers,
        count(*) filter (where identifier_kind = 'anon') as anonymous_ids,
        count(*) filter (where identifier_kind = 'user') as user_ids,
        count(*) filter (where identifier_kind = 'email') as emails,
        count(*) filter (where identifier_kind = 'handle') as social_handles,
        bool_or(identifier_kind = 'event') as is_unattributed
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

behaviour as (
    select
        customer_id,
        count(distinct session_id) as sessions,
        count(*) filter (where event_type = 'coupon_applied') as coupons_applied,
        count(*) filter (where event_type = 'review_page_view') as review_page_views,
        count(*) filter (where event_type = 'review_posted') as reviews_posted
    from journey_events
    where is_activity
    group by customer_id
),

features as (
    select
        identifiers.customer_id,
        journey_summary.acquisition_channel,
        journey_summary.orders,
        behaviour.sessions,
        behaviour.coupons_applied,
        behaviour.review_page_views,
        identifiers.user_ids > 0 as is_registered
    from identifiers
    inner join journey_summary on identifiers.customer_id = journey_summary.customer_id
    left join behaviour on identifiers.customer_id = behaviour.customer_id
    -- An unattributed record is no one's: it is not a person to give a persona.
    where not identifiers.is_unattributed
),

-- The first persona rule (by priority) whose every condition holds; an empty
-- condition matches anything. Customers without journeys, and unattributed records,
-- get no persona.
personas as (
    select
        features.customer_id,
        arg_min(persona_rules.persona, persona_rules.priority) as persona,
        arg_min(persona_rules.rule_id, persona_rules.priority) as persona_rule_id
    from features
    inner join persona_rules
        on (
            persona_rules.acquisition_channel is null
            or features.acquisition_channel like persona_rules.acquisition_channel
        )
        and features.orders >= coalesce(persona_rules.min_orders, 0)
        and (persona_rules.max_orders is null or features.orders <= persona_rules.max_orders)
        and coalesce(features.sessions, 0) >= coalesce(persona_rules.min_sessions, 0)
        and (
            persona_rules.max_sessions is null
            or coalesce(features.sessions, 0) <= persona_rules.max_sessions
        )
        and coalesce(features.coupons_applied, 0) >= coalesce(persona_rules.min_coupons, 0)
        and coalesce(features.review_page_views, 0)
            >= coalesce(persona_rules.min_review_views, 0)
        and (
            persona_rules.registered is null
            or features.is_registered = persona_rules.registered
        )
    group by features.customer_id
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
        identifiers.is_unattributed,
        coalesce(journey_summary.journeys, 0) as journeys,
        coalesce(journey_summary.converted_journeys, 0) as converted_journeys,
        coalesce(journey_summary.dropped_journeys, 0) as dropped_journeys,
        coalesce(journey_summary.in_progress_journeys, 0) as in_progress_journeys,
        coalesce(journey_summary.orders, 0) as orders,
        coalesce(journey_summary.revenue, 0) as revenue,
        coalesce(behaviour.sessions, 0) as sessions,
        coalesce(behaviour.coupons_applied, 0) as coupons_applied,
        coalesce(behaviour.review_page_views, 0) as review_page_views,
        coalesce(behaviour.reviews_posted, 0) as reviews_posted,
        personas.persona,
        personas.persona_rule_id
    from identifiers
    left join journey_summary on identifiers.customer_id = journey_summary.customer_id
    left join behaviour on identifiers.customer_id = behaviour.customer_id
    left join personas on identifiers.customer_id = personas.customer_id
)

select * from final
