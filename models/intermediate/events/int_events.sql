{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        tags=['intermediate', 'events'],
    )
}}
-- Every canonical event once, with its identity node, stage and touchpoint, and the
-- columns the marts use (the lake keeps the rest: url, properties, source file).
-- Incremental: each night re-reads the landing dates of the lookback window and adds
-- the events it does not hold yet, stamped with the build's number.
with web as (
    select * from {{ ref('stg_web__events') }}
),

email as (
    select * from {{ ref('stg_email__events') }}
),

social as (
    select * from {{ ref('stg_social__events') }}
),

reviews as (
    select * from {{ ref('stg_reviews__events') }}
),

orders as (
    select * from {{ ref('stg_orders__events') }}
),

event_types as (
    select * from {{ ref('event_types') }}
),

stage_rules as (
    select * from {{ ref('stage_rules') }}
),

stages as (
    select * from {{ ref('stages') }}
),

touchpoint_rules as (
    select * from {{ ref('touchpoint_rules') }}
),

loyalty_signals as (
    select * from {{ ref('loyalty_signals') }}
),

unioned as (
    select * from web
    union all by name
    select * from email
    union all by name
    select * from social
    union all by name
    select * from reviews
    union all by name
    select * from orders
),

-- An event re-delivered after the ingestion's dedupe lookback can sit in two landing
-- dates: the earliest keeps it.
in_window as (
    select * from unioned
    {% if is_incremental() %}
    where landing_date >= {{ window_start() }}
        and event_id not in (select event_id from {{ this }})
    {% endif %}
    qualify row_number() over (
        partition by event_id order by landing_date, source_file, source_line
    ) = 1
),

-- Rules are matched once per distinct combination of the fields they look at,
-- not once per event.
signatures as (
    select
        row_number() over () as signature_id,
        *
    from (
        select distinct source, event_type, native_event, utm_medium, campaign, path, referrer
        from in_window
    )
),

signature_stages as (
    {{ first_matching_rule(
        'stage_rules', 'stage',
        ['event_type', 'native_event', 'utm_medium', 'campaign', 'path']
    ) }}
),

signature_touchpoints as (
    {{ first_matching_rule(
        'touchpoint_rules', 'touchpoint_id',
        ['event_type', 'native_event', 'utm_medium', 'campaign', 'path', 'referrer']
    ) }}
),

signature_loyalty as (
    select
        signatures.signature_id,
        loyalty_signals.signal,
        loyalty_signals.recommended
    from signatures
    inner join loyalty_signals
        on signatures.source = loyalty_signals.source
        and {{ rule_matches('loyalty_signals.event_type', 'signatures.event_type') }}
        and {{ rule_matches('loyalty_signals.native_event', 'signatures.native_event') }}
        and {{ rule_matches('loyalty_signals.campaign', 'signatures.campaign') }}
        and {{ rule_matches('loyalty_signals.path', 'signatures.path') }}
    qualify row_number() over (
        partition by signatures.signature_id
        order by loyalty_signals.priority, loyalty_signals.rule_id
    ) = 1
),

classified_signatures as (
    select
        signatures.*,
        coalesce(signature_stages.stage, 'unclassified') as stage,
        coalesce(signature_touchpoints.touchpoint_id, 'unclassified') as touchpoint_id,
        signature_loyalty.signal as loyalty_signal,
        coalesce(signature_loyalty.recommended, false) as signal_needs_recommendation
    from signatures
    left join signature_stages on signatures.signature_id = signature_stages.signature_id
    left join signature_touchpoints
        on signatures.signature_id = signature_touchpoints.signature_id
    left join signature_loyalty on signatures.signature_id = signature_loyalty.signature_id
),

classified as (
    select
        in_window.*,
        classified_signatures.stage,
        coalesce(stages.stage_order, 0) as stage_order,
        coalesce(stages.funnel = 'post_purchase', false) as is_post_purchase,
        classified_signatures.touchpoint_id,
        coalesce(event_types.initiated_by = 'customer', true) as is_activity,
        coalesce(event_types.is_conversion, false) as is_conversion,
        {{ identity_node('user', 'in_window.user_id') }} as user_node,
        {{ identity_node('email', 'in_window.email_sha256') }} as email_node,
        {{ identity_node('handle', 'in_window.social_handle_sha256') }} as handle_node,
        {{ identity_node('anon', 'in_window.anonymous_id') }} as anonymous_node,
        {{ identity_node('order', 'in_window.order_id') }} as order_node,
        case
            when not classified_signatures.signal_needs_recommendation
                or try_cast(json_extract_string(in_window.properties, '$.recommended') as boolean)
                then classified_signatures.loyalty_signal
        end as loyalty_signal
    from in_window
    inner join classified_signatures
        on in_window.source = classified_signatures.source
        and in_window.event_type is not distinct from classified_signatures.event_type
        and in_window.native_event is not distinct from classified_signatures.native_event
        and in_window.utm_medium is not distinct from classified_signatures.utm_medium
        and in_window.campaign is not distinct from classified_signatures.campaign
        and in_window.path is not distinct from classified_signatures.path
        and in_window.referrer is not distinct from classified_signatures.referrer
    left join stages
        on classified_signatures.stage = stages.stage
    left join event_types
        on in_window.event_type = event_types.event_type
),

final as (
    select
        event_id,
        source,
        event_type,
        -- The source's own name (a custom web event's track name): rules may match it.
        native_event,
        occurred_at,
        landing_date,
        user_node,
        email_node,
        handle_node,
        anonymous_node,
        -- An order id links what carries it (a marketplace review, a delivery) to the
        -- customer who placed the order.
        order_node,
        -- The strongest identifier; the event's customer is found through the
        -- strongest one that merges (with_customer_node), which changes as
        -- identifiers are listed, so it is not stored here. A record with none (an
        -- anonymous reviewer's review, an unsigned mention: the adapters mark it
        -- unattributed) is a node of its own, so it is a customer of its own whose
        -- one journey is an unlinked voice: counted in volume, ratings and
        -- sentiment, joined to no one.
        coalesce(
            user_node, email_node, handle_node, anonymous_node, order_node,
            {{ identity_node('event', 'event_id') }}
        ) as identity_node,
        is_activity,
        is_conversion,
        -- repeat_order, recommendation or loyalty_programme (loyalty_signals seed)
        loyalty_signal,
        stage,
        stage_order,
        is_post_purchase,
        touchpoint_id,
        order_id,
        platform,
        campaign,
        utm_source,
        utm_medium,
        utm_campaign,
        path,
        rating,
        revenue,
        text,
        -- The language the record declares (reviews and social exports often do),
        -- as a lower-case code; null when it does not say.
        nullif(lower(trim(json_extract_string(properties, '$.language'))), '') as language,
        {{ build_id() }} as build_id
    from classified
)

select * from final
