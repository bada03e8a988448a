"""Email events: the SendGrid Event Webhook, stored one event object per line, or
the POST body as it was posted (a JSON array, on one line or pretty-printed over many;
see ``readers._read_document``).

A line may also hold a whole webhook POST body (a JSON array of events); such a
line is split into its events. ``timestamp`` is unix seconds. Custom arguments
(``utm_*``, ``user_id``, ``order_id``) are read when the sender attached them.

An event without ``sg_event_id`` (some ``dropped`` events, older webhook versions) gets
an id derived from its content (``common.derived_ids``) over ``DERIVED_ID_FIELDS``, when
it has a valid timestamp and a message id or an address; otherwise it is ``missing_id``.
An open that SendGrid flags ``sg_machine_open`` (a mail client fetching the message, as
Apple Mail Privacy Protection does) is ``email_machine_opened``, not ``email_opened``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from transforms.common import (
    AdapterResult,
    BatchContext,
    Rule,
    fill_derived_ids,
    fill_missing,
    json_object,
    missing_id_rule,
    parse_epoch_seconds,
    run_adapter,
    timestamp_rules,
    url_param,
    url_path,
    vocabulary_rule,
)
from transforms.pii import normalise_email
from transforms.readers import JSON_GLOBS, ParsedFile, read_jsonl

SOURCE = "email"
FILE_GLOBS = JSON_GLOBS

S = pl.String
NATIVE_DTYPE = pl.Struct(
    {
        "email": S,
        "timestamp": S,
        "event": S,
        "sg_event_id": S,
        "sg_message_id": S,
        "sg_machine_open": S,
        "url": S,
        "category": pl.List(S),
        "reason": S,
        "status": S,
        "type": S,
        "asm_group_id": S,
        "marketing_campaign_id": S,
        "marketing_campaign_name": S,
        "singlesend_name": S,
        "utm_source": S,
        "utm_medium": S,
        "utm_campaign": S,
        "utm_term": S,
        "utm_content": S,
        "user_id": S,
        "order_id": S,
    }
)

EVENTS: dict[str, str] = {
    "processed": "email_processed",
    "delivered": "email_delivered",
    "deferred": "email_deferred",
    "open": "email_opened",  # email_machine_opened where sg_machine_open is true
    "click": "email_clicked",
    "bounce": "email_bounced",
    "dropped": "email_dropped",
    "spamreport": "email_spam_reported",
    "unsubscribe": "email_unsubscribed",
    "group_unsubscribe": "email_group_unsubscribed",
    "group_resubscribe": "email_group_resubscribed",
}


# What tells one event from another when SendGrid gave it no sg_event_id: what happened,
# to which message and address, when, and the fields that differ between events of one
# message (the link clicked; a bounce's or drop's reason, type and status; the group).
DERIVED_ID_FIELDS = (
    "event",
    "machine_open",
    "sg_message_id",
    "email",
    "timestamp",
    "url",
    "reason",
    "type",
    "status",
    "asm_group_id",
)
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def _normalise(record: dict) -> dict:
    """SendGrid sends ``category`` as a string or a list of strings."""
    category = record.get("category")
    if isinstance(category, str):
        record = {**record, "category": [category]}
    return record


def parse_file(path: Path, ctx: BatchContext) -> AdapterResult:
    chunks = read_jsonl(path, ctx.limits, NATIVE_DTYPE, _normalise, split_arrays=True)
    return run_adapter(chunks, _prepare, ctx, path)


def _prepare(parsed: ParsedFile, ctx: BatchContext) -> tuple[pl.DataFrame, list[Rule]]:
    frame = parsed.records
    url = pl.col("url")
    given_id = ctx.identity(pl.col("sg_event_id"))
    flag = pl.col("sg_machine_open").str.strip_chars().str.to_lowercase()
    machine_open = pl.when(flag.is_in(_TRUE)).then(True).when(flag.is_in(_FALSE)).then(False)
    event = pl.col("event").str.strip_chars().str.to_lowercase()
    prepared = frame.with_columns(
        native_id=pl.when(given_id.str.strip_chars() != "").then(given_id),
        native_event=pl.col("event"),
        event_type=pl.when((event == "open") & machine_open)
        .then(pl.lit("email_machine_opened"))
        .otherwise(pl.col("event").str.to_lowercase().replace_strict(EVENTS, default=None)),
        _machine_open=machine_open,
        occurred_at=parse_epoch_seconds(pl.col("timestamp")),
        user_id=ctx.identity(pl.col("user_id")),
        _email=ctx.identity(normalise_email(pl.col("email"))),
        order_id=pl.col("order_id"),
        channel=pl.lit("email"),
        url=url,
        path=url_path(url),
        utm_source=fill_missing(pl.col("utm_source"), url_param, url, "utm_source"),
        utm_medium=fill_missing(pl.col("utm_medium"), url_param, url, "utm_medium").fill_null(
            "email"
        ),
        utm_campaign=fill_missing(pl.col("utm_campaign"), url_param, url, "utm_campaign"),
        utm_term=fill_missing(pl.col("utm_term"), url_param, url, "utm_term"),
        utm_content=fill_missing(pl.col("utm_content"), url_param, url, "utm_content"),
        properties=json_object(
            sg_message_id="sg_message_id",
            machine_open=machine_open,
            category="category",
            bounce_type="type",
            reason="reason",
            status="status",
            asm_group_id="asm_group_id",
            marketing_campaign_id="marketing_campaign_id",
        ),
    ).with_columns(
        campaign=pl.coalesce(
            "utm_campaign",
            "marketing_campaign_name",
            "singlesend_name",
            pl.col("category").list.first(),
        )
    )
    occurred = pl.col("occurred_at")
    normalised = {
        "event": event,
        "machine_open": pl.col("_machine_open").cast(pl.String),
        "email": pl.col("_email"),
        "timestamp": occurred.dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ"),
    }
    content = {name: normalised.get(name, pl.col(name)) for name in DERIVED_ID_FIELDS}
    usable = occurred.is_not_null() & (
        pl.col("sg_message_id").is_not_null() | pl.col("_email").is_not_null()
    )
    prepared = fill_derived_ids(prepared, content, usable, ctx.salt)
    rules = [
        missing_id_rule(
            pl.col("native_id"),
            "sg_event_id, nor a timestamp with a message id or address to derive one from",
            ctx,
        ),
        Rule(
            "missing_identity",
            pl.col("_email").is_null() | ~pl.col("_email").str.contains("@"),
            pl.lit("the event has no recipient email address"),
        ),
        *timestamp_rules(pl.col("timestamp"), pl.col("occurred_at"), ctx),
        vocabulary_rule(pl.col("event_type"), pl.col("native_event"), "event"),
    ]
    return prepared, rules
