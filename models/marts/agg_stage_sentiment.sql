-- The emotion curve of the journey map: per period (of the event), stage,
-- touchpoint and persona, the review ratings and the sentiment of the customers'
-- voice (int_text_sentiment: reviews, posts, comments, messages and shares, scored
-- per language; search queries are never in it). Ratings count every rated event.
-- Averages come with their sums and counts so any roll-up (all personas, all
-- periods) is sum / count; texts in a language without a scorer are counted apart.
with journey_events as (
    select * from {{ ref('fct_journey_events') }}
    where text is not null or rating is not null
),

sentiment as (
    select * from {{ ref('int_text_sentiment') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

touchpoints as (
    select * from {{ ref('dim_touchpoints') }}
),

scored as (
    select
        cast(date_trunc('{{ var("funnel_period") }}', journey_events.occurred_at) as date)
            as period_start,
        journey_events.stage,
        journey_events.stage_order,
        journey_events.touchpoint_id,
        coalesce(customers.persona, 'other') as persona,
        journey_events.rating,
        sentiment.sentiment_score,
        sentiment.sentiment_label
    from journey_events
    left join sentiment on journey_events.event_id = sentiment.event_id
    left join customers on journey_events.customer_id = customers.customer_id
    -- text that is not the customers' voice (a search query) counts for nothing here
    where journey_events.rating is not null or sentiment.event_id is not null
),

final as (
    select
        scored.period_start,
        '{{ var("funnel_period") }}' as period_grain,
        scored.stage,
        scored.stage_order,
        scored.touchpoint_id,
        touchpoints.touchpoint_type,
        scored.persona,
        count(scored.sentiment_score) as texts,
        -- Rounded: a sum of doubles depends on the order rows arrive in, and the
        -- same data must give the same mart on a nightly and a full build.
        round(sum(scored.sentiment_score), 6) as sentiment_sum,
        round(avg(scored.sentiment_score), 6) as average_sentiment,
        count(*) filter (where scored.sentiment_label = 'positive') as texts_positive,
        count(*) filter (where scored.sentiment_label = 'neutral') as texts_neutral,
        count(*) filter (where scored.sentiment_label = 'negative') as texts_negative,
        count(*) filter (where scored.sentiment_label = 'not_scored') as texts_not_scored,
        count(scored.rating) as ratings,
        sum(scored.rating) as rating_sum,
        round(avg(scored.rating), 6) as average_rating,
        count(*) filter (where scored.rating <= 2) as ratings_low
    from scored
    left join touchpoints on scored.touchpoint_id = touchpoints.touchpoint_id
    group by all
)

select * from final
