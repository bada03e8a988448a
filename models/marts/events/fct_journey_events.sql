{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='delete+insert',
        pre_hook="{{ delete_merged_customers() }}",
        tags=['marts', 'events'],
    )
}}
-- depends_on: {{ ref('int_identity__customers') }} {{ ref('int_customers_changed') }}
with sessionized as (
    select * from {{ ref('int_events_sessionized') }}
    {% if is_incremental() %}
    -- The rows this build rewrote, and every row of the changed customers, whom the
    -- pre-hook deleted: a build that selects the marts alone rewrote no rows upstream.
    where build_id = {{ build_id() }}
        or customer_id in (select customer_id from {{ ref('int_customers_changed') }})
    {% endif %}
),

events as (
    select * from {{ ref('int_events') }}
),

touchpoints as (
    select * from {{ ref('dim_touchpoints') }}
),

joined as (
    select
        sessionized.event_id,
        sessionized.customer_id,
        sessionized.session_id,
        sessionized.journey_id,
        sessionized.session_number,
        sessionized.journey_number,
        sessionized.occurred_at,
        events.source,
        events.event_type,
        events.native_event,
        sessionized.is_activity,
        events.is_conversion,
        events.loyalty_signal,
        events.stage,
        events.stage_order,
        events.touchpoint_id,
        touchpoints.touchpoint_type,
        touchpoints.channel,
        events.campaign,
        events.utm_source,
        events.utm_medium,
        events.utm_campaign,
        events.path,
        events.platform,
        events.order_id,
        events.rating,
        events.revenue,
        events.text,
        events.language,
        -- The furthest stage the journey's activity has reached up to and
        -- including this event (null for company events).
        sessionized.journey_stage_order_so_far,
        sessionized.landing_date,
        sessionized.build_id
    from sessionized
    inner join events on sessionized.event_id = events.event_id
    left join touchpoints on events.touchpoint_id = touchpoints.touchpoint_id
),

final as (
    select * from joined
)

select * from final
