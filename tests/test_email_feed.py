"""The SendGrid feed as it is really delivered: webhook bodies saved as posted (one
pretty-printed JSON document), objects named without an extension (gzip or not), events
without sg_event_id, machine opens; and landing files told by their content."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, date, datetime, timedelta

from cjm_pipeline.ingest import ingest_one
from tests.conftest import lake_events, lake_quarantine, land

DAY = "2026-10-05"
D = date(2026, 10, 5)
NEXT = "2026-10-06"
SALT = "test-salt"  # the workspace fixture's salt
T0 = 1791187200  # 2026-10-05T08:00:00Z


def event(**fields: object) -> dict:
    """A SendGrid open with five fields (seven lines once indented); None leaves a field out."""
    base = {
        "email": "Kai.Kim@Inbox.Example",
        "timestamp": T0 + 3600,
        "event": "open",
        "sg_event_id": "e-1",
        "sg_message_id": "msg-1.filter",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def derived(*values: str | None) -> str:
    """The documented derivation, by hand: the salted SHA-256 of the compact JSON array
    of (event, machine_open, sg_message_id, email, timestamp, url, reason, type, status,
    asm_group_id)."""
    text = json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)
    return "derived:" + hashlib.sha256((SALT + text).encode()).hexdigest()[:32]


def test_a_pretty_printed_posted_array_lands_every_event(workspace) -> None:
    posted = [event(sg_event_id=f"e-{i}", timestamp=T0 + i) for i in range(3)]
    land(workspace, "email", DAY, "webhook.json", json.dumps(posted, indent=2))
    # As an S3 destination names its objects: gzip, no extension at all.
    again = [event(sg_event_id=f"g-{i}", timestamp=T0 + i) for i in range(2)]
    land(
        workspace,
        "email",
        DAY,
        "1791190800000",
        gzip.compress(json.dumps(again, indent=2).encode()),
    )
    m = ingest_one(workspace, "email", D)
    assert (m.read, m.accepted, m.quarantined, m.skipped) == (5, 5, 0, [])
    assert [(f.file, f.read, f.accepted) for f in m.files] == [
        ("email/2026-10-05/1791190800000", 2, 2),
        ("email/2026-10-05/webhook.json", 3, 3),
    ]
    events = lake_events(workspace, "email").sort("source_file", "source_line")
    # Each element starts on its own line: after the "[" line, every seven lines.
    assert events.select("source_file", "native_id", "source_line").rows() == [
        ("email/2026-10-05/1791190800000", "g-0", 2),
        ("email/2026-10-05/1791190800000", "g-1", 9),
        ("email/2026-10-05/webhook.json", "e-0", 2),
        ("email/2026-10-05/webhook.json", "e-1", 9),
        ("email/2026-10-05/webhook.json", "e-2", 16),
    ]
    assert set(events["event_type"]) == {"email_opened"}


def test_a_single_pretty_printed_object_is_one_event(workspace) -> None:
    land(workspace, "email", DAY, "one.json", "\n\n" + json.dumps(event(), indent=4) + "\n")
    m = ingest_one(workspace, "email", D)
    assert (m.read, m.accepted, m.quarantined) == (1, 1, 0)
    assert lake_events(workspace, "email").select("native_id", "source_line").rows() == [("e-1", 3)]


def test_a_document_broken_part_way_lands_what_precedes_the_break(workspace) -> None:
    text = json.dumps([event(sg_event_id=f"e-{i}") for i in range(3)], indent=2)
    # Cut inside the third element: two events land, the rest is one invalid record
    # at the line where the third element starts.
    land(workspace, "email", DAY, "cut.json", text[: text.index('"e-2"')])
    m = ingest_one(workspace, "email", D)
    assert (m.read, m.accepted, m.quarantined_by_reason) == (3, 2, {"invalid_json": 1})
    [row] = lake_quarantine(workspace, "email").rows(named=True)
    assert (row["source_line"], row["reason"]) == (16, "invalid_json")
    assert "the rest of the file from line 16" in row["detail"]


def test_an_event_without_sg_event_id_gets_its_derived_id(workspace) -> None:
    dropped = event(event="dropped", sg_event_id=None, reason="Bounced Address", timestamp=T0 + 60)
    land(workspace, "email", DAY, "a.jsonl", json.dumps(dropped))
    m = ingest_one(workspace, "email", D)
    assert (m.read, m.accepted) == (1, 1)
    [row] = lake_events(workspace, "email").rows(named=True)
    expected = derived(
        "dropped",
        None,
        "msg-1.filter",
        "kai.kim@inbox.example",
        "2026-10-05T08:01:00.000000Z",
        None,
        "Bounced Address",
        None,
        None,
        None,
    )
    assert row["native_id"] == expected
    assert row["event_id"] == hashlib.sha256(f"email:{expected}".encode()).hexdigest()[:32]
    assert row["event_type"] == "email_dropped"


def test_a_derived_id_deduplicates_redeliveries_and_tells_clicks_apart(workspace) -> None:
    def click(url: str) -> str:
        return json.dumps(event(event="click", sg_event_id=None, url=url))

    first, other = click("https://shop.example/a"), click("https://shop.example/b")
    # Delivered twice the same day, then once more the next day.
    land(workspace, "email", DAY, "a.jsonl", "\n".join([first, other, first]))
    land(workspace, "email", NEXT, "b.jsonl", first + "\n")
    today = ingest_one(workspace, "email", D)
    tomorrow = ingest_one(workspace, "email", D + timedelta(days=1))
    assert (today.read, today.accepted, today.duplicates_in_batch) == (3, 2, 1)
    assert (tomorrow.read, tomorrow.accepted, tomorrow.duplicates_other_dates) == (1, 0, 1)
    events = lake_events(workspace, "email")
    assert events["native_id"].n_unique() == 2
    assert sorted(events["url"]) == ["https://shop.example/a", "https://shop.example/b"]


def test_an_event_with_nothing_to_derive_an_id_from_is_missing_id(workspace) -> None:
    bare = event(sg_event_id=None, sg_message_id=None, timestamp=None)
    placeholder = event(sg_event_id="undefined", sg_message_id=None, email=None)
    land(workspace, "email", DAY, "a.jsonl", f"{json.dumps(bare)}\n{json.dumps(placeholder)}\n")
    m = ingest_one(workspace, "email", D)
    assert (m.read, m.accepted, m.quarantined_by_reason) == (2, 0, {"missing_id": 2})
    details = lake_quarantine(workspace, "email")["detail"].to_list()
    assert all("nor a timestamp with a message id or address" in d for d in details)


def test_a_machine_open_is_its_own_event_type(workspace) -> None:
    lines = [
        event(sg_event_id="m-1", sg_machine_open=True),
        event(sg_event_id="m-2", sg_machine_open=False),
        event(sg_event_id="m-3"),
    ]
    land(workspace, "email", DAY, "opens.jsonl", "\n".join(json.dumps(e) for e in lines))
    m = ingest_one(workspace, "email", D)
    assert (m.read, m.accepted) == (3, 3)
    events = lake_events(workspace, "email").sort("native_id")
    assert events["event_type"].to_list() == [
        "email_machine_opened",
        "email_opened",
        "email_opened",
    ]
    machine = [json.loads(p).get("machine_open") for p in events["properties"]]
    assert machine == [True, False, None]
    assert events["occurred_at"][0] == datetime.fromtimestamp(T0 + 3600, UTC)


def test_files_without_a_known_extension_are_read_by_content_or_listed(workspace) -> None:
    land(workspace, "email", DAY, "events", json.dumps(event()) + "\n")
    land(workspace, "email", DAY, "export", "email,event\nkai@inbox.example,open\n")
    land(workspace, "email", DAY, "notes.txt", "called the vendor; no reply\n")
    land(workspace, "email", DAY, "blob.bin", gzip.compress(b"\x00\x01\x02binary"))
    land(workspace, "email", DAY, "dump.parquet", b"PAR1")
    land(workspace, "email", DAY, "empty", b"")
    m = ingest_one(workspace, "email", D)
    assert [(f.file, f.accepted) for f in m.files] == [("email/2026-10-05/events", 1)]
    skipped = {s.entry: s.reason.split(":")[0] for s in m.skipped}
    assert skipped == {
        "blob.bin": "no known extension, and its content is not text",
        "dump.parquet": "not a file this source reads (expected *.jsonl, *.jsonl.gz, "
        "*.ndjson, *.ndjson.gz, *.json, *.json.gz)",
        "empty": "no known extension, and its content is empty",
        "export": "no known extension, and its content is CSV",
        "notes.txt": "no known extension, and its content is text that is neither JSON nor CSV",
    }


def test_a_csv_source_reads_a_csv_file_without_extension(workspace) -> None:
    land(workspace, "crm", DAY, "customers", "user_id,email\nu-1,zoe@mail.example\n")
    land(
        workspace,
        "reviews",
        DAY,
        "trustpilot-export",
        gzip.compress(
            b"review_id,platform,reviewer_handle,rating,created_at\n"
            b"r-1,trustpilot,Mia P.,5,2026-10-05T06:00:00Z\n"
        ),
    )
    crm = ingest_one(workspace, "crm", D)
    reviews = ingest_one(workspace, "reviews", D)
    assert (crm.read, crm.accepted, crm.skipped) == (1, 1, [])
    assert (reviews.read, reviews.accepted, reviews.skipped) == (1, 1, [])
    assert lake_events(workspace, "reviews")["rating"].to_list() == [5.0]
