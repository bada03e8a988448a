-- For each stage, persona scope and candidate factor of a drop, the journeys with the
-- factor and without it, by whether they dropped at the stage or advanced past it: the
-- two-by-two tables agg_dropoff_drivers tests. Only journeys whose outcome at the stage
-- is known count (advanced or dropped; in-progress journeys are right-censored), of the
-- funnel's populations, at the pre-purchase stages and at experience (dropped: lapsed).
--
-- A factor is what the journey did or met up to the stage: before it entered the next
-- stage if it advanced, or at any time if it dropped.
--   touchpoint        each touchpoint of its activity at the stage
--   first_touch_channel, persona   the journey's acquisition channel, the customer's persona
--   campaign          the journey's first campaign ('none' without one)
--   platform          the journey's first platform (social, review or order platform)
--   sessions          its sessions so far, in buckets
--   time_at_stage     from entering the stage to entering the next, or to its last
--                     activity when it dropped, in buckets
--   low_rating        it gave a rating of 1 or 2 ('given')
--   reviews_read      it read reviews on the site ('yes')
--   email_problem     an email to it bounced, or it unsubscribed or reported spam
--   late_delivery     an order of it was delivered after its estimated date (orders)
--   negative_voice    it said something negative (int_text_sentiment)
-- Scope 'all' counts every journey; each persona is a scope of its own too (where the
-- persona factor is left out).
with journey_stages as (
    select * from {{ ref('int_journey_stages') }}
    where population in {{ var_list('funnel_populations') }}
        and stage_order between 1 and 4
        and outcome in ('advanced', 'dropped')
),

journeys as (
    select journey_id, last_activity_at from {{ ref('fct_journeys') }}
),

events as (
    select * from {{ ref('fct_journey_events') }}
),

customers as (
    select customer_id, persona from {{ ref('dim_customers') }}
),

sentiment as (
    select event_id, sentiment_label from {{ ref('int_text_sentiment') }}
),

late_deliveries as (
    select distinct event_id from {{ ref('stg_orders__events') }}
    where event_type = 'order_delivered'
        and try_cast(json_extract_string(properties, '$.delivered_late') as boolean)
),

at_stage as (
    select
        journey_stages.journey_id,
        journey_stages.stage,
        journey_stages.stage_order,
        journey_stages.outcome = 'dropped' as dropped,
        coalesce(customers.persona, 'other') as persona,
        journey_stages.first_touch_channel,
        journey_stages.entered_at,
        -- What happened up to the stage: before the next stage, or ever for a drop.
        coalesce(journey_stages.next_stage_entered_at, 'infinity'::timestamptz) as bound,
        epoch(
            coalesce(journey_stages.next_stage_entered_at, journeys.last_activity_at)
            - journey_stages.entered_at
        ) as seconds_at_stage
    from journey_stages
    inner join journeys on journey_stages.journey_id = journeys.journey_id
    left join customers on journey_stages.customer_id = customers.customer_id
),

before_bound as (
    select
        at_stage.journey_id,
        at_stage.stage,
        events.event_id,
        events.occurred_at,
        events.event_type,
        events.stage as event_stage,
        events.touchpoint_id,
        events.is_activity,
        events.session_id,
        events.campaign,
        events.platform,
        events.rating,
        late_deliveries.event_id is not null as delivered_late
    from at_stage
    inner join events
        on at_stage.journey_id = events.journey_id
        and events.occurred_at < at_stage.bound
    left join late_deliveries on events.event_id = late_deliveries.event_id
),

journey_facts as (
    select
        journey_id,
        stage,
        count(distinct session_id) filter (where is_activity) as sessions,
        arg_min(campaign, occurred_at) filter (where campaign is not null) as first_campaign,
        arg_min(platform, occurred_at) filter (where platform is not null) as first_platform,
        bool_or(rating <= 2) as low_rating_given,
        bool_or(event_type = 'review_page_view') as reviews_read,
        bool_or(event_type = 'email_bounced') as bounced,
        bool_or(event_type = 'email_unsubscribed') as unsubscribed,
        bool_or(event_type = 'email_spam_reported') as spam_reported,
        bool_or(delivered_late) as delivered_late
    from before_bound
    group by journey_id, stage
),

