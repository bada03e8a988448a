-- What customers said, in their words, in two cuts:
--   speakers 'all'   per stage and touchpoint (and per stage as a whole, touchpoint_id
--                    '(all)'), the texts written at that stage;
--   speakers 'lost'  per stage (touchpoint_id '(all)'), the texts written anywhere in
--                    the journeys that dropped at that stage (lapsed, after the
--                    order), of the funnel's populations: what the customers the stage
--                    lost had said.
-- Each keeps the three most negative and the three most positive scored voice texts
-- (int_text_sentiment) with their rating, day and language. A text repeated word for
-- word (case, surrounding blanks, and words holding a digit such as order numbers
-- aside) is one quote, its most extreme copy, so three quotes are three different
-- things said. The text was masked at ingestion (addresses
-- and handles); a quote is cut at 200 characters. Ties go to the newer text.
with scored as (
    select * from {{ ref('int_text_sentiment') }}
    where sentiment_label in ('negative', 'positive')
),

events as (
    select * from {{ ref('fct_journey_events') }}
),

journey_stages as (
    select journey_id, stage from {{ ref('int_journey_stages') }}
    where outcome = 'dropped'
        and population in {{ var_list('funnel_populations') }}
),

texts as (
    select
        events.event_id,
        events.journey_id,
        events.stage,
        events.touchpoint_id,
        events.text,
        events.rating,
        events.occurred_at,
        scored.language,
        scored.sentiment_score,
        scored.sentiment_label as polarity
    from scored
    inner join events on scored.event_id = events.event_id
    where events.text is not null and trim(events.text) != ''
),

places as (
    select *, 'all' as speakers, touchpoint_id as place from texts
    union all
    select *, 'all' as speakers, '(all)' as place from texts
    union all
    select
        texts.* replace (journey_stages.stage as stage),
        'lost' as speakers,
        '(all)' as place
    from texts
    inner join journey_stages on texts.journey_id = journey_stages.journey_id
),

-- The most extreme copy of each distinct text, then the ranking over distinct texts.
extreme_first as (
    select
        *,
        case when polarity = 'negative' then sentiment_score else -sentiment_score end
            as extremity
    from places
),

distinct_texts as (
    select * from extreme_first
    qualify row_number() over (
        partition by
            speakers, stage, place, polarity,
            regexp_replace(lower(trim(text)), '\S*[0-9]\S*', '#', 'g')
        order by extremity, occurred_at desc, event_id
    ) = 1
),

ranked as (
    select
        *,
        row_number() over (
            partition by speakers, stage, place, polarity
            order by extremity, occurred_at desc, event_id
        ) as quote_rank
    from distinct_texts
),

final as (
    select
        speakers,
        stage,
        place as touchpoint_id,
        polarity,
        quote_rank,
        case
            when length(text) > 200 then left(text, 199) || '…'
            else text
        end as quote,
        rating,
        cast(occurred_at as date) as said_on,
        language,
        sentiment_score,
        event_id
    from ranked
    where quote_rank <= 3
)

select * from final
