"""Web events: Segment-spec JSON lines (RudderStack emits the same shape).

One call per line: ``page``/``screen``, ``track``, ``identify`` or ``alias``.
``occurred_at`` is ``timestamp`` when the collector set it; otherwise it is
corrected for the device clock as Segment does:
``receivedAt - (sentAt - originalTimestamp)``; otherwise ``originalTimestamp``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from transforms.common import (
    AdapterResult,
    BatchContext,
    Rule,
    excerpt,
    fill_missing,
    json_object,
    missing_id_rule,
    number,
    parse_timestamp,
    run_adapter,
    timestamp_rules,
    url_param,
    url_path,
    vocabulary_rule,
)
from transforms.pii import normalise_email
from transforms.readers import ParsedFile, read_jsonl

SOURCE = "web"
FILE_GLOBS = ("*.jsonl", "*.jsonl.gz", "*.ndjson", "*.ndjson.gz", "*.json", "*.json.gz")

S = pl.String
# Only the fields the canonical event uses: every extra field costs decode time on
# every line (Segment payloads carry many more, which the decoder skips).
_PAGE = pl.Struct({"url": S, "path": S, "referrer": S, "title": S})
_CAMPAIGN = pl.Struct({"source": S, "medium": S, "name": S, "term": S, "content": S})
_PROPERTIES = pl.Struct(
    {
        "url": S,
        "path": S,
        "referrer": S,
        "title": S,
        "product_id": S,
        "category": S,
        "name": S,
        "price": S,
        "quantity": S,
        "currency": S,
        "query": S,
        "order_id": S,
        "revenue": S,
        "total": S,
        "coupon": S,
        "step": S,
    }
)
NATIVE_DTYPE = pl.Struct(
    {
        "type": S,
        "event": S,
        "name": S,
        "messageId": S,
        "anonymousId": S,
        "userId": S,
        "previousId": S,
        "timestamp": S,
        "originalTimestamp": S,
        "sentAt": S,
        "receivedAt": S,
        "context": pl.Struct(
            {"page": _PAGE, "campaign": _CAMPAIGN, "traits": pl.Struct({"email": S})}
        ),
        "properties": _PROPERTIES,
        "traits": pl.Struct({"email": S}),
    }
)

# Segment e-commerce spec v2 and common lifecycle events -> canonical event_type.
TRACK_EVENTS: dict[str, str] = {
    "Products Searched": "products_searched",
    "Product List Viewed": "product_list_view",
    "Product Viewed": "product_view",
    "Product Added": "add_to_cart",
    "Product Removed": "remove_from_cart",
    "Checkout Started": "checkout_started",
    "Payment Info Entered": "payment_info_entered",
    "Coupon Applied": "coupon_applied",
    "Order Completed": "order_completed",
    "Order Refunded": "order_refunded",
    "Signed Up": "signed_up",
    "Signed In": "signed_in",
    "Newsletter Subscribed": "newsletter_subscribed",
    "Reviews Viewed": "review_page_view",
}
CALL_TYPES: dict[str, str] = {
    "page": "page_view",
    "screen": "page_view",
    "identify": "identify",
    "alias": "identify",
}


def parse_file(path: Path, ctx: BatchContext) -> AdapterResult:
    return run_adapter(read_jsonl(path, ctx.limits, NATIVE_DTYPE), _prepare, ctx, path)


def _prepare(parsed: ParsedFile, ctx: BatchContext) -> tuple[pl.DataFrame, list[Rule]]:
    frame = parsed.records.unnest("context", separator="_").unnest("properties", separator="_p_")
    frame = frame.rename(lambda c: c.replace("properties_p_", "p_"))
    call = pl.col("type").str.to_lowercase()
    # Only calls without a collector timestamp need the clock correction; masking the
    # others first keeps the three extra parses to those rows.
    untimed = pl.col("timestamp").is_null()
    client_ts = parse_timestamp(pl.when(untimed).then(pl.col("originalTimestamp")))
    skew_corrected = parse_timestamp(pl.when(untimed).then(pl.col("receivedAt"))) - (
        parse_timestamp(pl.when(untimed).then(pl.col("sentAt"))) - client_ts
    )
    url = pl.coalesce("p_url", pl.col("context_page").struct.field("url"))
    campaign = pl.col("context_campaign")
    prepared = frame.with_columns(
        native_id=pl.col("messageId"),
        native_event=pl.when(call == "track").then(pl.col("event")).otherwise(call),
        event_type=pl.when(call == "track")
        .then(pl.col("event").replace_strict(TRACK_EVENTS, default=None))
        .otherwise(call.replace_strict(CALL_TYPES, default=None)),
        _ts_text=pl.coalesce("timestamp", "originalTimestamp"),
        occurred_at=pl.when(pl.col("timestamp").is_not_null())
        .then(parse_timestamp(pl.col("timestamp")))
        .otherwise(pl.coalesce(skew_corrected, client_ts)),
        anonymous_id=ctx.identity(
            pl.when(call == "alias")
            .then(pl.coalesce("previousId", "anonymousId"))
            .otherwise(pl.col("anonymousId"))
        ),
        user_id=ctx.identity(pl.col("userId")),
        _email=ctx.identity(
            normalise_email(
                pl.coalesce(
                    pl.col("traits").struct.field("email"),
                    pl.col("context_traits").struct.field("email"),
                )
            )
        ),
        order_id=pl.col("p_order_id"),
        channel=pl.lit("web"),
        url=url,
        path=fill_missing(
            pl.coalesce("p_path", pl.col("context_page").struct.field("path")), url_path, url
        ),
        referrer=pl.coalesce("p_referrer", pl.col("context_page").struct.field("referrer")),
        utm_source=fill_missing(campaign.struct.field("source"), url_param, url, "utm_source"),
        utm_medium=fill_missing(campaign.struct.field("medium"), url_param, url, "utm_medium"),
        utm_campaign=fill_missing(campaign.struct.field("name"), url_param, url, "utm_campaign"),
        utm_term=fill_missing(campaign.struct.field("term"), url_param, url, "utm_term"),
        utm_content=fill_missing(campaign.struct.field("content"), url_param, url, "utm_content"),
        revenue=number(pl.coalesce("p_revenue", "p_total")),
        _revenue_text=pl.coalesce("p_revenue", "p_total"),
        text=pl.col("p_query"),
        properties=json_object(
            title=pl.coalesce("p_title", pl.col("context_page").struct.field("title")),
            product_id="p_product_id",
            category="p_category",
            name=pl.coalesce("p_name", "name"),
            price=number(pl.col("p_price")),
            quantity=pl.col("p_quantity").cast(pl.Int64, strict=False),
            currency="p_currency",
            coupon="p_coupon",
            step="p_step",
        ),
    ).with_columns(campaign=pl.col("utm_campaign"))

    rules = [
        missing_id_rule(pl.col("native_id"), "messageId", ctx),
        Rule(
            "missing_identity",
            pl.col("anonymous_id").is_null() & pl.col("user_id").is_null(),
            pl.lit("the call has neither anonymousId nor userId"),
        ),
        Rule(
            "wrong_type",
            pl.col("_revenue_text").is_not_null() & pl.col("revenue").is_null(),
            pl.format(
                "properties.revenue {} is not a finite number",
                excerpt(pl.col("_revenue_text")),
            ),
        ),
        *timestamp_rules(pl.col("_ts_text"), pl.col("occurred_at"), ctx),
        vocabulary_rule(pl.col("event_type"), pl.col("native_event"), "call/event"),
    ]
    return prepared, rules
