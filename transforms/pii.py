"""Personal data: hashing of identifiers, and masking of everything else that could hold it.

No raw email address or social handle leaves transforms/. What each canonical column may
hold is declared once (``schema.COLUMN_POLICY``) and ``make_safe`` enforces it on every
frame an adapter writes: identifiers become salted SHA-256 hex digests, an identifier
field that holds an address or @handle is hashed (an email used as a user id becomes an
email identity), and free text, URLs and JSON have addresses and @handles masked.

Every pattern here runs in Polars' regex engine, which is linear in the input (a long
line costs its length, never its square), and only on the values that hold an ``@``
(or its URL or full-width forms): clean values are never scanned by a regex.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable

import duckdb
import polars as pl

# The patterns name the replacement and full-width characters themselves (not regex
# escapes), so that Python's re (the gate's pandas checks) and Polars' engine read them
# alike.
_REPLACEMENT = "\ufffd"
_FULL_WIDTH_AT = "\uff20"
# An at sign as it may be written: plain, URL-encoded, full-width, JSON-escaped (a raw
# record keeps its escapes, escaped once more when the value itself held one) or as an
# HTML entity.
_AT = rf"(?:@|%40|{_FULL_WIDTH_AT}|\\{{1,2}}u0040|&#64;|&#x40;)"
# The characters an address's local part may hold (RFC 5322 atext, any letter, and the
# replacement character a mis-decoded byte becomes), and a domain with or without a dot.
_LOCAL = rf"[\w.!#$%&'*+\-/=?^`{{|}}~{_REPLACEMENT}]+"
_DOMAIN = r"[\w\-]+(?:\.[\w\-]+)*"
# An address as people write it, malformed ones included (a@@b.example, a@ b.example,
# a@intranet): what masking and the gate look for. Broad on purpose: masking a little
# too much of free text is better than leaving a little of an address.
EMAIL_PATTERN = rf"{_LOCAL}{_AT}{{1,2}}\s?{_DOMAIN}"
# In a URL an address sits between the separators of its parts, so its local part
# stops at them (a query value, a path segment).
_EMAIL_IN_URL = rf"[\w.!$%'*+\-^`{{|}}~{_REPLACEMENT}]+{_AT}{{1,2}}{_DOMAIN}"
# An @handle: an at sign that does not follow a word character (so not an address), and
# all the word characters after it.
HANDLE_PATTERN = rf"(^|[^\w.@]){_AT}[\w.]+"
# A value that is one whole, well-formed address (an identifier field holding one, which
# then becomes the record's email identity).
WHOLE_EMAIL = rf"^\s*{_LOCAL}{_AT}{_DOMAIN}\.\w{{2,}}\s*$"
EMAIL_MASK = "[email]"
HANDLE_MASK = "@[handle]"
REDACTED = "[redacted]"
TOKEN_PREFIX = "sha256:"
# JSON keys and URL query parameters whose values name a person in the native formats,
# whatever the value looks like (a handle without its @ is just a word).
PII_KEYS: tuple[str, ...] = (
    "email",
    "e-mail",
    "mail",
    "email_address",
    "emailaddress",
    "reviewer_email",
    "recipient",
    "author_handle",
    "reviewer_handle",
    "handle",
    "username",
    "user_name",
    "screen_name",
    "author",
    "social_handles",
    "phone",
)
_KEY_ALTERNATIVES = "|".join(k.replace("-", r"\-") for k in PII_KEYS)
_PII_JSON_MEMBER = rf'(?i)("(?:{_KEY_ALTERNATIVES})"\s*:\s*)"(?:[^"\\]|\\.)*"'
# The value ends at the next parameter, or at a quote, a backslash or white space: a
# URL held in a JSON string or in free text keeps the quote and words that follow it.
_PII_QUERY_PARAMETER = rf'(?i)([?&#;](?:{_KEY_ALTERNATIVES})=)[^&#;"\\\s]*'
_PII_PARAMETER_KEY = rf"(?i)[?&#;](?:{_KEY_ALTERNATIVES})="
# user:password@ in a URL's authority is never kept.
_URL_USERINFO = r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#@]*@"
# Longest rejected record kept in the quarantine: enough to see what was wrong.
MAX_RAW_CHARS = 16_384


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


def has_at_sign(expr: pl.Expr) -> pl.Expr:
    """True where a value could hold an address or a handle (a cheap literal search)."""
    return expr.str.contains(_AT)


def _may_be_personal(expr: pl.Expr) -> pl.Expr:
    """True where a value holds an at sign or a personal URL parameter (email=, ...)."""
    return has_at_sign(expr) | expr.str.contains(_PII_PARAMETER_KEY)


def _mask(expr: pl.Expr, email_pattern: str) -> pl.Expr:
    # Only the values that may be personal are scanned; the others pass through coalesce.
    candidates = pl.when(_may_be_personal(expr)).then(expr)
    masked = (
        candidates.str.replace_all(_PII_QUERY_PARAMETER, "${1}" + REDACTED)
        .str.replace_all(email_pattern, EMAIL_MASK)
        .str.replace_all(HANDLE_PATTERN, "${1}" + HANDLE_MASK)
    )
    return pl.coalesce(masked, expr)


def mask_text(expr: pl.Expr) -> pl.Expr:
    """Free text with every address replaced by [email], every @handle by @[handle], and
    the value of a personal URL parameter in it (``?email=...``) by [redacted]."""
    return _mask(expr, EMAIL_PATTERN)


def mask_url(expr: pl.Expr) -> pl.Expr:
    """A URL without user:password@, with the values of personal query parameters
    (email=, handle=, ...) redacted and any address or @handle left masked."""
    return _mask(expr.str.replace(_URL_USERINFO, "${1}"), _EMAIL_IN_URL)


def holds_personal_data(expr: pl.Expr) -> pl.Expr:
    """True where a value still holds an address or an @handle (the gate's check, in
    linear time: Python's re takes quadratic time on some long values)."""
    candidates = pl.when(has_at_sign(expr)).then(expr)
    found = candidates.str.contains(EMAIL_PATTERN) | candidates.str.contains(HANDLE_PATTERN)
    return found.fill_null(False)


def mask_json(expr: pl.Expr) -> pl.Expr:
    """A JSON document with the values of personal keys redacted and any address or
    @handle masked; the masks hold no quote or backslash, so the JSON stays valid."""
    keyed = expr.str.replace_all(_PII_JSON_MEMBER, "${1}" + f'"{REDACTED}"')
    return mask_text(keyed)


def mask_raw(expr: pl.Expr) -> pl.Expr:
    """A rejected record made safe for the quarantine: NUL bytes dropped (text read in
    the wrong encoding interleaves them with every character), personal JSON members
    redacted, addresses and handles masked, then cut to ``MAX_RAW_CHARS``: masking
    comes first, so a cut can never leave part of an address unmasked."""
    return cut(mask_json(expr.str.replace_all("\x00", "", literal=True)), MAX_RAW_CHARS)


def cut(expr: pl.Expr, limit: int) -> pl.Expr:
    """At most ``limit`` characters, saying how many more there were."""
    length = expr.str.len_chars()
    shortened = pl.when(length > limit).then(
        pl.concat_str(
            expr.str.slice(0, limit),
            pl.format(" ... [{} more characters not kept]", length - limit),
        )
    )
    return pl.coalesce(shortened, expr)


def masked_excerpt(value: str, limit: int) -> str:
    """A plain string masked, then cut to ``limit`` characters (for messages)."""
    series = pl.Series("v", [value], dtype=pl.String)
    return series.to_frame().select(cut(mask_text(pl.col("v")), limit))["v"][0]


def mask_strings(values: Iterable[str]) -> list[str]:
    """``mask_text`` for plain strings (messages, file names), in one vectorised call."""
    series = pl.Series("v", list(values), dtype=pl.String)
    return series.to_frame().select(mask_text(pl.col("v")))["v"].to_list()


def mask_string(value: str) -> str:
    return mask_strings([value])[0]


def tokenise(values: pl.Series, salt: str) -> pl.Series:
    """An identifier column made safe: a value that may hold an address or handle becomes
    ``sha256:<salted digest>`` (still the same identifier wherever it appears)."""
    # An id has no business holding an at sign or a personal URL parameter: any that
    # does is hashed, whether or not it parses as an address.
    marked = values.to_frame("v").select(
        "v", _may_be_personal(pl.col("v")).fill_null(False).alias("risky")
    )
    if not marked["risky"].any():
        return values
    risky_values = marked.filter("risky")["v"]
    hashed = sha256_hex(risky_values.str.strip_chars(), salt)
    tokens = dict(zip(risky_values.to_list(), (TOKEN_PREFIX + h for h in hashed), strict=True))
    return (
        marked.select(
            pl.when(pl.col("risky"))
            .then(pl.col("v").replace_strict(tokens, default=None, return_dtype=pl.String))
            .otherwise(pl.col("v"))
        )
        .to_series()
        .alias(values.name)
    )


def whole_email(values: pl.Series) -> pl.Series:
    """The normalised address where a value is one whole email address, else null."""
    return values.to_frame("v").select(
        pl.when(has_at_sign(pl.col("v")) & pl.col("v").str.contains(WHOLE_EMAIL)).then(
            normalise_email(pl.col("v"))
        )
    )["v"]
