-- One row per journey with its outcome as of the run date.
--
-- Before purchase (status):
--   converted:   the journey holds an order (event_types.is_conversion). An order
--                closes the pre-purchase journey: such a journey is never dropped
--                before or at purchase.
--   dropped:     no order, and no activity for longer than `journey_gap_days` before
--                the end of the run date (an abandoned checkout is a drop at purchase).
--   in_progress: neither yet. Not past the cutoff, so never counted as dropped.
-- After the order (post_purchase_outcome, converted journeys only):
--   retained:    a loyalty signal (loyalty_signals seed: a repeat order, a
--                recommendation, a loyalty programme action) came within
--                `return_window_days` of the journey's order, in this journey or a
--                later one of the customer;
--   lapsed:      the return window passed without one;
--   in_window:   the window is still open (right-censored).
-- A converted journey is in the experience stage from its order, and in loyalty from
-- its first loyalty signal within the window.
--
-- Population (exactly one per journey):
--   unlinked_voice: no order and only indirect records of the voice sources (reviews,
--                   mentions, comments): nothing on the company's own channels; and
--                   every journey of an unattributed record (no identifier at all: a
--                   customer of its own, followed by no one, whatever its kind);
--   unclassified:   activity that reached no stage (no stage rule matched);
--   known:          the customer has a login (user id), an email or a handle;
--   anonymous:      devices never identified.
-- The funnel, drop-off, variants, conformance and attribution count the populations
-- of the `funnel_populations` var (known and anonymous).
with journeys as (
    select * from {{ ref('int_journeys') }}
),

stages as (
    select * from {{ ref('dim_stages') }}
),

identities as (
    select * from {{ ref('int_identity__customers') }}
),

signals as (
    select customer_id, event_id, occurred_at, loyalty_signal
    from {{ ref('fct_journey_events') }}
    where is_activity and loyalty_signal is not null
),

known_customers as (
    select customer_id
    from identities
    where split_part(node, ':', 1) in ('user', 'email', 'handle')
    group by customer_id
),

unattributed_customers as (
    select customer_id
    from identities
    where identifier_kind = 'event'
    group by customer_id
),

-- The first loyalty signal of the customer after each converted journey's order.
first_signals as (
    select
        journeys.journey_id,
        min(signals.occurred_at) as signal_at,
        arg_min(signals.loyalty_signal, (signals.occurred_at, signals.event_id)) as signal
    from journeys
    inner join signals
        on journeys.customer_id = signals.customer_id
        and signals.occurred_at > journeys.converted_at
    group by journeys.journey_id
),

statused as (
    select
        journeys.*,
        {{ run_end() }} - journeys.last_activity_at > {{ journey_gap() }} as is_past_cutoff,
        journeys.converted_at + {{ return_window() }} as return_window_ends_at,
        case
            when first_signals.signal_at <= journeys.converted_at + {{ return_window() }}
                then first_signals.signal_at
        end as retained_at,
        case
            when first_signals.signal_at <= journeys.converted_at + {{ return_window() }}
                then first_signals.signal
        end as loyalty_signal,
        known_customers.customer_id is not null as is_known_customer,
        unattributed_customers.customer_id is not null as is_unattributed
    from journeys
    left join first_signals on journeys.journey_id = first_signals.journey_id
    left join known_customers on journeys.customer_id = known_customers.customer_id
    left join unattributed_customers
        on journeys.customer_id = unattributed_customers.customer_id
),

outcomes as (
    select
        *,
        case
            when converted_at is not null then 'converted'
            when is_past_cutoff then 'dropped'
            else 'in_progress'
        end as status,
        case
            when converted_at is null then null
            when retained_at is not null then 'retained'
            when {{ run_end() }} > return_window_ends_at then 'lapsed'
            else 'in_window'
        end as post_purchase_outcome,
        case
            when converted_at is null then furthest_stage_order
            when retained_at is not null then 5
            else 4
        end as journey_stage_order,
        case
            when converted_at is null and (owned_activity_events = 0 or is_unattributed)
                then 'unlinked_voice'
            when converted_at is null and furthest_stage_order = 0 then 'unclassified'
            when is_known_customer then 'known'
            else 'anonymous'
        end as population
    from statused
),

final as (
    select
        outcomes.journey_id,
        outcomes.customer_id,
        outcomes.journey_number,
        outcomes.population,
        outcomes.started_at,
        outcomes.last_activity_at,
        epoch(outcomes.last_activity_at - outcomes.started_at) as duration_seconds,
        outcomes.status,
        outcomes.post_purchase_outcome,
        outcomes.loyalty_signal,
        outcomes.retained_at,
        outcomes.return_window_ends_at,
        furthest.stage as furthest_stage,
        outcomes.journey_stage_order as furthest_stage_order,
        last_stage.stage as last_touch_stage,
        outcomes.first_touchpoint_id,
        outcomes.first_touch_channel,
        outcomes.last_touchpoint_id,
        outcomes.session_count,
        outcomes.activity_event_count,
        outcomes.owned_activity_events,
        coalesce(outcomes.stage_1_entered_at, outcomes.converted_at) as discovery_entered_at,
        -- A journey that skipped a stage entered it when it reached a later one.
        coalesce(outcomes.stage_2_entered_at, outcomes.stage_3_entered_at, outcomes.converted_at)
            as consideration_entered_at,
        coalesce(outcomes.stage_3_entered_at, outcomes.converted_at) as purchase_entered_at,
        outcomes.converted_at as experience_entered_at,
        outcomes.retained_at as loyalty_entered_at,
        outcomes.converted_at,
        epoch(outcomes.converted_at - outcomes.started_at) as seconds_to_conversion,
        outcomes.orders,
        outcomes.revenue,
        outcomes.reviews,
        outcomes.order_reviews,
        outcomes.average_rating,
        epoch({{ run_end() }} - outcomes.last_activity_at) / 86400.0
            as days_since_last_activity,
        {{ run_date() }} as as_of_date
    from outcomes
    left join stages as furthest on outcomes.journey_stage_order = furthest.stage_order
    left join stages as last_stage on outcomes.last_touch_stage_order = last_stage.stage_order
)

select * from final
