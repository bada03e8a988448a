{#- Identity hygiene: which identifiers the identity graph may merge customers through. -#}

{#- An identifier directly linked to more people than this (a shared device or
    mailbox, a test account, a bot's device id) does not merge them. -#}
{% macro max_customers_per_identifier() -%}
    {{ var("max_customers_per_identifier") | int }}
{%- endmacro %}

{#- Whether a node's value is a placeholder that cannot identify anyone ("true",
    "null", "undefined", "0", ...), compared lower case without surrounding spaces.
    The list is the pipeline's own (settings.IDENTITY_PLACEHOLDERS, passed by `cjm
    build` as a var); the adapters drop these values, so this guards lake data
    written before they did. -#}
{% macro is_placeholder_node(node) -%}
    {%- set placeholders = var("identity_placeholders", []) -%}
    {%- if placeholders -%}
    lower(trim(substr({{ node }}, strpos({{ node }}, ':') + 1))) in (
        {%- for value in placeholders -%}
        '{{ value | replace("'", "''") }}'{{ ", " if not loop.last }}
        {%- endfor -%}
    )
    {%- else -%}
    false
    {%- endif -%}
{%- endmacro %}