negative as (
    select distinct before_bound.journey_id, before_bound.stage
    from before_bound
    inner join sentiment on before_bound.event_id = sentiment.event_id
    where sentiment.sentiment_label = 'negative'
),

touched as (
    select distinct journey_id, stage, touchpoint_id
    from before_bound
    where is_activity and event_stage = stage and touchpoint_id != 'unclassified'
),

factors as (
    select journey_id, stage, 'touchpoint' as factor, touchpoint_id as level from touched
    union all
    select journey_id, stage, 'first_touch_channel', first_touch_channel
    from at_stage where first_touch_channel is not null
    union all
    select journey_id, stage, 'persona', persona from at_stage
    union all
    select journey_id, stage, 'campaign', coalesce(first_campaign, 'none') from journey_facts
    union all
    select journey_id, stage, 'platform', first_platform
    from journey_facts where first_platform is not null
    union all
    select
        journey_id,
        stage,
        'sessions',
        case
            when sessions <= 1 then '1'
            when sessions = 2 then '2'
            when sessions <= 4 then '3-4'
            when sessions <= 9 then '5-9'
            else '10+'
        end
    from journey_facts
    union all
    select
        journey_id,
        stage,
        'time_at_stage',
        case
            when seconds_at_stage < 60 then 'under 1 minute'
            when seconds_at_stage < 600 then '1-10 minutes'
            when seconds_at_stage < 3600 then '10-60 minutes'
            when seconds_at_stage < 86400 then '1-24 hours'
            when seconds_at_stage < 7 * 86400 then '1-7 days'
            else '7 days or more'
        end
    from at_stage
    union all
    select journey_id, stage, 'low_rating', 'given' from journey_facts where low_rating_given
    union all
    select journey_id, stage, 'reviews_read', 'yes' from journey_facts where reviews_read
    union all
    select journey_id, stage, 'email_problem', 'bounce' from journey_facts where bounced
    union all
    select journey_id, stage, 'email_problem', 'unsubscribe' from journey_facts where unsubscribed
    union all
    select journey_id, stage, 'email_problem', 'spam_report' from journey_facts where spam_reported
    union all
    select journey_id, stage, 'late_delivery', 'yes' from journey_facts where delivered_late
    union all
    select journey_id, stage, 'negative_voice', 'yes' from negative
),

scoped as (
    -- Every journey in scope 'all', and again in its persona's scope.
    select 'all' as persona_scope, * from at_stage
    union all
    select persona as persona_scope, * from at_stage
),

totals as (
    select
        persona_scope,
        stage,
        any_value(stage_order) as stage_order,
        count(*) filter (where dropped) as dropped_total,
        count(*) filter (where not dropped) as advanced_total
    from scoped
    group by persona_scope, stage
),

with_factor as (
    select
        scoped.persona_scope,
        scoped.stage,
        factors.factor,
        factors.level,
        count(*) filter (where scoped.dropped) as dropped_with,
        count(*) filter (where not scoped.dropped) as advanced_with
    from scoped
    inner join factors
        on scoped.journey_id = factors.journey_id
        and scoped.stage = factors.stage
    where not (scoped.persona_scope != 'all' and factors.factor = 'persona')
    group by all
),

final as (
    select
        with_factor.persona_scope,
        with_factor.stage,
        totals.stage_order,
        with_factor.factor,
        with_factor.level,
        with_factor.dropped_with,
        with_factor.advanced_with,
        totals.dropped_total - with_factor.dropped_with as dropped_without,
        totals.advanced_total - with_factor.advanced_with as advanced_without
    from with_factor
    inner join totals
        on with_factor.persona_scope = totals.persona_scope
        and with_factor.stage = totals.stage
)

select * from final
