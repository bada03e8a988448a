{{
    config(
        materialized='incremental',
        unique_key='customer_id',
        incremental_strategy='delete+insert',
        pre_hook="{{ delete_merged_customers() }}",
        tags=['intermediate', 'journeys'],
    )
}}
-- depends_on: {{ ref('int_customers_changed') }} {{ ref('int_identity__customers') }}
-- One row per step of a journey: a run of consecutive customer events at one
-- touchpoint and stage (ten product views in a row are one step). The paths of
-- agg_transitions, agg_journey_variants, agg_attribution and the ideal path
-- conformance are made of these steps. Events no rule classifies are left out.
with journey_events as (
    select * from {{ ref('fct_journey_events') }}
    where journey_id is not null
        and is_activity
        and touchpoint_id != 'unclassified'
        and stage != 'unclassified'
    {% if is_incremental() %}
        and customer_id in (select customer_id from {{ ref('int_customers_changed') }})
    {% endif %}
),

ordered as (
    select
        *,
        row_number() over (partition by journey_id order by occurred_at, event_id) as event_number,
        row_number() over (partition by session_id order by occurred_at, event_id)
            as session_event_number,
        min(occurred_at) filter (where is_conversion) over (partition by journey_id)
            as journey_converted_at
    from journey_events
),

run_starts as (
    select
        *,
        case
            when lag(touchpoint_id) over by_time = touchpoint_id
                and lag(stage) over by_time = stage then 0
            else 1
        end as starts_step
    from ordered
    window by_time as (partition by journey_id order by event_number)
),

numbered as (
    select
        *,
        sum(starts_step) over (
            partition by journey_id order by event_number rows unbounded preceding
        ) as step_number
    from run_starts
),

steps as (
    select
        journey_id,
        any_value(customer_id) as customer_id,
        step_number,
        any_value(touchpoint_id) as touchpoint_id,
        any_value(touchpoint_type) as touchpoint_type,
        any_value(channel) as channel,
        any_value(stage) as stage,
        any_value(stage_order) as stage_order,
        max(journey_stage_order_so_far) as journey_stage_order_so_far,
        min(occurred_at) as started_at,
        max(occurred_at) as ended_at,
        count(*) as event_count,
        bool_or(session_event_number = 1) as starts_session,
        bool_or(is_conversion) as has_conversion,
        any_value(journey_converted_at) as journey_converted_at
    from numbered
    group by journey_id, step_number
)

select * from steps
