"""Hashing of personal identifiers, and scrubbing of free text.

No raw email address or social handle leaves transforms/: identifiers become salted
SHA-256 hex digests, and free text has addresses and @handles masked.
"""

from __future__ import annotations

import functools
import os
import re

import duckdb
import polars as pl

EMAIL_PATTERN = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
HANDLE_PATTERN = r"(^|[^A-Za-z0-9_.])@[A-Za-z0-9_.]{1,30}"
_EMAIL_RE = re.compile(EMAIL_PATTERN)
_HANDLE_RE = re.compile(HANDLE_PATTERN)
# JSON keys whose string values are emails or handles in the native formats.
_PII_KEYS = re.compile(
    r'("(?:email|reviewer_email|author_handle|reviewer_handle|handle|username|author)"\s*:\s*)'
    r'"(?:[^"\\]|\\.)*"'
)


@functools.cache
def _connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB used only as a vectorised SHA-256 kernel (Polars has none)."""
    return duckdb.connect(config={"threads": int(os.environ.get("CJM_DUCKDB_THREADS", "2"))})


def normalise_email(expr: pl.Expr) -> pl.Expr:
    return expr.str.strip_chars().str.to_lowercase()


def normalise_handle(platform: pl.Expr, handle: pl.Expr) -> pl.Expr:
    """Handles are compared as ``platform:handle``, lower case, without the leading @."""
    clean = handle.str.strip_chars().str.strip_chars_start("@").str.to_lowercase()
    return (
        pl.when(clean.is_null() | (clean == ""))
        .then(None)
        .otherwise(pl.concat_str(platform.str.strip_chars().str.to_lowercase(), pl.lit(":"), clean))
    )


def _sha256(values: pl.Series, prefix: str) -> pl.Series:
    """sha256(prefix || value) as hex, one per value, computed in DuckDB."""
    con = _connection().cursor()
    try:
        con.register("hash_input", pl.DataFrame({"v": values}))
        return con.sql(
            "select sha256($prefix || v) as h from hash_input", params={"prefix": prefix}
        ).pl()["h"]
    finally:
        con.close()


def sha256_hex(values: pl.Series, salt: str) -> pl.Series:
    """Salted SHA-256 of each value (null stays null), hashing each distinct value once."""
    distinct = values.drop_nulls().unique()
    if distinct.len() == 0:
        return pl.Series(values.name, [None] * values.len(), dtype=pl.String)
    return values.replace_strict(
        distinct, _sha256(distinct, salt), default=None, return_dtype=pl.String
    )


def event_ids(source: str, native_ids: pl.Series) -> pl.Series:
    """Stable event ids: first 32 hex digits of sha256(source ':' native id)."""
    return _sha256(native_ids, f"{source}:").str.slice(0, 32).alias("event_id")


def scrub_text(expr: pl.Expr) -> pl.Expr:
    """Mask email addresses and @handles inside free text."""
    return expr.str.replace_all(EMAIL_PATTERN, "[email]").str.replace_all(
        HANDLE_PATTERN, "${1}@[handle]"
    )


def redact_raw(raw: str, pii_values: list[str] | None = None) -> str:
    """A rejected record made safe for the quarantine.

    Values of known PII keys (JSON) and given PII field values (CSV) are replaced,
    and any address or @handle left in the text is masked.
    """
    out = _PII_KEYS.sub(r'\1"[redacted]"', raw)
    for value in pii_values or []:
        if value:
            out = out.replace(value, "[redacted]")
    out = _EMAIL_RE.sub("[email]", out)
    return _HANDLE_RE.sub(r"\1@[handle]", out)
