"""Web events: Segment-spec JSON lines (RudderStack emits the same shape).

One call per line: ``page``/``screen``, ``track``, ``identify``, ``group`` or ``alias``.
A track call named in the Segment spec gets its canonical type; any other name is a
custom event, never rejected for its name.
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
)
from transforms.pii import normalise_email
from transforms.readers import JSON_GLOBS, ParsedFile, read_jsonl

SOURCE = "web"
FILE_GLOBS = JSON_GLOBS

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
        # Product Reviewed (e-commerce spec): the review's words, its mark and its id.
        "review_body": S,
        "rating": S,
        "review_id": S,
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

# Segment's spec events (RudderStack uses the same names) -> canonical event_type. A name
# matches whatever its case and surrounding spaces; any other track name is a custom
# event (CUSTOM), kept with its own name in native_event for the rule seeds to classify.
TRACK_EVENTS: dict[str, str] = {
    # e-commerce v2: browsing and promotions
    "Products Searched": "products_searched",
    "Product List Viewed": "product_list_view",
    "Product List Filtered": "product_list_filtered",
    "Promotion Viewed": "promotion_viewed",
    "Promotion Clicked": "promotion_clicked",
    # e-commerce v2: ordering
    "Product Clicked": "product_clicked",
    "Product Viewed": "product_view",
    "Product Added": "add_to_cart",
    "Product Removed": "remove_from_cart",
    "Cart Viewed": "cart_viewed",
    "Checkout Started": "checkout_started",
    "Checkout Step Viewed": "checkout_step_viewed",
    "Checkout Step Completed": "checkout_step_completed",
    "Payment Info Entered": "payment_info_entered",
    "Order Updated": "order_updated",
    "Order Completed": "order_completed",
    "Order Refunded": "order_refunded",
    "Order Cancelled": "order_canceled",
    # e-commerce v2: coupons
    "Coupon Entered": "coupon_entered",
    "Coupon Applied": "coupon_applied",
    "Coupon Denied": "coupon_denied",
    "Coupon Removed": "coupon_removed",
    # e-commerce v2: wishlist (a wishlist product put in the cart is an add to cart; its
    # native name still tells it apart), sharing and reviewing
    "Product Added to Wishlist": "wishlist_added",
    "Product Removed from Wishlist": "wishlist_removed",
    "Wishlist Product Added to Cart": "add_to_cart",
    "Product Shared": "product_shared",
    "Cart Shared": "cart_shared",
    "Product Reviewed": "product_reviewed",
    # B2B SaaS
    "Account Created": "account_created",
    "Account Deleted": "account_deleted",
    "Signed Up": "signed_up",
    "Signed In": "signed_in",
    "Signed Out": "signed_out",
    "Invite Sent": "invite_sent",
    "Account Added User": "account_user_added",
    "Account Removed User": "account_user_removed",
    "Trial Started": "trial_started",
    "Trial Ended": "trial_ended",
    # video: playback, content and ads
    "Video Playback Started": "video_started",
    "Video Playback Paused": "video_paused",
    "Video Playback Interrupted": "video_paused",
    "Video Playback Resumed": "video_resumed",
    "Video Playback Seek Started": "video_seeked",
    "Video Playback Seek Completed": "video_seeked",
    "Video Playback Buffer Started": "video_buffered",
    "Video Playback Buffer Completed": "video_buffered",
    "Video Playback Completed": "video_completed",
    "Video Playback Exited": "video_exited",
    "Video Quality Updated": "video_quality_updated",
    "Video Content Started": "video_content_started",
    "Video Content Playing": "video_content_playing",
    "Video Content Completed": "video_content_completed",
    "Video Ad Started": "video_ad_started",
    "Video Ad Playing": "video_ad_playing",
    "Video Ad Completed": "video_ad_completed",
    # mobile: application lifecycle and campaigns (coming back to the app is an open)
    "Application Installed": "app_installed",
    "Application Opened": "app_opened",
    "Application Foregrounded": "app_opened",
    "Application Backgrounded": "app_backgrounded",
    "Application Updated": "app_updated",
    "Application Uninstalled": "app_uninstalled",
    "Application Crashed": "app_crashed",
    "Install Attributed": "app_install_attributed",
    "Push Notification Received": "push_received",
    "Push Notification Tapped": "push_opened",
    "Push Notification Bounced": "push_bounced",
    "Deep Link Clicked": "deep_link_clicked",
    "Deep Link Opened": "deep_link_opened",
    # email, when an email tool sends its events through Segment
    "Email Delivered": "email_delivered",
    "Email Opened": "email_opened",
    "Email Link Clicked": "email_clicked",
    "Email Bounced": "email_bounced",
    "Email Marked as Spam": "email_spam_reported",
    "Unsubscribed": "email_unsubscribed",
    # the shop's own events, older than the open vocabulary
    "Newsletter Subscribed": "newsletter_subscribed",
    "Reviews Viewed": "review_page_view",
}
CUSTOM = "custom"
# The canonical types of Segment's email spec events: their channel is email.
EMAIL_TYPES = sorted({t for t in TRACK_EVENTS.values() if t.startswith("email_")})
_TRACK_LOOKUP = {name.lower(): event_type for name, event_type in TRACK_EVENTS.items()}
CALL_TYPES: dict[str, str] = {
    "page": "page_view",
    "screen": "page_view",
    "identify": "identify",
    "alias": "identify",
    "group": "group",
}


def parse_file(path: Path, ctx: BatchContext) -> AdapterResult:
    chunks = read_jsonl(path, ctx.limits, NATIVE_DTYPE, split_arrays=True)
    return run_adapter(chunks, _prepare, ctx, path)


def _prepare(parsed: ParsedFile, ctx: BatchContext) -> tuple[pl.DataFrame, list[Rule]]:
    frame = parsed.records.unnest("context", separator="_").unnest("properties", separator="_p_")
    frame = frame.rename(lambda c: c.replace("properties_p_", "p_"))
    call = pl.col("type").str.to_lowercase()
    track_name = pl.col("event").str.strip_chars().str.to_lowercase()
    # Only calls without a collector timestamp need the clock correction; masking the
    # others first keeps the three extra parses to those rows.
    untimed = pl.col("timestamp").is_null()
    zone = ctx.time_zone
    client_ts = parse_timestamp(pl.when(untimed).then(pl.col("originalTimestamp")), zone)
    skew_corrected = parse_timestamp(pl.when(untimed).then(pl.col("receivedAt")), zone) - (
        parse_timestamp(pl.when(untimed).then(pl.col("sentAt")), zone) - client_ts
    )
    url = pl.coalesce("p_url", pl.col("context_page").struct.field("url"))
    campaign = pl.col("context_campaign")
    prepared = frame.with_columns(
        native_id=pl.col("messageId"),
        native_event=pl.when(call == "track").then(pl.col("event")).otherwise(call),
        event_type=pl.when(call != "track")
        .then(call.replace_strict(CALL_TYPES, default=None))
        .when(track_name != "")
        .then(track_name.replace_strict(_TRACK_LOOKUP, default=CUSTOM)),
        _ts_text=pl.coalesce("timestamp", "originalTimestamp"),
        occurred_at=pl.when(pl.col("timestamp").is_not_null())
        .then(parse_timestamp(pl.col("timestamp"), zone))
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
                    # A group call's traits are the group's (a company's address).
                    pl.when(call != "group").then(pl.col("traits").struct.field("email")),
                    pl.col("context_traits").struct.field("email"),
                )
            )
        ),
        order_id=pl.col("p_order_id"),
        # Segment's email spec events describe an email, as SendGrid's do.
        channel=pl.when(track_name.replace_strict(_TRACK_LOOKUP, default="").is_in(EMAIL_TYPES))
        .then(pl.lit("email"))
        .otherwise(pl.lit("web")),
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
        # A site search's words, or a review written on the site: the customer's voice.
        text=pl.coalesce("p_query", "p_review_body"),
        _rating_text=pl.col("p_rating").str.strip_chars(),
        rating=number(pl.col("p_rating")).cast(pl.Int8, strict=False),
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
            review_id="p_review_id",
        ),
    ).with_columns(campaign=pl.col("utm_campaign"))

    rating = number(pl.col("_rating_text"))
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
        Rule(
            "rating_out_of_range",
            pl.col("_rating_text").is_not_null()
            & (rating.is_null() | (rating < 1) | (rating > 5) | (rating != rating.round())),
            pl.format(
                "properties.rating {} is not a whole number from 1 to 5",
                excerpt(pl.col("_rating_text")),
            ),
        ),
        *timestamp_rules(pl.col("_ts_text"), pl.col("occurred_at"), ctx),
        Rule(
            "unknown_call",
            pl.col("event_type").is_null(),
            pl.when(call == "track")
            .then(pl.lit("the track call has no event name"))
            .otherwise(
                pl.format(
                    "type {} is not a Segment call (page, screen, track, identify, group, alias)",
                    pl.when(pl.col("type").is_null())
                    .then(pl.lit("(missing)"))
                    .otherwise(pl.concat_str(pl.lit("'"), excerpt(pl.col("type")), pl.lit("'"))),
                )
            ),
        ),
    ]
    return prepared, rules
