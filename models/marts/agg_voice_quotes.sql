-- What customers said, in their words: per stage and touchpoint (and per stage as a
-- whole, touchpoint_id '(all)'), the three most negative and the three most positive
-- scored voice texts (int_text_sentiment), with their rating, day and language. The
-- text was masked at ingestion (addresses and handles); a quote is cut at 200
-- characters. Ties go to the newer text.
with scored as (
    select * from {{ ref('int_text_sentiment') }}
    where sentiment_label in ('negative', 'positive')
),

events as (
    select * from {{ ref('fct_journey_events') }}
),

texts as (
    select
        events.event_id,
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
    select *, touchpoint_id as place from texts
    union all
    select *, '(all)' as place from texts
),

ranked as (
    select
        *,
        row_number() over (
            partition by stage, place, polarity
            order by
                case when polarity = 'negative' then sentiment_score else -sentiment_score end,
                occurred_at desc,
                event_id
        ) as quote_rank
    from places
),

final as (
    select
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
