"""The open web vocabulary: every Segment spec event gets its canonical type, any other
track name lands as a custom event under its own name, and a rule seed row naming it
classifies it in the marts."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

import cjm_pipeline.build as build_module
from cjm_pipeline.build import build
from cjm_pipeline.ingest import ingest, ingest_one
from cjm_pipeline.settings import PROJECT_ROOT, Settings
from tests.conftest import lake_events, lake_quarantine, land, quiet, segment_call
from transforms.schema import EVENT_TYPES

DAY = "2026-10-05"
D = date(2026, 10, 5)

# The semantic event names of Segment's specs, copied from its spec pages (e-commerce
# v2, B2B SaaS, video, native mobile, email); RudderStack's specs use the same names.
SEGMENT_SPEC = {
    "e-commerce": [
        "Products Searched",
        "Product List Viewed",
        "Product List Filtered",
        "Promotion Viewed",
        "Promotion Clicked",
        "Product Clicked",
        "Product Viewed",
        "Product Added",
        "Product Removed",
        "Cart Viewed",
        "Checkout Started",
        "Checkout Step Viewed",
        "Checkout Step Completed",
        "Payment Info Entered",
        "Order Updated",
        "Order Completed",
        "Order Refunded",
        "Order Cancelled",
        "Coupon Entered",
        "Coupon Applied",
        "Coupon Denied",
        "Coupon Removed",
        "Product Added to Wishlist",
        "Product Removed from Wishlist",
        "Wishlist Product Added to Cart",
        "Product Shared",
        "Cart Shared",
        "Product Reviewed",
    ],
    "b2b-saas": [
        "Account Created",
        "Account Deleted",
        "Signed Up",
        "Signed In",
        "Signed Out",
        "Invite Sent",
        "Account Added User",
        "Account Removed User",
        "Trial Started",
        "Trial Ended",
    ],
    "video": [
        "Video Playback Started",
        "Video Playback Paused",
        "Video Playback Interrupted",
        "Video Playback Buffer Started",
        "Video Playback Buffer Completed",
        "Video Playback Seek Started",
        "Video Playback Seek Completed",
        "Video Playback Resumed",
        "Video Playback Completed",
        "Video Playback Exited",
        "Video Quality Updated",
        "Video Content Started",
        "Video Content Playing",
        "Video Content Completed",
        "Video Ad Started",
        "Video Ad Playing",
        "Video Ad Completed",
    ],
    "mobile": [
        "Application Installed",
        "Application Opened",
        "Application Backgrounded",
        "Application Foregrounded",
        "Application Updated",
        "Application Uninstalled",
        "Application Crashed",
        "Install Attributed",
        "Push Notification Received",
        "Push Notification Tapped",
        "Push Notification Bounced",
        "Deep Link Clicked",
        "Deep Link Opened",
    ],
    "email": [
        "Email Delivered",
        "Email Opened",
        "Email Link Clicked",
        "Email Bounced",
        "Email Marked as Spam",
        "Unsubscribed",
    ],
}
SPEC_NAMES = [name for names in SEGMENT_SPEC.values() for name in names]

# Hand-picked: what a reader of the spec expects each of these to mean here.
EXPECTED = {
    "Product Viewed": "product_view",
    "Product Added": "add_to_cart",
    "Wishlist Product Added to Cart": "add_to_cart",
    "Order Completed": "order_completed",
    "Order Cancelled": "order_canceled",
    "Coupon Denied": "coupon_denied",
    "Product Shared": "product_shared",
    "Product Reviewed": "product_reviewed",
    "Signed Out": "signed_out",
    "Video Playback Started": "video_started",
    "Application Opened": "app_opened",
    "Application Foregrounded": "app_opened",
    "Push Notification Tapped": "push_opened",
    "Email Link Clicked": "email_clicked",
    "Email Marked as Spam": "email_spam_reported",
    "Unsubscribed": "email_unsubscribed",
}


def _web_vocabulary() -> dict[str, dict[str, str]]:
    """event_type -> its row of the event_types seed, for the types the web emits."""
    with (PROJECT_ROOT / "models" / "seeds" / "event_types.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {r["event_type"]: r for r in rows if "web" in r["source"].split(";")}


def _ingest_track_names(workspace: Settings, names: list[str]) -> dict[str, str]:
    """Land one track call per name and ingest it: native_event -> event_type."""
    lines = [segment_call(event=name, messageId=f"m-{i}") for i, name in enumerate(names)]
    land(workspace, "web", DAY, "part-1.jsonl", "\n".join(lines) + "\n")
    m = ingest_one(workspace, "web", D)
    assert (m.read, m.accepted, m.quarantined) == (len(names), len(names), 0)
    events = lake_events(workspace, "web")
    return dict(zip(events["native_event"], events["event_type"], strict=True))


def test_every_segment_spec_event_gets_a_canonical_type_the_models_know(workspace) -> None:
    mapped = _ingest_track_names(workspace, SPEC_NAMES)
    assert set(mapped) == set(SPEC_NAMES)
    assert [name for name, event_type in mapped.items() if event_type == "custom"] == []
    assert {name: mapped[name] for name in EXPECTED} == EXPECTED
    vocabulary = _web_vocabulary()
    unknown = {t for t in mapped.values() if t not in vocabulary or t not in EVENT_TYPES}
    assert unknown == set()
    # Only an order converts a journey.
    conversions = {t for t in mapped.values() if vocabulary[t]["is_conversion"] == "true"}
    assert conversions == {"order_completed"}


def test_spec_names_match_whatever_their_case_and_keep_their_own_spelling(workspace) -> None:
    mapped = _ingest_track_names(workspace, ["product viewed", " ORDER COMPLETED "])
    assert mapped == {"product viewed": "product_view", " ORDER COMPLETED ": "order_completed"}


def test_any_other_track_name_is_a_custom_event_under_its_own_name(workspace) -> None:
    lines = [
        segment_call(event="Size Guide Viewed"),
        segment_call(messageId="m-2", event="Wishlist Sparkled"),
        segment_call(messageId="m-3", event="checkout: gift wrap chosen ✓"),
        segment_call(
            type="group",
            event=None,
            messageId="m-4",
            userId="u-1",
            groupId="acct-9",
            traits={"email": "billing@company.example", "name": "Initech"},
        ),
    ]
    land(workspace, "web", DAY, "part-1.jsonl", "\n".join(lines) + "\n")
    m = ingest_one(workspace, "web", D)
    assert (m.read, m.accepted, m.quarantined) == (4, 4, 0)
    assert lake_quarantine(workspace, "web").height == 0
    events = lake_events(workspace, "web").sort("native_id")
    assert events.select("native_event", "event_type").rows() == [
        ("Size Guide Viewed", "custom"),
        ("Wishlist Sparkled", "custom"),
        ("checkout: gift wrap chosen ✓", "custom"),
        ("group", "group"),
    ]
    # A group call's traits describe the group: its address is nobody's identity.
    group = events.row(3, named=True)
    assert (group["user_id"], group["email_sha256"]) == ("u-1", None)


def _copy_project(to: Path) -> Path:
    """The dbt project (project file, profile, models, seeds, data tests) in ``to``."""
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(PROJECT_ROOT / name, to / name)
    for folder in ("models", "tests/dbt"):
        shutil.copytree(PROJECT_ROOT / folder, to / folder)
    return to


def _add_rule(project: Path, seed: str, row: dict[str, str]) -> None:
    path = project / "models" / "seeds" / f"{seed}.csv"
    with path.open(newline="") as f:
        header = next(csv.reader(f))
    with path.open("a", newline="") as f:
        csv.writer(f, lineterminator="\n").writerow([row.get(column, "") for column in header])


def _journey_events(settings: Settings) -> dict[str, tuple]:
    with duckdb.connect(str(settings.build_path), read_only=True) as con:
        rows = con.execute(
            "select native_event, event_type, stage, touchpoint_id from fct_journey_events"
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_a_custom_event_is_classified_by_a_rule_that_names_it(
    workspace: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def call(message_id: str, at: str, **fields: object) -> str:
        record = {
            "type": "track",
            "messageId": message_id,
            "anonymousId": "anon-size",
            "userId": "u-size",
            "timestamp": f"{DAY}T{at}:00.000Z",
            "context": {"page": {"url": "https://shop.example/products/sku-1"}},
            **fields,
        }
        return json.dumps(record)

    lines = [
        call("home", "08:00", type="page", context={"page": {"url": "https://shop.example/"}}),
        call("guide", "08:03", event="Size Guide Viewed"),
        call("closed", "08:04", event="Size Guide Closed"),
        call("product", "08:05", event="Product Viewed"),
        # A review written on the site: the customer's own words, scored like a review.
        call(
            "review",
            "08:09",
            event="Product Reviewed",
            properties={
                "product_id": "sku-1",
                "review_id": "r-1",
                "review_body": "I love these boots, they are great and so comfortable",
                "rating": 5,
            },
        ),
    ]
    land(workspace, "web", DAY, "segment.jsonl", "\n".join(lines) + "\n")
    ingest(workspace, [D], progress=quiet)
    settings = workspace.model_copy(
        update={
            "build_path": tmp_path / "build" / "cjm.duckdb",
            "warehouse_path": tmp_path / "warehouse" / "cjm.duckdb",
        }
    )

    # Models only: the marts' data and unit tests run on the sample elsewhere (and one
    # unit test cannot type its fixture on a lake without an order).
    build(settings, D, progress=quiet, tests=False)
    assert _journey_events(settings) == {
        "page": ("page_view", "discovery", "site_content"),
        "Size Guide Viewed": ("custom", "unclassified", "unclassified"),
        "Size Guide Closed": ("custom", "unclassified", "unclassified"),
        "Product Viewed": ("product_view", "consideration", "site_product"),
        "Product Reviewed": ("product_reviewed", "experience", "site_review_form"),
    }
    with duckdb.connect(str(settings.build_path), read_only=True) as con:
        scored = con.execute(
            "select e.rating, s.language, s.scorer, s.sentiment_label "
            "from intermediate.int_text_sentiment s "
            "join fct_journey_events e using (event_id)"
        ).fetchall()
    assert scored == [(5, "en", "vader_en", "positive")]

    # An analyst names the custom event in the rule seeds; the seed change makes the
    # next build a full refresh, which re-classifies it.
    project = _copy_project(tmp_path)
    _add_rule(
        project,
        "stage_rules",
        {
            "rule_id": "web_size_guide",
            "priority": "27",
            "source": "web",
            "event_type": "custom",
            "native_event": "Size Guide Viewed",
            "stage": "consideration",
        },
    )
    _add_rule(
        project,
        "touchpoint_rules",
        {
            "rule_id": "web_size_guide",
            "priority": "32",
            "source": "web",
            "event_type": "custom",
            "native_event": "Size Guide%",
            "touchpoint_id": "site_product",
        },
    )
    monkeypatch.setattr(build_module, "PROJECT_ROOT", project)
    result = build(settings, D, progress=quiet, tests=False)
    assert result.plan.full_refresh
    assert _journey_events(settings) == {
        "page": ("page_view", "discovery", "site_content"),
        "Size Guide Viewed": ("custom", "consideration", "site_product"),
        "Size Guide Closed": ("custom", "unclassified", "site_product"),
        "Product Viewed": ("product_view", "consideration", "site_product"),
        "Product Reviewed": ("product_reviewed", "experience", "site_review_form"),
    }


def test_a_batch_of_calls_saved_as_one_json_array_lands_each_call(workspace) -> None:
    # A batch of calls saved as a .json file: one array on one line.
    calls = [
        json.loads(segment_call(messageId=f"m-{n}", event=name))
        for n, name in enumerate(["Product Viewed", "Wishlist Shared", "Order Completed"])
    ]
    land(workspace, "web", DAY, "batch.json", json.dumps(calls))
    m = ingest_one(workspace, "web", D)
    assert (m.read, m.accepted, m.quarantined) == (3, 3, 0)
    events = lake_events(workspace, "web").sort("native_id")
    assert events["native_event"].to_list() == [
        "Product Viewed",
        "Wishlist Shared",
        "Order Completed",
    ]
    assert events["event_type"].to_list() == ["product_view", "custom", "order_completed"]


def test_spec_reviews_and_email_events_keep_their_words_mark_and_channel(workspace) -> None:
    lines = [
        segment_call(
            messageId="rev",
            event="Product Reviewed",
            properties={"review_id": "r-9", "review_body": "Too small", "rating": "2"},
        ),
        segment_call(
            messageId="rev-bad",
            event="Product Reviewed",
            properties={"review_id": "r-10", "review_body": "Meh", "rating": 7},
        ),
        segment_call(messageId="mail", event="Email Link Clicked"),
    ]
    land(workspace, "web", DAY, "calls.jsonl", "\n".join(lines) + "\n")
    m = ingest_one(workspace, "web", D)
    assert (m.read, m.accepted, m.quarantined_by_reason) == (3, 2, {"rating_out_of_range": 1})
    events = {row["native_id"]: row for row in lake_events(workspace, "web").iter_rows(named=True)}
    review = events["rev"]
    assert (review["text"], review["rating"], review["channel"]) == ("Too small", 2, "web")
    assert json.loads(review["properties"])["review_id"] == "r-9"
    assert (events["mail"]["event_type"], events["mail"]["channel"]) == ("email_clicked", "email")
    [bad] = lake_quarantine(workspace, "web").iter_rows(named=True)
    assert "properties.rating 7 is not a whole number from 1 to 5" in bad["detail"]
