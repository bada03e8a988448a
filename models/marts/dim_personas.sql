-- One row per persona of the persona_rules seed: its label and what puts a customer in
-- it (the notes of its rules, tried in priority order), so that BI tools can name the
-- personas of dim_customers without reading the rule tables.
with persona_rules as (
    select * from {{ ref('persona_rules') }}
),

final as (
    select
        persona,
        arg_min(label, priority) as label,
        string_agg(note, '; ' order by priority) as description,
        min(priority) as priority,
        count(*) as rule_count
    from persona_rules
    group by persona
)

select * from final
