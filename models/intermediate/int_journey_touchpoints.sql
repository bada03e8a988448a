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
-- One row per journey, stage and touchpoint the journey's activity touched.
with journey_events as (
    select * from {{ ref('fct_journey_events') }}
    where journey_id is not null and is_activity
    {% if is_incremental() %}
        and customer_id in (select customer_id from {{ ref('int_customers_changed') }})
    {% endif %}
),

touches as (
    select
        journey_id,
        any_value(customer_id) as customer_id,
        stage,
        touchpoint_id,
        count(*) as event_count,
        min(occurred_at) as first_touched_at,
        max(occurred_at) as last_touched_at
    from journey_events
    group by journey_id, stage, touchpoint_id
)

select * from touches
