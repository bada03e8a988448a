"""The canonical event every source adapter produces, and the quarantine record.

The lake holds only these two shapes. Column order here is the column order on disk.
"""

from __future__ import annotations

import polars as pl

UTC_TS = pl.Datetime("us", "UTC")

CANONICAL_SCHEMA = pl.Schema(
    {
        "event_id": pl.String,  # sha256(source ":" native_id), first 32 hex characters
        "source": pl.String,  # web | email | social | reviews | orders
        "native_id": pl.String,  # the id the source gave the record
        "event_type": pl.String,  # normalised vocabulary, see EVENT_TYPES
        "native_event": pl.String,  # the source's own name for the event
        "occurred_at": UTC_TS,
        "ingested_at": UTC_TS,  # start (UTC) of the landing date the record arrived in
        "anonymous_id": pl.String,
        "user_id": pl.String,
        "email_sha256": pl.String,
        "social_handle_sha256": pl.String,
        "order_id": pl.String,
        "channel": pl.String,  # marketing channel, see channel rules in each adapter
        "platform": pl.String,  # social or review platform; null for web and email
        "campaign": pl.String,
        "utm_source": pl.String,
        "utm_medium": pl.String,
        "utm_campaign": pl.String,
        "utm_term": pl.String,
        "utm_content": pl.String,
        "url": pl.String,
        "path": pl.String,
        "referrer": pl.String,
        "rating": pl.Int8,
        "revenue": pl.Float64,
        "text": pl.String,
        "properties": pl.String,  # JSON object
        "source_file": pl.String,  # landing file, relative to the landing root
        "source_line": pl.Int64,  # 1-based line (JSON lines) or record start line (CSV)
    }
)

QUARANTINE_SCHEMA = pl.Schema(
    {
        "source": pl.String,
        "source_file": pl.String,
        "source_line": pl.Int64,  # null when the whole file was rejected
        "native_id": pl.String,
        "reason": pl.String,  # one of REASONS
        "detail": pl.String,  # says what was wrong, where, and what to do
        "raw_redacted": pl.String,  # the record with emails and handles hashed
        "ingested_at": UTC_TS,
        # Records the row stands for: 1, or all of a file quarantined whole when its
        # records could be counted (1 when the file could not be read at all).
        "records": pl.Int64,
    }
)

CRM_SCHEMA = pl.Schema(
    {
        "user_id": pl.String,
        "email_sha256": pl.String,
        "social_handle_sha256": pl.String,
        "source_file": pl.String,
        "source_line": pl.Int64,
        "ingested_at": UTC_TS,
    }
)

# What each column may hold, and how ``transforms.common.make_safe`` makes it safe before
# anything is written (no raw email address or handle leaves transforms/):
#   hash        a digest computed by the adapter, never a raw value
#   code        a value of the adapter's own vocabulary
#   identity    a customer identifier: an address or @handle in it is hashed in place
#               (and an address also becomes the event's email identity)
#   identifier  a record id: hashed in place when it holds an address or @handle
#   text, url, json   addresses and @handles masked (and, in URLs and JSON, the values of
#               personal parameters and keys such as email= redacted)
#   raw         a rejected record: text masking, personal JSON members redacted, cut short
#   value       numbers and times
HASH, CODE, IDENTITY, IDENTIFIER = "hash", "code", "identity", "identifier"
TEXT, URL, JSON, RAW, VALUE = "text", "url", "json", "raw", "value"

COLUMN_POLICY: dict[str, str] = {
    "event_id": HASH,
    "source": CODE,
    "native_id": IDENTIFIER,
    "event_type": CODE,
    "native_event": TEXT,
    "occurred_at": VALUE,
    "ingested_at": VALUE,
    "anonymous_id": IDENTITY,
    "user_id": IDENTITY,
    "email_sha256": HASH,
    "social_handle_sha256": HASH,
    "order_id": IDENTIFIER,
    "channel": CODE,
    "platform": TEXT,
    "campaign": TEXT,
    "utm_source": TEXT,
    "utm_medium": TEXT,
    "utm_campaign": TEXT,
    "utm_term": TEXT,
    "utm_content": TEXT,
    "url": URL,
    "path": URL,
    "referrer": URL,
    "rating": VALUE,
    "revenue": VALUE,
    "text": TEXT,
    "properties": JSON,
    "source_file": TEXT,
    "source_line": VALUE,
}
QUARANTINE_POLICY: dict[str, str] = {
    "source": CODE,
    "source_file": TEXT,
    "source_line": VALUE,
    "native_id": IDENTIFIER,
    "reason": CODE,
    "detail": TEXT,
    "raw_redacted": RAW,
    "ingested_at": VALUE,
    "records": VALUE,
}
CRM_POLICY: dict[str, str] = {
    "user_id": IDENTITY,
    "email_sha256": HASH,
    "social_handle_sha256": HASH,
    "source_file": TEXT,
    "source_line": VALUE,
    "ingested_at": VALUE,
}

