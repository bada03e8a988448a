{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='delete+insert',
    )
}}
-- One row per event with text (reviews and social posts): its sentiment from the
-- sentiment_lexicon seed, an offline lexicon (english; see the seed's description).
-- Tokens are runs of letters and apostrophes. A word's score is flipped and damped
-- (x -0.75) when a negator is among the three tokens before it, and scaled by
-- 1 + the booster's score when a booster is right before it. The text's score is
-- the sum x normalised to -1..1 as x / sqrt(x^2 + 15). A night scores the events
-- its build wrote; a text's score only changes with the lexicon, and a changed
-- seed makes the next build a full refresh.
with texts as (
    select event_id, text, build_id
    from {{ ref('fct_journey_events') }}
    where text is not null and trim(text) != ''
    {% if is_incremental() %}
        and build_id = {{ build_id() }}
    {% endif %}
),

lexicon as (
    select * from {{ ref('sentiment_lexicon') }}
    where language = '{{ var("sentiment_language") }}'
),

split as (
    select
        event_id,
        regexp_split_to_array(lower(replace(text, '’', '''')), '[^a-z'']+') as tokens
    from texts
),

tokens as (
    select
        event_id,
        unnest(tokens) as token,
        unnest(range(1, len(tokens) + 1)) as position
    from split
),

tagged as (
    select
        tokens.event_id,
        tokens.position,
        lexicon.kind,
        lexicon.score
    from tokens
    inner join lexicon on tokens.token = lexicon.term
),

in_context as (
    select
        *,
        lag(kind) over by_position as kind_before,
        lag(score) over by_position as score_before,
        lag(position) over by_position as position_before,
        -- the nearest negator at or before this token
        max(position) filter (where kind = 'negator') over (
            partition by event_id order by position rows unbounded preceding
        ) as last_negator_position
    from tagged
    window by_position as (partition by event_id order by position)
),

word_scores as (
    select
        event_id,
        score
        * case
            when kind_before = 'booster' and position_before = position - 1
                then 1 + score_before
            else 1
        end
        * case
            when position - last_negator_position between 1 and 3 then -0.75
            else 1
        end as valence
    from in_context
    where kind = 'word'
),

scored as (
    select
        texts.event_id,
        texts.build_id,
        count(word_scores.valence) as sentiment_terms,
        coalesce(sum(word_scores.valence), 0) as sentiment_raw
    from texts
    left join word_scores on texts.event_id = word_scores.event_id
    group by texts.event_id, texts.build_id
),

final as (
    select
        event_id,
        sentiment_terms,
        sentiment_raw,
        sentiment_raw / sqrt(sentiment_raw * sentiment_raw + 15) as sentiment_score,
        case
            when sentiment_raw / sqrt(sentiment_raw * sentiment_raw + 15) >= 0.05 then 'positive'
            when sentiment_raw / sqrt(sentiment_raw * sentiment_raw + 15) <= -0.05 then 'negative'
            else 'neutral'
        end as sentiment_label,
        build_id
    from scored
)

select * from final
