"""CRM customers export (CSV): the identity edges that link a user id, an email
address and social handles. Not events: it lands in ``lake/crm_customers``.

Columns: user_id, email, social_handles (``platform:handle`` pairs separated by
``;``), created_at.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from transforms import pii
from transforms.common import AdapterResult, BatchContext, Rule, make_safe, run_adapter
from transforms.readers import CSV_GLOBS, ParsedFile, read_csv
from transforms.schema import CRM_POLICY, CRM_SCHEMA

SOURCE = "crm"
FILE_GLOBS = CSV_GLOBS
COLUMNS = ["user_id", "email", "social_handles", "created_at"]
REQUIRED = ["user_id", "email"]
PII_COLUMNS = ("email", "social_handles")


def parse_file(path: Path, ctx: BatchContext) -> AdapterResult:
    chunks = read_csv(path, ctx.limits, COLUMNS, REQUIRED, PII_COLUMNS)
    return run_adapter(chunks, _prepare, ctx, path, output=_edges)


def _prepare(parsed: ParsedFile, ctx: BatchContext) -> tuple[pl.DataFrame, list[Rule]]:
    user_id = ctx.identity(pl.col("user_id"))
    prepared = parsed.records.with_columns(
        user_id=user_id,
        native_id=user_id,
        # A user id that is an address is also the customer's email when the row has none.
        _email=ctx.identity(
            pii.normalise_email(
                pl.coalesce(
                    "email",
                    pl.when(pl.col("user_id").str.contains(pii.WHOLE_EMAIL)).then("user_id"),
                )
            )
        ),
    )
    rules = [
        Rule(
            "missing_identity",
            pl.col("user_id").is_null() | pl.col("_email").is_null(),
            pl.lit("the customer row needs both user_id and email"),
        )
    ]
    return prepared, rules


def _edges(accepted: pl.DataFrame, ctx: BatchContext, rel: str) -> pl.DataFrame:
    """One identity edge row per handle of each customer (one row when it has none)."""
    handles = (
        accepted.select(
            "user_id",
            "_email",
            "_line",
            pl.col("social_handles").str.split(";").alias("pair"),
        )
        .explode("pair")
        .with_columns(
            ctx.handle(
                pl.col("pair").str.split_exact(":", 1).struct.field("field_0"),
                pl.col("pair").str.split_exact(":", 1).struct.field("field_1"),
            ).alias("_handle")
        )
    )
    edges = handles.select(
        pl.col("user_id"),
        pii.sha256_hex(handles["_email"], ctx.salt).alias("email_sha256"),
        pii.sha256_hex(handles["_handle"], ctx.salt).alias("social_handle_sha256"),
        pl.lit(rel).alias("source_file"),
        pl.col("_line").alias("source_line"),
        pl.lit(ctx.ingested_at).alias("ingested_at"),
    ).cast(dict(CRM_SCHEMA))
    return make_safe(edges, ctx, CRM_POLICY, skip=("source_file",))
