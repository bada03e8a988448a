{#- A rule column matches when it is empty (any value), '(none)' and the value is
    missing, or a SQL LIKE pattern the value matches. -#}
{% macro rule_matches(pattern, value) -%}
    ({{ pattern }} is null
        or ({{ pattern }} = '(none)' and coalesce({{ value }}, '') = '')
        or coalesce({{ value }}, '') like {{ pattern }})
{%- endmacro %}

{#- For each signature, the rule of `rules` with the lowest priority whose every
    condition in `fields` matches (source always must), as (signature_id, column). -#}
{% macro first_matching_rule(rules, column, fields) -%}
    select
        signatures.signature_id,
        {{ rules }}.{{ column }}
    from signatures
    inner join {{ rules }}
        on signatures.source = {{ rules }}.source
        {%- for field in fields %}
        and {{ rule_matches(rules ~ '.' ~ field, 'signatures.' ~ field) }}
        {%- endfor %}
    qualify row_number() over (
        partition by signatures.signature_id
        order by {{ rules }}.priority, {{ rules }}.rule_id
    ) = 1
{%- endmacro %}

{#- Identifier nodes of the identity graph: a kind prefix keeps ids of different
    kinds apart (a user id can never equal an email hash). -#}
{% macro identity_node(kind, column) -%}
    case when {{ column }} is not null and {{ column }} <> '' then '{{ kind }}:' || {{ column }} end
{%- endmacro %}

{#- A short, stable id from a key: the first 16 hex digits of its md5. -#}
{% macro short_id(prefix, key) -%}
    '{{ prefix }}_' || left(md5({{ key }}), 16)
{%- endmacro %}
