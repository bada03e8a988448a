"""Social events: a social-listening export, CSV (with a header) or JSON lines.

Columns: mention_id, platform, author_handle, created_at (ISO-8601), kind
(mention, comment, share, dm, ad_click), text, url, campaign, in_reply_to and,
when the listening tool scores it, sentiment.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from transforms.common import (
    AdapterResult,
    BatchContext,
    Rule,
    json_object,
    missing_id_rule,
    parse_timestamp,
    run_adapter,
    timestamp_rules,
    url_param,
    url_path,
    vocabulary_rule,
)
from transforms.readers import ParsedFile, is_csv, read_csv, read_jsonl

SOURCE = "social"
FILE_GLOBS = ("*.csv", "*.csv.gz", "*.jsonl", "*.jsonl.gz")
COLUMNS = [
    "mention_id",
    "platform",
    "author_handle",
    "created_at",
    "kind",
    "text",
    "url",
    "campaign",
    "in_reply_to",
    "sentiment",
]
REQUIRED = ["mention_id", "platform", "author_handle", "created_at", "kind"]
PII_COLUMNS = ("author_handle",)
KINDS: dict[str, str] = {
    "mention": "social_mention",
    "comment": "social_comment",
    "reply": "social_comment",
    "share": "social_share",
    "repost": "social_share",
    "dm": "social_dm",
    "ad_click": "social_ad_click",
}


def parse_file(path: Path, ctx: BatchContext) -> AdapterResult:
    if is_csv(path, ctx.limits):
        chunks = read_csv(path, ctx.limits, COLUMNS, REQUIRED, PII_COLUMNS)
    else:
        chunks = read_jsonl(path, ctx.limits, pl.Struct(dict.fromkeys(COLUMNS, pl.String)))
    return run_adapter(chunks, _prepare, ctx, path)


def _prepare(parsed: ParsedFile, ctx: BatchContext) -> tuple[pl.DataFrame, list[Rule]]:
    url = pl.col("url")
    kind = pl.col("kind").str.strip_chars().str.to_lowercase()
    prepared = parsed.records.with_columns(
        native_id=pl.col("mention_id"),
        native_event=pl.col("kind"),
        event_type=kind.replace_strict(KINDS, default=None),
        occurred_at=parse_timestamp(pl.col("created_at").str.strip_chars()),
        _handle=ctx.handle(pl.col("platform"), pl.col("author_handle")),
        platform=pl.col("platform").str.strip_chars().str.to_lowercase(),
        channel=pl.when(kind == "ad_click").then(pl.lit("paid_social")).otherwise(pl.lit("social")),
        url=url,
        path=url_path(url),
        utm_source=url_param(url, "utm_source"),
        utm_medium=url_param(url, "utm_medium"),
        utm_campaign=pl.coalesce(url_param(url, "utm_campaign"), "campaign"),
        utm_term=url_param(url, "utm_term"),
        utm_content=url_param(url, "utm_content"),
        campaign=pl.coalesce("campaign", url_param(url, "utm_campaign")),
        text=pl.col("text"),
        properties=json_object(
            in_reply_to="in_reply_to",
            sentiment=pl.col("sentiment").str.to_lowercase(),
        ),
    )
    rules = [
        missing_id_rule(pl.col("native_id"), "mention_id", ctx),
        Rule(
            "missing_identity",
            pl.col("_handle").is_null() | pl.col("platform").is_null(),
            pl.lit("the record has no author handle or no platform"),
        ),
        *timestamp_rules(pl.col("created_at"), pl.col("occurred_at"), ctx),
        vocabulary_rule(pl.col("event_type"), pl.col("native_event"), "kind"),
    ]
    return prepared, rules
