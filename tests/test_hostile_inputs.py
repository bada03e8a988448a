"""Landing files as an attacker or an unlucky operator would make them: each probe of the
hardening issue, on real files, through the real ingestion runner.

Whatever a file holds, the night goes on: a record is quarantined with its reason or a
file is quarantined whole, nothing escapes as a traceback, counts reconcile per file, and
no address or handle reaches the lake, the quarantine or the manifest."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from cjm_pipeline.ingest import Manifest, ingest, ingest_one
from cjm_pipeline.settings import PROJECT_ROOT, Settings
from cjm_pipeline.validate import validate_events
from tests.conftest import lake_events, lake_quarantine, land
from tests.conftest import segment_call as web
from transforms.schema import CANONICAL_SCHEMA, COLUMN_POLICY, CRM_POLICY, CRM_SCHEMA

DAY = "2026-10-05"
D = date(2026, 10, 5)
SALT = "test-salt"
CANARY = "pii.canary.7"  # the local part: it must never be written anywhere
ADDRESS = f"{CANARY}@probe.example"
HANDLE = "pii_canary_7"


def sha(value: str) -> str:
    return hashlib.sha256(f"{SALT}{value}".encode()).hexdigest()


def everything_written(settings: Settings) -> str:
    """Every string the lake holds (all Parquet columns) and every manifest, as one text."""
    parts = []
    for path in sorted(settings.lake_dir.rglob("*.parquet")):
        frame = pl.read_parquet(path)
        for name, dtype in frame.schema.items():
            if dtype == pl.String:
                parts += [v for v in frame[name].to_list() if v]
    parts += [p.read_text() for p in settings.lake_dir.rglob("*.json")]
    return "\n".join(parts)


def test_every_canonical_column_has_a_personal_data_policy() -> None:
    assert set(COLUMN_POLICY) == set(CANONICAL_SCHEMA.names())
    assert set(CRM_POLICY) == set(CRM_SCHEMA.names())


def test_an_email_used_as_user_id_becomes_a_hashed_email_identity(workspace) -> None:
    lines = [
        web(messageId="m-1", userId=f" {ADDRESS.upper()} "),
        web(messageId="m-2", anonymousId=f"@{HANDLE}"),
        web(messageId=f"{CANARY}@probe.example"),
        web(
            messageId="m-4",
            context={"page": {"url": f"https://shop.example/c?email={CANARY}%40probe.example"}},
        ),
        web(messageId="m-5", event="Products Searched", properties={"query": f"mail {ADDRESS}"}),
        # A custom event named after a person lands, its native name masked.
        web(messageId="m-6", event=f"Viewed by {ADDRESS}"),
    ]
    land(workspace, "web", DAY, "part.jsonl", "\n".join(lines))
    m = ingest_one(workspace, "web", D)
    assert (m.read, m.accepted, m.quarantined) == (6, 6, 0)
    events = lake_events(workspace, "web").sort("source_line")
    first = events.row(0, named=True)
    assert first["email_sha256"] == sha(ADDRESS)
    assert first["user_id"] == "sha256:" + sha(ADDRESS.upper())
    assert events["anonymous_id"][1] == "sha256:" + sha(f"@{HANDLE}")
    assert events["native_id"][2].startswith("sha256:")
    # The event id still comes from the native id itself: stable across deliveries.
    assert events["event_id"][2] == hashlib.sha256(f"web:{ADDRESS}".encode()).hexdigest()[:32]
    assert events["url"][3] == "https://shop.example/c?email=[redacted]"
    assert events["text"][4] == "mail [email]"
    assert (events["event_type"][5], events["native_event"][5]) == ("custom", "Viewed by [email]")
    written = everything_written(workspace)
    assert CANARY not in written and HANDLE not in written


@pytest.mark.parametrize(
    "line",
    [
        web(timestamp=ADDRESS),
        web(properties={"revenue": ADDRESS}),
        web(type=f"Viewed by {ADDRESS}"),
        web(messageId=f"@{HANDLE}", timestamp="yesterday"),
        '{"type":"track","userId":"' + ADDRESS + '","messageId":',
    ],
)
def test_a_rejected_record_keeps_no_address_in_its_detail_or_raw_copy(workspace, line) -> None:
    land(workspace, "web", DAY, "part.jsonl", web(messageId="good") + "\n" + line + "\n")
    m = ingest_one(workspace, "web", D)
    assert (m.read, m.accepted, m.quarantined) == (2, 1, 1)
    row = lake_quarantine(workspace, "web").row(0, named=True)
    assert row["detail"].startswith("web/2026-10-05/part.jsonl:2")
    assert CANARY not in row["detail"] + row["raw_redacted"]
    assert HANDLE not in row["detail"] + row["raw_redacted"]


def test_a_csv_without_header_is_refused_without_showing_its_first_row(workspace) -> None:
    land(
        workspace,
        "social",
        DAY,
        "export.csv",
        f"x_1,x,{HANDLE},2026-10-05T09:00:00Z,mention,hello,,,,\n"
        f"x_2,x,{HANDLE},2026-10-05T09:00:00Z,mention,hello,,,,\n",
    )
    m = ingest_one(workspace, "social", D)
    assert (m.read, m.quarantined, m.quarantined_by_reason) == (1, 1, {"unreadable_file": 1})
    assert "does not look like a header row" in m.messages[0]
    assert HANDLE not in json.dumps(m.messages) + everything_written(workspace)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_utf16_utf32_and_bom_files_are_read_as_text(workspace, encoding) -> None:
    rows = (
        "review_id,platform,reviewer_email,rating,text,created_at\n"
        f"r-1,google,{ADDRESS},5,Ask @{HANDLE} or {ADDRESS},2026-10-05T06:00:00Z\n"
        f"r-2,google,{ADDRESS},9,Bad rating,2026-10-05T06:00:00Z\n"
    )
    land(workspace, "reviews", DAY, "reviews.csv", rows.encode(encoding))
    m = ingest_one(workspace, "reviews", D)
    assert (m.read, m.accepted, m.quarantined_by_reason) == (2, 1, {"rating_out_of_range": 1})
    events = lake_events(workspace, "reviews")
    assert events["text"].to_list() == ["Ask @[handle] or [email]"]
    assert events["email_sha256"].to_list() == [sha(ADDRESS)]
    assert m.files[0].note  # the conversion is said in the manifest
    assert CANARY not in everything_written(workspace)


def test_a_utf8_bom_does_not_break_the_first_json_line(workspace) -> None:
    land(workspace, "web", DAY, "part.jsonl", codecs.BOM_UTF8 + (web() + "\n").encode())
    m = ingest_one(workspace, "web", D)
    assert (m.read, m.accepted) == (1, 1)
    assert m.files[0].note == "a UTF-8 byte order mark was removed"


def test_a_latin1_line_is_quarantined_with_its_address_masked(workspace) -> None:
    line = web(messageId="m-2", userId=f"jos\u00e9.{ADDRESS}").replace("\\u00e9", "\u00e9")
    bad = line.encode("latin-1")
    assert b"\xe9" in bad
    land(workspace, "web", DAY, "part.jsonl", web().encode() + b"\n" + bad + b"\n")
    m = ingest_one(workspace, "web", D)
    assert m.quarantined_by_reason == {"invalid_utf8": 1}
    assert CANARY not in everything_written(workspace)


def test_deep_nesting_huge_numbers_and_long_fields_are_record_rejects(workspace) -> None:
    deep = '{"type":"track","messageId":"deep","x":' + "[" * 10_000 + "]" * 10_000 + "}"
    land(workspace, "web", DAY, "part.jsonl", web() + "\n" + deep + "\n")
    email = {"email": "a@b.example", "event": "open", "sg_event_id": "e-1", "timestamp": 1e15}
    land(workspace, "email", DAY, "sg.json", json.dumps(email) + "\n")
    long_text = "x" * 200_000
    land(
        workspace,
        "social",
        DAY,
        "mentions.csv",
        "mention_id,platform,author_handle,created_at,kind,text\n"
        f'x_1,x,someone,2026-10-05T09:00:00Z,mention,"{long_text}"\n'
        "x_2,x,someone,2026-10-05T09:00:00Z,mention,short\n",
    )
    small = workspace.model_copy(update={"max_field_chars": 100_000})
    manifests = {m.source: m for m in ingest(small, [D], ["web", "email", "social"], print)}
    assert manifests["web"].quarantined_by_reason == {"invalid_json": 1}
    assert "nested too deeply" in lake_quarantine(workspace, "web")["detail"][0]
    assert manifests["email"].quarantined_by_reason == {"invalid_timestamp": 1}
    assert manifests["social"].quarantined_by_reason == {"record_too_large": 1}
    assert manifests["social"].accepted == 1


def test_an_unreadable_crm_file_is_quarantined_whole_and_the_rest_lands(workspace) -> None:
    land(workspace, "crm", DAY, "a.csv.gz", b"\x1f\x8b\x08\x00broken")
    land(workspace, "crm", DAY, "b.csv", "user_id,email\nu-1,a@b.example\n")
    land(workspace, "web", DAY, "part.jsonl", web())
    manifests = {m.source: m for m in ingest(workspace, [D], ["crm", "web"], print)}
    crm = manifests["crm"]
    assert (crm.read, crm.accepted, crm.quarantined) == (2, 1, 1)
    assert crm.quarantined_by_reason == {"unreadable_file": 1}
    assert manifests["web"].accepted == 1


def test_crm_counts_are_records_not_edges(workspace) -> None:
    land(
        workspace,
        "crm",
        DAY,
        "customers.csv",
        "user_id,email,social_handles\n"
        "u-1,a@b.example,instagram:@a;x:@aa;tiktok:@aaa\n"
        "u-2,b@b.example,\n"
        ",c@b.example,\n",
    )
    m = ingest_one(workspace, "crm", D)
    assert (m.read, m.accepted, m.quarantined) == (3, 2, 1)
    assert [(f.read, f.accepted, f.quarantined) for f in m.files] == [(3, 2, 1)]
    edges = pl.read_parquet(workspace.crm_partition(DAY) / "customers.parquet")
    assert edges.height == 4


def test_placeholder_identifiers_are_not_identities(workspace) -> None:
    lines = [
        web(messageId="m-1", anonymousId=True),
        web(messageId="m-2", anonymousId="undefined", userId="u-1"),
        web(messageId="m-3", anonymousId="00000000-0000-0000-0000-000000000000"),
        web(messageId="null"),
        web(messageId="m-5", anonymousId="Shared-Kiosk"),
    ]
    land(workspace, "web", DAY, "part.jsonl", "\n".join(lines))
    settings = workspace.model_copy(update={"identity_deny_list": "shared-kiosk"})
    m = ingest_one(settings, "web", D)
    assert m.quarantined_by_reason == {"missing_identity": 3, "missing_id": 1}
    events = lake_events(settings, "web")
    assert events.select("anonymous_id", "user_id").rows() == [(None, "u-1")]


def test_links_folders_fifos_and_hidden_files_are_listed_not_read(workspace, tmp_path) -> None:
    secret = tmp_path / "secrets.jsonl"
    secret.write_text(web(messageId="secret-1", userId="top-secret-value"))
    folder = land(workspace, "web", DAY, "part.jsonl", web()).parent
    (folder / "linked.jsonl").symlink_to(secret)
    (folder / "passwd.jsonl").symlink_to("/etc/passwd")
    (folder / "x.jsonl").mkdir()
    os.mkfifo(folder / "pipe.jsonl")
    (folder / ".hidden.jsonl").write_text(web(messageId="hidden"))
    (folder / "notes.txt").write_text("hello")
    m = ingest_one(workspace, "web", D)
    assert (m.read, m.accepted) == (1, 1)
    skipped = {s.entry: s.reason.split(":")[0] for s in m.skipped}
    assert skipped == {
        ".hidden.jsonl": "a hidden file",
        "linked.jsonl": "a symbolic link",
        "notes.txt": "no known extension, and its content is text that is neither JSON nor CSV",
        "passwd.jsonl": "a symbolic link",
        "pipe.jsonl": "a FIFO, not a regular file",
        "x.jsonl": "a folder",
    }
    written = everything_written(workspace)
    assert "top-secret-value" not in written and "root:" not in written


def test_a_landing_folder_behind_a_link_is_refused(workspace, tmp_path) -> None:
    outside = tmp_path / "elsewhere" / DAY
    outside.mkdir(parents=True)
    (outside / "part.jsonl").write_text(web())
    (workspace.landing_dir / "web").mkdir(parents=True)
    (workspace.landing_dir / "web" / DAY).symlink_to(outside)
    (workspace.landing_dir / "social").symlink_to(outside.parent)
    manifests = {m.source: m for m in ingest(workspace, [D], ["web", "social"], print)}
    for source in ("web", "social"):
        assert (manifests[source].read, manifests[source].status) == (0, "refused")
        assert "symbolic link" in manifests[source].skipped[0].reason
    assert not (workspace.lake_dir / "events").exists()
    # The gate stops the night: a source silently missing would publish a wrong night.
    report = validate_events(workspace, [D], ["web"], docs=False, save=False)
    [refused] = report.critical_failures
    assert (refused.suite, refused.column) == ("ingest_stats", "status")


def test_a_gzip_bomb_is_refused_before_it_costs_memory(workspace) -> None:
    bomb = gzip.compress(b"{}\n" * 17_000_000, compresslevel=9)
    assert len(bomb) < 100_000
    land(workspace, "web", DAY, "bomb.jsonl.gz", bomb)
    land(workspace, "web", DAY, "part.jsonl", web())
    peak, manifest = _ingest_in_child(workspace, "web")
    assert manifest["quarantined_by_reason"] == {"file_too_large": 1}
    assert manifest["accepted"] == 1
    assert "decompression bomb" in " ".join(manifest["messages"])
    assert peak < 1.0 * 2**30, f"peak RSS {peak / 2**20:.0f} MiB"


def test_a_file_of_empty_records_is_quarantined_whole_in_bounded_memory(workspace) -> None:
    land(workspace, "web", DAY, "empty.jsonl", b"{}\n" * 3_000_000)
    land(workspace, "web", DAY, "part.jsonl", web())
    peak, manifest = _ingest_in_child(workspace, "web")
    # Every record of the broken file counts as quarantined; one row stands for them.
    assert manifest["quarantined_by_reason"] == {"too_many_rejects": 3_000_000}
    assert (manifest["read"], manifest["accepted"]) == (3_000_001, 1)
    rows = lake_quarantine(workspace, "web")
    assert rows.select("reason", "records").rows() == [("too_many_rejects", 3_000_000)]
    assert peak < 1.5 * 2**30, f"peak RSS {peak / 2**20:.0f} MiB"


def test_a_file_quarantined_whole_still_counts_in_the_days_share(workspace) -> None:
    """A changed export (500 records with a new timestamp format) among 50 good ones:
    quarantined whole, it weighs 500 records in the quarantine share, so the gate stops
    the night as it would record by record."""
    good = [web(messageId=f"g-{i}") for i in range(50)]
    bad = [web(messageId=f"b-{i}", timestamp="05/10/2026 08:00") for i in range(500)]
    land(workspace, "web", DAY, "part.jsonl", "\n".join(good + bad))
    settings = workspace.model_copy(update={"max_file_rejects": 10})
    m = ingest_one(settings, "web", D)
    assert (m.read, m.accepted, m.quarantined) == (550, 0, 550)
    assert m.files[0].quarantined_whole == "too_many_rejects"
    report = validate_events(settings, [D], ["web"], docs=False, save=False)
    failed = {(r.suite, r.column) for r in report.critical_failures}
    assert ("ingest_stats", "quarantine_p_value") in failed
    assert {(r.suite, r.column) for r in report.warnings} >= {
        ("ingest_stats", "files_quarantined_whole")
    }


def test_a_crm_row_without_email_gets_none_made_up(workspace) -> None:
    land(
        workspace,
        "crm",
        DAY,
        "customers.csv",
        f"user_id,email\nu-3,\n{ADDRESS},\n",
    )
    m = ingest_one(workspace, "crm", D)
    assert (m.read, m.accepted, m.quarantined_by_reason) == (2, 1, {"missing_identity": 1})
    edges = pl.read_parquet(workspace.crm_partition(DAY) / "customers.parquet")
    assert edges["email_sha256"].to_list() == [sha(ADDRESS)]


def test_utf16_without_a_bom_is_read_even_when_little_of_it_is_ascii(workspace) -> None:
    lines = [
        json.dumps(
            {
                "mention_id": f"m-{i}",
                "platform": "x",
                "author_handle": "someone",
                "created_at": "2026-10-05T09:00:00Z",
                "kind": "mention",
                "text": "日本語のテキストです" * 30 + f" {ADDRESS}",
            },
            ensure_ascii=False,
        )
        for i in range(3)
    ]
    data = "\n".join(lines).encode("utf-16-le")
    assert data.count(0) < len(data) // 4  # too few NUL bytes for a simple count
    land(workspace, "social", DAY, "mentions.jsonl", data)
    m = ingest_one(workspace, "social", D)
    assert (m.read, m.accepted) == (3, 3)
    assert m.files[0].note == "read as UTF-16-LE, converted to UTF-8"
    assert CANARY not in everything_written(workspace)


@pytest.mark.parametrize(
    "written",
    [
        f"{CANARY}@@probe.example",
        f"{CANARY}@ probe.example",
        f"{CANARY}@intranet",
        f"{CANARY}\\u0040probe.example",
        "x" * 100 + f"{CANARY}@probe.example",
    ],
)
def test_malformed_or_long_addresses_are_masked_before_anything_is_cut(workspace, written):
    long_handle = "@" + HANDLE + "_" + "h" * 40
    lines = [
        web(
            messageId="m-1",
            event="Products Searched",
            properties={"query": f"{written} {long_handle}"},
        ),
        web(messageId="m-2", properties={"revenue": written}),
        web(messageId="m-3", timestamp=written),
    ]
    land(workspace, "web", DAY, "part.jsonl", "\n".join(lines))
    m = ingest_one(workspace, "web", D)
    assert (m.accepted, m.quarantined) == (1, 2)
    written_out = everything_written(workspace)
    assert CANARY not in written_out and HANDLE not in written_out


def test_a_20_mb_line_costs_its_length_not_its_square(workspace) -> None:
    line = web(messageId="huge", properties={"query": "a" * 20_000_000 + "@"})
    land(workspace, "web", DAY, "part.jsonl", web() + "\n" + line + "\n")
    land(workspace, "social", DAY, "m.jsonl", json.dumps({"mention_id": "a" * 5_000_000}))
    # A quadratic masking of either would take hours; linear takes well under a minute.
    _, manifest = _ingest_in_child(workspace, "web", timeout=120)
    assert manifest["quarantined_by_reason"] == {"record_too_large": 1}
    big = workspace.model_copy(update={"max_line_bytes": 64 << 20})
    m = ingest_one(big, "web", D)
    assert (m.accepted, m.quarantined) == (2, 0)
    m = ingest_one(big, "social", D)
    assert m.quarantined_by_reason == {"missing_identity": 1}


# The child's own peak is its VmHWM: getrusage's ru_maxrss carries the peak of the
# process that started it across exec (the test worker's, after a large earlier test).
CHILD = """
import json, re, sys
from datetime import date
from pathlib import Path
from cjm_pipeline.ingest import ingest_one
from cjm_pipeline.settings import Settings
m = ingest_one(Settings(data_dir=sys.argv[1], salt="test-salt"), sys.argv[2],
               date.fromisoformat(sys.argv[3]))
