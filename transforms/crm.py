"""CRM customers export (CSV): the identity edges that link a user id, an email
address and social handles. Not events: it lands in ``lake/crm_customers``.

Columns: user_id, email, social_handles (``platform:handle`` pairs separated by
``;``), created_at.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from transforms import pii
from transforms.common import AdapterResult, BatchContext, Rule, split
from transforms.readers import read_csv
from transforms.schema import CRM_SCHEMA

SOURCE = "crm"
FILE_GLOBS = ("*.csv", "*.csv.gz")
COLUMNS = ["user_id", "email", "social_handles", "created_at"]
REQUIRED = ["user_id", "email"]
PII_COLUMNS = ("email", "social_handles")


def parse_file(path: Path, ctx: BatchContext) -> AdapterResult:
    parsed = read_csv(path, COLUMNS, REQUIRED, PII_COLUMNS)
    prepared = parsed.records.with_columns(
        native_id=pl.col("user_id"),
        _email=pii.normalise_email(pl.col("email")),
    )
    rules = [
        Rule(
            "missing_identity",
            pl.col("user_id").is_null() | pl.col("_email").is_null(),
            pl.lit("the customer row needs both user_id and email"),
        )
    ]
    accepted, quarantine = split(parsed, prepared, rules, ctx, path)
    return AdapterResult(_edges(accepted, ctx, path), quarantine, parsed.read)


def _edges(accepted: pl.DataFrame, ctx: BatchContext, path: Path) -> pl.DataFrame:
    handles = (
        accepted.select(
            "user_id",
            "_email",
            "_line",
            pl.col("social_handles").str.split(";").alias("pair"),
        )
        .explode("pair")
        .with_columns(
            pii.normalise_handle(
                pl.col("pair").str.split_exact(":", 1).struct.field("field_0"),
                pl.col("pair").str.split_exact(":", 1).struct.field("field_1"),
            ).alias("_handle")
        )
    )
    return handles.select(
        pl.col("user_id"),
        pii.sha256_hex(handles["_email"], ctx.salt).alias("email_sha256"),
        pii.sha256_hex(handles["_handle"], ctx.salt).alias("social_handle_sha256"),
        pl.lit(ctx.relative(path)).alias("source_file"),
        pl.col("_line").alias("source_line"),
        pl.lit(ctx.ingested_at).alias("ingested_at"),
    ).cast(dict(CRM_SCHEMA))
