"""Reviews: a review-platform export, CSV (with a header) or JSON lines.

Columns: review_id, platform, reviewer_email, reviewer_handle, order_id (one of the
three is required: a marketplace keys its reviews by order only, and the order id links
the review to its buyer), rating (1-5), title, text, language, created_at (ISO-8601), and
recommended where the platform asks whether the reviewer would recommend the brand or
product (true/false, yes/no, 1/0; empty when not asked). A review that says it
recommends is a loyalty signal (the loyalty_signals seed).
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
)
from transforms.pii import normalise_email
from transforms.readers import ParsedFile, is_csv, read_csv, read_jsonl

SOURCE = "reviews"
FILE_GLOBS = ("*.csv", "*.csv.gz", "*.jsonl", "*.jsonl.gz")
COLUMNS = [
    "review_id",
    "platform",
    "reviewer_email",
    "reviewer_handle",
    "rating",
    "title",
    "text",
    "language",
    "created_at",
    "order_id",
    "recommended",
]
REQUIRED = ["review_id", "platform", "rating", "created_at"]
PII_COLUMNS = ("reviewer_email", "reviewer_handle")
YES = ("true", "yes", "y", "1")
NO = ("false", "no", "n", "0")


def parse_file(path: Path, ctx: BatchContext) -> AdapterResult:
    if is_csv(path, ctx.limits):
        chunks = read_csv(path, ctx.limits, COLUMNS, REQUIRED, PII_COLUMNS)
    else:
        chunks = read_jsonl(path, ctx.limits, pl.Struct(dict.fromkeys(COLUMNS, pl.String)))
    return run_adapter(chunks, _prepare, ctx, path)


def _prepare(parsed: ParsedFile, ctx: BatchContext) -> tuple[pl.DataFrame, list[Rule]]:
    rating_text = pl.col("_rating_text")
    rating_number = number(rating_text)
    recommended_text = pl.col("_recommended_text")
    recommended = (
        pl.when(recommended_text.is_in(YES))
        .then(pl.lit(True))
        .when(recommended_text.is_in(NO))
        .then(pl.lit(False))
    )
    records = parsed.records.with_columns(
        _rating_text=pl.col("rating").str.strip_chars(),
        _recommended_text=pl.col("recommended").str.strip_chars().str.to_lowercase(),
    )
    prepared = records.with_columns(
        native_id=pl.col("review_id"),
        native_event=pl.lit("review"),
        event_type=pl.lit("review_posted"),
        occurred_at=parse_timestamp(pl.col("created_at").str.strip_chars()),
        _email=ctx.identity(normalise_email(pl.col("reviewer_email"))),
        _handle=ctx.handle(pl.col("platform"), pl.col("reviewer_handle")),
        platform=pl.col("platform").str.strip_chars().str.to_lowercase(),
        order_id=pl.col("order_id"),
        channel=pl.lit("reviews"),
        rating=rating_number,
        text=pl.col("text"),
        properties=json_object(
            title="title", language=pl.col("language").str.to_lowercase(), recommended=recommended
        ),
    )
    rules = [
        missing_id_rule(pl.col("native_id"), "review_id", ctx),
        Rule(
            "missing_identity",
            pl.col("_email").is_null()
            & pl.col("_handle").is_null()
            & (pl.col("order_id").str.strip_chars().replace("", None).is_null()),
            pl.lit("the review has no reviewer email, reviewer handle or order id"),
        ),
        Rule(
            "wrong_type",
            rating_text.is_not_null() & rating_number.is_null(),
            pl.format("rating '{}' is not a number", excerpt(rating_text)),
        ),
        Rule(
            "wrong_type",
            (recommended_text.is_not_null() & (recommended_text != "")) & recommended.is_null(),
            pl.format(
                "recommended '{}' is neither true nor false (yes/no, 1/0)",
                excerpt(pl.col("recommended").str.strip_chars()),
            ),
        ),
        Rule(
            "rating_out_of_range",
            rating_number.is_null()
            | (rating_number < 1)
            | (rating_number > 5)
            | (rating_number != rating_number.round()),
            pl.format(
                "rating {} is not a whole number from 1 to 5",
                pl.coalesce(excerpt(rating_text), pl.lit("(missing)")),
            ),
        ),
        *timestamp_rules(pl.col("created_at"), pl.col("occurred_at"), ctx),
    ]
    return prepared, rules
