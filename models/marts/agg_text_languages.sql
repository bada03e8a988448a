-- How much of the customers' voice each scorer can read: per stage, touchpoint and
-- language, the voice texts (int_text_sentiment), how many were scored and their
-- sentiment. A language without a scorer shows as texts with none scored, so the
-- emotion curve's blind spots are counted, not hidden.
with journey_events as (
    select * from {{ ref('fct_journey_events') }}
),

sentiment as (
    select * from {{ ref('int_text_sentiment') }}
),

voice_texts as (
    select
        journey_events.stage,
        journey_events.stage_order,
        journey_events.touchpoint_id,
        coalesce(sentiment.language, 'unknown') as language,
        sentiment.language_source,
        sentiment.scorer,
        sentiment.sentiment_score
    from sentiment
    inner join journey_events on sentiment.event_id = journey_events.event_id
),

final as (
    select
        stage,
        stage_order,
        touchpoint_id,
        language,
        count(*) as texts,
        count(*) filter (where language_source = 'declared') as texts_declared,
        count(*) filter (where language_source = 'detected') as texts_detected,
        count(sentiment_score) as texts_scored,
        -- A language has one scorer; null when it has none.
        max(scorer) as scorer,
        -- Rounded so a nightly and a full build give the same mart.
        round(sum(sentiment_score), 6) as sentiment_sum,
        round(avg(sentiment_score), 6) as average_sentiment
    from voice_texts
    group by stage, stage_order, touchpoint_id, language
)

select * from final
