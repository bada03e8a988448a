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

{#- `events` (a CTE or relation of int_events rows) with `customer_node`, the identifier
    whose customer each event belongs to: its strongest identifier (user id, then
    email, then handle, then device id, then order id) that merges, that is, is not in `listed` (the
    node column of int_identity__overloaded). A shared mailbox or a placeholder user
    id seen with a device of one person then goes with that person, not with the
    mailbox's or the placeholder's own customer. An event whose identifiers are all
    listed goes to its strongest one's customer (identity_node). Listed identifiers
    are few and change from night to night, so this is computed where events meet
    customers, as five hash joins against that short list. -#}
{% macro with_customer_node(events, listed) -%}
    {%- set kinds = ["user", "email", "handle", "anonymous", "order"] -%}
    select
        {{ events }}.*,
        coalesce(
            {%- for kind in kinds %}
            case when listed_{{ kind }}.node is null then {{ events }}.{{ kind }}_node end,
            {%- endfor %}
            {{ events }}.identity_node
        ) as customer_node
    from {{ events }}
    {%- for kind in kinds %}
    left join {{ listed }} as listed_{{ kind }}
        on {{ events }}.{{ kind }}_node = listed_{{ kind }}.node
    {%- endfor %}
{%- endmacro %}