status = Path("/proc/self/status").read_text()
peak = int(re.search(r"^VmHWM:\\s+(\\d+) kB", status, re.M).group(1)) * 1024
print(json.dumps({"peak": peak, "manifest": json.loads(m.to_json())}))
"""


def _ingest_in_child(settings: Settings, source: str, timeout: float = 300) -> tuple[int, dict]:
    """Ingest in a fresh process, to measure what the file costs it (peak RSS)."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(settings.data_dir), source, DAY],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
        env={**os.environ, "POLARS_MAX_THREADS": "2"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["peak"], report["manifest"]


def test_a_full_disk_leaves_the_lake_as_it_was(workspace, tmp_path) -> None:
    land(workspace, "web", DAY, "part.jsonl", web())
    ingest_one(workspace, "web", D)
    before = (workspace.events_partition("web", DAY) / "events.parquet").read_bytes()
    lines = [
        web(messageId=f"m-{i}", properties={"query": os.urandom(400).hex()}) for i in range(4000)
    ]
    land(workspace, "web", DAY, "part.jsonl", "\n".join(lines))
    script = textwrap.dedent(
        """
        import resource, signal, sys
        from datetime import date
        from cjm_pipeline.ingest import LakeWriteError, ingest_one
        from cjm_pipeline.settings import Settings
        # Writes past 64 KiB fail as they would on a full disk (EFBIG instead of ENOSPC).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        try:
            ingest_one(Settings(data_dir=sys.argv[1], salt="test-salt"), "web",
                       date(2026, 10, 5))
        except LakeWriteError as exc:
            print("refused:", exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(workspace.data_dir)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
    )
    assert "refused: " in done.stdout, done.stdout + done.stderr[-2000:]
    assert "the lake is as it was" in done.stdout
    assert "Traceback" not in done.stderr
    assert (workspace.events_partition("web", DAY) / "events.parquet").read_bytes() == before
    assert list(workspace.lake_dir.rglob("*.tmp")) == []
    manifest = Manifest.load(workspace.manifest_path("web", DAY))
    assert manifest.accepted == 1 and manifest.reconciles()
    # The command line says the same in one line, without a traceback.
    done = subprocess.run(
        [str(Path(sys.executable).with_name("cjm")), "ingest", "--date", DAY, "--source", "web"],
        env={
            **os.environ,
            "CJM_DATA_DIR": str(workspace.data_dir),
            "CJM_SALT": SALT,
            "CJM_WAREHOUSE_PATH": str(tmp_path / "warehouse" / "cjm.duckdb"),
        },
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_small_files,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("error: writing ") and "Traceback" not in done.stderr
    assert list(workspace.lake_dir.rglob("*.tmp")) == []
    # With room again, the next ingest lands the day.
    assert ingest_one(workspace, "web", D).accepted == 4000


def _small_files() -> None:
    """In the child: writes past 64 KiB fail as on a full disk (EFBIG, not ENOSPC)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))


