"""Email events: the SendGrid Event Webhook, stored one event object per line.

A line may also hold a whole webhook POST body (a JSON array of events); such a
line is split into its events. ``timestamp`` is unix seconds. Custom arguments
(``utm_*``, ``user_id``, ``order_id``) are read when the sender attached them.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from transforms.common import (
    AdapterResult,
    BatchContext,
    Rule,
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
from transforms.readers import ParsedFile, read_jsonl

SOURCE = "email"
FILE_GLOBS = ("*.jsonl", "*.jsonl.gz", "*.ndjson", "*.ndjson.gz", "*.json", "*.json.gz")

S = pl.String
NATIVE_DTYPE = pl.Struct(
    {
        "email": S,
        "timestamp": S,
        "event": S,
        "sg_event_id": S,
        "sg_message_id": S,
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
    "open": "email_opened",
    "click": "email_clicked",
    "bounce": "email_bounced",
    "dropped": "email_dropped",
    "spamreport": "email_spam_reported",
    "unsubscribe": "email_unsubscribed",
    "group_unsubscribe": "email_group_unsubscribed",
    "group_resubscribe": "email_group_resubscribed",
}


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
    prepared = frame.with_columns(
        native_id=pl.col("sg_event_id"),
        native_event=pl.col("event"),
        event_type=pl.col("event").str.to_lowercase().replace_strict(EVENTS, default=None),
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
    rules = [
        missing_id_rule(pl.col("native_id"), "sg_event_id", ctx),
        Rule(
            "missing_identity",
            pl.col("_email").is_null() | ~pl.col("_email").str.contains("@"),
            pl.lit("the event has no recipient email address"),
        ),
        *timestamp_rules(pl.col("timestamp"), pl.col("occurred_at"), ctx),
        vocabulary_rule(pl.col("event_type"), pl.col("native_event"), "event"),
    ]
    return prepared, rules
