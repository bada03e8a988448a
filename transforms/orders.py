"""Orders: a marketplace or shop order export, JSON lines or CSV (with a header).

One record is one order as a snapshot of its current status: order_id, customer_id
(or customer_unique_id, preferred when both are given), email, status, purchased_at,
approved_at, shipped_at, delivered_at, estimated_delivery_at, canceled_at,
returned_at, updated_at (the time of the last status change), currency, platform,
and either items (JSON lines: a list of {product_id, seller_id, price, freight,
quantity}) or total (CSV: the order's value). Olist-style and Shopify-style column
names are read as aliases (``ALIASES``).

A record becomes one canonical event per status the order has reached, each with the
native id ``<order_id>:<event_type>``: order_completed at purchased_at (with the
revenue), order_approved, order_shipped and order_delivered at their times, and
order_canceled, order_unavailable, order_returned or order_refunded when the status
(or a canceled_at or returned_at) says so. A status event without a time of its own
is placed at updated_at, else at the record's latest time and marked
``time_inferred``. The same order exported again on a later day (a snapshot with
more statuses) therefore adds only its new events: ingestion drops the ones already
landed, and a record all of whose events were already landed is a duplicate.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from transforms.common import (
    AdapterResult,
    BatchContext,
    Rule,
    excerpt,
    json_object,
    missing_id_rule,
    number,
    parse_timestamp,
    run_adapter,
    timestamp_rules,
    to_canonical,
)
from transforms.pii import normalise_email
from transforms.readers import CSV_GLOBS, JSON_GLOBS, ParsedFile, is_csv, read_csv, read_jsonl
from transforms.schema import UTC_TS

SOURCE = "orders"
FILE_GLOBS = JSON_GLOBS + CSV_GLOBS
# One record makes several events: ingestion counts records (accepted, duplicates) by
# these columns of the events, not by event.
RECORD_KEY = ("source_file", "source_line")
CHANNEL = "marketplace"

# Each field and the column names it is read from, the first present one winning.
ALIASES: dict[str, tuple[str, ...]] = {
    "order_id": ("order_id",),
    "customer_id": ("customer_unique_id", "customer_id"),
    "email": ("email", "customer_email"),
    "status": ("status", "order_status"),
    "purchased_at": ("purchased_at", "order_purchase_timestamp", "created_at"),
    "approved_at": ("approved_at", "order_approved_at"),
    "shipped_at": ("shipped_at", "order_delivered_carrier_date"),
    "delivered_at": ("delivered_at", "order_delivered_customer_date"),
    "estimated_delivery_at": ("estimated_delivery_at", "order_estimated_delivery_date"),
    "canceled_at": ("canceled_at", "cancelled_at"),
    "returned_at": ("returned_at",),
    "updated_at": ("updated_at",),
    "total": ("total", "revenue", "total_price"),
    "currency": ("currency",),
    "platform": ("platform",),
}
COLUMNS = [name for names in ALIASES.values() for name in names]
REQUIRED: list[str | tuple[str, ...]] = [
    "order_id",
    ALIASES["purchased_at"],
    (*ALIASES["customer_id"], *ALIASES["email"]),
]
PII_COLUMNS = ALIASES["email"]
ITEM = pl.Struct(
    dict.fromkeys(["product_id", "seller_id", "price", "freight", "quantity"], pl.String)
)
NATIVE_DTYPE = pl.Struct({**dict.fromkeys(COLUMNS, pl.String), "items": pl.List(ITEM)})

# The statuses an order may have (lower case). Those not listed with an event of their
# own only add the events their timestamps give.
STATUSES = (
    "created",
    "pending",
    "processing",
    "invoiced",
    "paid",
    "approved",
    "shipped",
    "delivered",
    "canceled",
    "cancelled",
    "unavailable",
    "returned",
    "refunded",
)
# Times that are events (the estimate is a promise, not an event).
EVENT_TIMES = (
    "purchased_at",
    "approved_at",
    "shipped_at",
    "delivered_at",
    "canceled_at",
    "returned_at",
)
TIMES = (*EVENT_TIMES, "estimated_delivery_at", "updated_at")


def parse_file(path: Path, ctx: BatchContext) -> AdapterResult:
    if is_csv(path, ctx.limits):
        chunks = read_csv(
            path, ctx.limits, COLUMNS, REQUIRED, PII_COLUMNS, numbers=ALIASES["total"]
        )
    else:
        chunks = read_jsonl(path, ctx.limits, NATIVE_DTYPE)
    return run_adapter(chunks, _prepare, ctx, path, output=_events)


def _field(name: str, columns: list[str]) -> pl.Expr:
    """The first non-blank value among the field's column names."""
    values = []
    for column in ALIASES[name]:
        if column in columns:
            text = pl.col(column).str.strip_chars()
            values.append(pl.when(text != "").then(text))
    return pl.coalesce(values) if values else pl.lit(None, dtype=pl.String)