REASONS: dict[str, str] = {
    "unreadable_file": "the file could not be opened or decompressed",
    "file_too_large": "the file is over CJM_MAX_FILE_BYTES, or a compressed file grows more "
    "than CJM_MAX_COMPRESSION_RATIO times",
    "too_many_rejects": "most of the file's records were rejected (more than "
    "CJM_MAX_FILE_REJECTS): the file was quarantined whole",
    "parse_error": "the adapter failed on the file: quarantined whole, the rest of the night "
    "landed",
    "record_too_large": "the line or CSV record is over CJM_MAX_LINE_BYTES, or a field over "
    "CJM_MAX_FIELD_CHARS",
    "invalid_utf8": "the record holds bytes that are not UTF-8",
    "invalid_json": "the line is not a JSON document",
    "invalid_csv": "the CSV record has the wrong number of fields",
    "wrong_type": "a field has a type the format does not allow",
    "missing_id": "the record has no native id",
    "missing_identity": "the record carries no customer identifier",
    "invalid_timestamp": "the timestamp is missing or cannot be parsed",
    "future_timestamp": "the timestamp lies after the landing day",
    "stale_timestamp": "the timestamp is older than the allowed event age",
    "unknown_event": "the event name is not in the vocabulary",
    "unknown_call": "the web call's type is not page, screen, track, identify, group or alias, "
    "or a track call has no event name",
    "rating_out_of_range": "the rating is not between 1 and 5",
    "unknown_status": "the order status is not in the vocabulary (transforms/orders.py STATUSES)",
    "invalid_amount": "an order's total, or an item's price, freight or quantity, is missing "
    "where required, not a number or negative",
}

EVENT_TYPES: frozenset[str] = frozenset(
    {
        # web
        "page_view",
        "identify",
        "product_list_view",
        "product_view",
        "products_searched",
        "add_to_cart",
        "remove_from_cart",
        "checkout_started",
        "payment_info_entered",
        "coupon_applied",
        "order_completed",
        "order_refunded",
        "signed_up",
        "signed_in",
        "newsletter_subscribed",
        "review_page_view",
        "product_list_filtered",
        "promotion_viewed",
        "promotion_clicked",
        "product_clicked",
        "cart_viewed",
        "checkout_step_viewed",
        "checkout_step_completed",
        "order_updated",
        "coupon_entered",
        "coupon_denied",
        "coupon_removed",
        "wishlist_added",
        "wishlist_removed",
        "product_shared",
        "cart_shared",
        "product_reviewed",
        "account_created",
        "account_deleted",
        "signed_out",
        "invite_sent",
        "account_user_added",
        "account_user_removed",
        "trial_started",
        "trial_ended",
        "video_started",
        "video_paused",
        "video_resumed",
        "video_seeked",
        "video_buffered",
        "video_completed",
        "video_exited",
        "video_quality_updated",
        "video_content_started",
        "video_content_playing",
        "video_content_completed",
        "video_ad_started",
        "video_ad_playing",
        "video_ad_completed",
        "app_installed",
        "app_opened",
        "app_backgrounded",
        "app_updated",
        "app_uninstalled",
        "app_crashed",
        "app_install_attributed",
        "push_received",
        "push_opened",
        "push_bounced",
        "deep_link_clicked",
        "deep_link_opened",
        "group",
        "custom",
        # email (also sent through Segment's email spec: web)
        "email_processed",
        "email_delivered",
        "email_deferred",
        "email_opened",
        "email_machine_opened",
        "email_clicked",
        "email_bounced",
        "email_dropped",
        "email_spam_reported",
        "email_unsubscribed",
        "email_group_unsubscribed",
        "email_group_resubscribed",
        # social
        "social_mention",
        "social_comment",
        "social_share",
        "social_dm",
        "social_ad_click",
        # reviews
        "review_posted",
        # orders (order_completed, order_refunded and order_canceled as for web)
        "order_approved",
        "order_shipped",
        "order_delivered",
        "order_canceled",
        "order_unavailable",
        "order_returned",
    }
)


def empty_canonical() -> pl.DataFrame:
    return pl.DataFrame(schema=CANONICAL_SCHEMA)


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)
