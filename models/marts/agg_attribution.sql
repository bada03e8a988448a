-- Credit for conversions by channel and by touchpoint under six models. Each
-- converted journey is one conversion, credited over its touches before the order
-- (int_attribution_paths):
--   first_touch     all to the first touch;
--   last_touch      all to the last touch;
--   linear          equal parts;
--   position_based  40% first, 40% last, 20% shared by the touches between (one
--                   touch: all; two: half each);
--   time_decay      weights halving every attribution_half_life_days before the order;
--   markov          conversions shared in proportion to the removal effects of the
--                   first-order Markov chain over converted and dropped journeys
--                   (int_attribution_markov).
-- Per model and level, credits add up to the conversions.
with paths as (
    select * from {{ ref('int_attribution_paths') }}
),

markov as (
    select * from {{ ref('int_attribution_markov') }}
),

touchpoints as (
    select * from {{ ref('dim_touchpoints') }}
),

converted as (
    select
        *,
        pow(
            0.5,
            epoch(converted_at - touched_at) / (86400.0 * {{ var('attribution_half_life_days') }})
        ) as decay_weight
    from paths
    where status = 'converted'
),

journey_credits as (
    select
        level,
        node,
        channel,
        journey_id,
        revenue,
        case when touch_number = 1 then 1.0 else 0.0 end as first_touch,
        case when touch_number = touches then 1.0 else 0.0 end as last_touch,
        1.0 / touches as linear,
        case
            when touches = 1 then 1.0
            when touches = 2 then 0.5
            when touch_number in (1, touches) then 0.4
            else 0.2 / (touches - 2)
        end as position_based,
        decay_weight / sum(decay_weight) over (partition by level, journey_id) as time_decay
    from converted
),

unpivoted as (
    unpivot journey_credits
    on first_touch, last_touch, linear, position_based, time_decay
    into name attribution_model value credit
),

heuristic as (
    select
        attribution_model,
        level,
        node,
        any_value(channel) as channel,
        sum(credit) as conversions,
        sum(credit * coalesce(revenue, 0)) as revenue,
        count(distinct journey_id) as journeys_touched,
        cast(null as double) as removal_effect
    from unpivoted
    group by attribution_model, level, node
),

level_totals as (
    select
        level,
        count(distinct journey_id) as conversions,
        sum(revenue) as revenue
    from (select distinct level, journey_id, coalesce(revenue, 0) as revenue from converted)
    group by level
),

markov_credit as (
    select
        'markov' as attribution_model,
        markov.level,
        markov.node,
        touched.channel,
        level_totals.conversions * markov.removal_effect
            / nullif(sum(markov.removal_effect) over (partition by markov.level), 0) as conversions,
        level_totals.revenue * markov.removal_effect
            / nullif(sum(markov.removal_effect) over (partition by markov.level), 0) as revenue,
        coalesce(touched.journeys_touched, 0) as journeys_touched,
        markov.removal_effect
    from markov
    inner join level_totals on markov.level = level_totals.level
    left join (
        select level, node, any_value(channel) as channel, count(distinct journey_id) as journeys_touched
        from converted
        group by level, node
    ) as touched on markov.level = touched.level and markov.node = touched.node
),

credits as (
    select * from heuristic
    union all
    select * from markov_credit
),

final as (
    select
        credits.attribution_model,
        credits.level,
        credits.node,
        case
            when credits.level = 'channel' then credits.node
            -- a site touchpoint is a touch only as a direct visit
            when touchpoints.channel = 'web' then 'direct'
            else coalesce(credits.channel, touchpoints.channel)
        end as channel,
        case when credits.level = 'touchpoint' then credits.node end as touchpoint_id,
        -- Rounded: fractions of a conversion below a millionth are float noise.
        round(coalesce(credits.conversions, 0), 6) as conversions,
        round(coalesce(credits.revenue, 0), 4) as revenue,
        round(coalesce(credits.conversions, 0) / level_totals.conversions, 6) as credit_share,
        credits.journeys_touched,
        round(credits.removal_effect, 6) as removal_effect
    from credits
    inner join level_totals on credits.level = level_totals.level
    left join touchpoints
        on credits.level = 'touchpoint' and credits.node = touchpoints.touchpoint_id
)

select * from final