def _bad_amount(text: pl.Expr) -> pl.Expr:
    value = number(text)
    return text.is_not_null() & (value.is_null() | (value < 0))


def _prepare(parsed: ParsedFile, ctx: BatchContext) -> tuple[pl.DataFrame, list[Rule]]:
    records = parsed.records
    if "items" not in records.columns:
        records = records.with_columns(items=pl.lit(None, dtype=pl.List(ITEM)))
    columns = records.columns
    texts = {f"_{name}_text": _field(name, columns) for name in ALIASES}
    records = records.with_columns(**texts)
    times = {name: parse_timestamp(pl.col(f"_{name}_text"), ctx.time_zone) for name in TIMES}
    item = pl.element().struct.field
    quantity = pl.coalesce(number(item("quantity")), pl.lit(1.0))
    line_value = number(item("price")) * quantity + pl.coalesce(
        number(item("freight")), pl.lit(0.0)
    )
    items = pl.col("items")
    item_revenue = pl.when(items.list.len() > 0).then(
        items.list.eval(line_value).list.sum().round(2)
    )
    status = pl.col("_status_text").str.to_lowercase().replace("cancelled", "canceled")
    prepared = records.with_columns(
        native_id=pl.col("_order_id_text"),
        order_id=pl.col("_order_id_text"),
        user_id=ctx.identity(pl.col("_customer_id_text")),
        _email=ctx.identity(normalise_email(pl.col("_email_text"))),
        _status=status,
        **{f"_{name}": expr for name, expr in times.items()},
        _total=number(pl.col("_total_text")),
        _item_revenue=item_revenue,
        _item_count=pl.when(items.list.len() > 0).then(
            items.list.eval(quantity).list.sum().round().cast(pl.Int64)
        ),
        _bad_items=items.list.eval(
            item("price").is_null()
            | _bad_amount(item("price"))
            | _bad_amount(item("freight"))
            | _bad_amount(item("quantity"))
        ).list.any(),
        occurred_at=times["purchased_at"],
        platform=pl.col("_platform_text").str.to_lowercase(),
        channel=pl.lit(CHANNEL),
    ).with_columns(
        _latest=pl.max_horizontal(*(f"_{name}" for name in EVENT_TIMES)),
    )
    later_times = pl.max_horizontal(*(f"_{name}" for name in (*EVENT_TIMES[1:], "updated_at")))
    rules = [
        missing_id_rule(pl.col("native_id"), "order_id", ctx),
        Rule(
            "missing_identity",
            pl.col("user_id").is_null() & pl.col("_email").is_null(),
            pl.lit("the order has neither a customer id nor an email"),
        ),
        Rule(
            "unknown_status",
            pl.col("_status").is_not_null() & ~pl.col("_status").is_in(STATUSES),
            pl.format(
                "status '{}' is not an order status ({}); map it in transforms/orders.py",
                excerpt(pl.col("_status_text")),
                pl.lit(", ".join(STATUSES)),
            ),
        ),
        Rule(
            "invalid_amount",
            pl.col("_bad_items").fill_null(False) | _bad_amount(pl.col("_total_text")),
            pl.concat_str(
                pl.when(pl.col("_bad_items").fill_null(False)).then(
                    pl.lit(
                        "an item's price, freight or quantity is missing, not a number or negative"
                    )
                ),
                pl.when(_bad_amount(pl.col("_total_text"))).then(
                    pl.format(
                        "total '{}' is not a number or negative", excerpt(pl.col("_total_text"))
                    )
                ),
                separator="; ",
                ignore_nulls=True,
            ),
        ),
        *timestamp_rules(pl.col("_purchased_at_text"), pl.col("occurred_at"), ctx),
        *(
            Rule(
                "invalid_timestamp",
                pl.col(f"_{name}_text").is_not_null() & pl.col(f"_{name}").is_null(),
                pl.format(
                    f"{name} '{{}}' is not a valid timestamp", excerpt(pl.col(f"_{name}_text"))
                ),
            )
            for name in TIMES[1:]
        ),
        Rule(
            "future_timestamp",
            later_times > pl.lit(ctx.latest_allowed),
            pl.format(
                "a status time ({}) is after {} (the landing day's end plus the tolerance); "
                "check the exporter's clock",
                later_times.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
                pl.lit(ctx.latest_allowed.isoformat()),
            ),
        ),
    ]
    return prepared, rules