KILL_AFTER_FIRST_RENAME = """
import os, signal, sys
from datetime import date
from pathlib import Path
import cjm_pipeline.ingest as ingesting
from cjm_pipeline.settings import Settings

real_replace = os.replace
def replace_then_die(source, target):
    real_replace(source, target)
    if str(target).endswith("date=2026-10-06/events.parquet"):
        os.kill(os.getpid(), signal.SIGKILL)
ingesting.os.replace = replace_then_die
ingesting.ingest(Settings(data_dir=sys.argv[1], salt="test-salt"), [date(2026, 10, 5)],
                 ["web"], print)
"""


def test_a_backfill_killed_between_a_partition_and_its_manifest_is_completed(workspace) -> None:
    """A backfill of an earlier date moves re-delivered events out of the later
    partition; killed right after rewriting that partition, before its manifest, the
    next ingest finishes the job, and every manifest reconciles with its partition."""
    shared = [web(messageId=f"m-{i}", timestamp="2026-10-05T08:00:00Z") for i in range(5)]
    land(workspace, "web", "2026-10-06", "part.jsonl", "\n".join([*shared, web(messageId="x")]))
    land(workspace, "web", DAY, "part.jsonl", "\n".join(shared))
    ingest_one(workspace, "web", date(2026, 10, 6))
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_FIRST_RENAME, str(workspace.data_dir)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -9
    later = Manifest.load(workspace.manifest_path("web", "2026-10-06"))
    rows = pl.read_parquet(workspace.events_partition("web", "2026-10-06")).height
    assert (later.accepted, rows) == (6, 1), "the kill should land between the two"

    ingest(workspace, [date(2026, 10, 7)], ["web"], print)  # any later ingest of the source

    for iso, accepted in ((DAY, 5), ("2026-10-06", 1)):
        manifest = Manifest.load(workspace.manifest_path("web", iso))
        rows = pl.read_parquet(workspace.events_partition("web", iso)).height
        assert manifest.accepted == rows == accepted
        assert manifest.reconciles()
    assert list(workspace.lake_dir.rglob(".*.tmp")) == []
    assert list(workspace.lake_dir.rglob("*.journal")) == []


HOLD_LAKE_LOCK = """
import fcntl, sys, time
from pathlib import Path
handle = (Path(sys.argv[1]) / ".ingest-web.lock").open("a")
fcntl.flock(handle, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_two_ingests_of_a_source_never_write_at_once(workspace, capsys) -> None:
    """Whatever warehouse each serves, a second ingest of a source waits for the first
    (its recovery would otherwise delete the first one's files in flight)."""
    land(workspace, "web", DAY, "part.jsonl", web())
    workspace.lake_dir.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LAKE_LOCK, str(workspace.lake_dir), "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    m = ingest_one(workspace, "web", D)
    assert holder.poll() is not None, "the ingest went on while the lock was held"
    assert m.accepted == 1
    assert "waiting for another ingest of web to finish" in capsys.readouterr().out


def test_a_panic_inside_polars_quarantines_the_file_not_the_night(workspace, monkeypatch) -> None:
    """A Polars panic is a BaseException: caught like any adapter failure, the file is
    quarantined whole as parse_error and the other files of the night land."""
    from transforms import reviews

    land(workspace, "web", DAY, "part.jsonl", web(messageId="m-ok"))
    land(workspace, "reviews", DAY, "reviews.csv", "review_id,platform\nr-1,x\n")

    def panic(path, ctx):
        raise pl.exceptions.PanicException("assertion failed: i < self.len()")

    monkeypatch.setattr(reviews, "parse_file", panic)
    [web_day, reviews_day] = ingest(workspace, [D], ["web", "reviews"], progress=lambda _: None)
    assert (web_day.read, web_day.accepted) == (1, 1)
    assert reviews_day.quarantined_by_reason == {"parse_error": 1}
    assert "PanicException" in lake_quarantine(workspace, "reviews")["detail"][0]