def _iso(expr: pl.Expr) -> pl.Expr:
    return expr.dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _events(accepted: pl.DataFrame, ctx: BatchContext, rel: str) -> pl.DataFrame:
    """Each accepted order's events (see the module docstring), as canonical events."""
    status = pl.col("_status")
    updated = pl.col("_updated_at")
    latest = pl.col("_latest")
    delivered, estimated = pl.col("_delivered_at"), pl.col("_estimated_delivery_at")
    # (event type, native name, whether the order reached it, its own time)
    steps = [
        ("order_completed", "purchased", pl.lit(True), pl.col("_purchased_at")),
        ("order_approved", "approved", _reached("approved"), pl.col("_approved_at")),
        ("order_shipped", "shipped", _reached("shipped"), pl.col("_shipped_at")),
        ("order_delivered", "delivered", _reached("delivered"), delivered),
        (
            "order_canceled",
            "canceled",
            (status == "canceled")
            | (status.is_null() | (status != "unavailable")) & pl.col("_canceled_at").is_not_null(),
            pl.col("_canceled_at"),
        ),
        ("order_unavailable", "unavailable", status == "unavailable", pl.col("_canceled_at")),
        ("order_returned", "returned", _reached("returned"), pl.col("_returned_at")),
        ("order_refunded", "refunded", status == "refunded", pl.lit(None, dtype=UTC_TS)),
    ]
    # One contiguous chunk first: on a filtered multi-chunk frame, Polars 2.1's string
    # formatting can index past a view buffer and panic (seen with POLARS_MAX_THREADS=1,
    # as ingestion's worker processes run).
    accepted = accepted.rechunk()
    frames = []
    for event_type, native, reached, own_time in steps:
        inferred = own_time.is_null() & updated.is_null()
        is_order = event_type == "order_completed"
        frames.append(
            accepted.filter(reached.fill_null(False)).with_columns(
                event_type=pl.lit(event_type),
                native_event=pl.lit(native),
                native_id=pl.format("{}:{}", pl.col("order_id"), pl.lit(event_type)),
                occurred_at=pl.coalesce(own_time, updated, latest),
                revenue=pl.coalesce("_total", "_item_revenue") if is_order else pl.lit(None),
                properties=json_object(
                    status=status,
                    currency=pl.col("_currency_text").str.to_uppercase()
                    if is_order
                    else pl.lit(None),
                    items=pl.col("_item_count") if is_order else pl.lit(None),
                    estimated_delivery_at=_iso(estimated)
                    if event_type == "order_delivered"
                    else pl.lit(None),
                    delivered_late=(delivered > estimated)
                    if event_type == "order_delivered"
                    else pl.lit(None),
                    time_inferred=pl.when(inferred).then(True),
                ),
            )
        )
    return to_canonical(pl.concat(frames, how="diagonal_relaxed"), ctx, rel)


def _reached(step: str) -> pl.Expr:
    """The order reached ``step``: its time is given, or its status is that step."""
    return pl.col(f"_{step}_at").is_not_null() | (pl.col("_status") == step)
