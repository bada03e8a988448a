"""The PII scan: canary addresses and handles planted in every field of every native
format (UTF-8, gzip, UTF-16, Latin-1, in file names too), one real night (`cjm run`),
then every file the night produced is searched: the lake, the quarantine, manifests,
stdout and stderr, Great Expectations results and Data Docs, dbt's logs and target,
the build database, the served database and its snapshots, the Parquet marts and the
journey map. No planted address or handle may be anywhere."""

from __future__ import annotations

import codecs
import copy
import csv
import gzip
import io
import json
import os
import re
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cjm_pipeline.generate import generate

START = date(2026, 10, 1)
DAYS = 4
LAST = START + timedelta(days=DAYS - 1)
CJM = Path(sys.executable).with_name("cjm")

# Each canary is unique to where it was planted, so a finding names its route.
ADDRESS_DOMAIN = "canary-probe.example"
HANDLE_PREFIX = "piihandle_"


class Canaries:
    """Makes canary values and remembers where each one was planted."""

    def __init__(self) -> None:
        self.planted: dict[str, str] = {}

    def address(self, where: str) -> str:
        local = f"pii.{len(self.planted)}.canary"
        self.planted[local] = where
        return f"{local}@{ADDRESS_DOMAIN}"

    def handle(self, where: str) -> str:
        name = f"{HANDLE_PREFIX}{len(self.planted)}"
        self.planted[name] = where
        return name


def leaks(text: str) -> list[str]:
    """Planted addresses and handles found in ``text``: an address is its local part
    next to an at sign in any written form; a handle is its name anywhere (handles are
    planted bare in handle fields too, where they must be hashed)."""
    found = re.findall(
        r"pii\.\d+\.canary\s*(?:@|%40|\uff20|\\u0040|&#64;)", text, flags=re.IGNORECASE
    )
    found += re.findall(rf"{HANDLE_PREFIX}\d+", text, flags=re.IGNORECASE)
    return found


def _set(record: dict, path: str, value: object) -> dict:
    out = copy.deepcopy(record)
    node = out
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            return out
    node[keys[-1]] = value
    return out


WEB_BASE = {
    "type": "track",
    "event": "Product Viewed",
    "anonymousId": "anon-canary-base",
    "userId": "usr_canary_base",
    "timestamp": "2026-10-04T10:00:00.000Z",
    "context": {
        "page": {
            "url": "https://shop.example/p/1?utm_source=news",
            "path": "/p/1",
            "referrer": "https://www.google.com/",
            "title": "A product",
        },
        "campaign": {"source": "news", "medium": "email", "name": "autumn"},
        "userAgent": "Mozilla/5.0",
    },
    "properties": {"product_id": "sku-1", "price": 10.0, "category": "packs"},
}
WEB_FIELDS = [
    "type",
    "event",
    "name",
    "messageId",
    "anonymousId",
    "userId",
    "previousId",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "receivedAt",
    "context.page.url",
    "context.page.path",
    "context.page.referrer",
    "context.page.title",
    "context.campaign.source",
    "context.campaign.medium",
    "context.campaign.name",
    "context.campaign.term",
    "context.campaign.content",
    "context.traits.email",
    "context.userAgent",
    "context.ip",
    "traits.email",
    "traits.name",
    "properties.url",
    "properties.path",
    "properties.referrer",
    "properties.title",
    "properties.product_id",
    "properties.category",
    "properties.name",
    "properties.price",
    "properties.quantity",
    "properties.currency",
    "properties.query",
    "properties.order_id",
    "properties.revenue",
    "properties.total",
    "properties.coupon",
    "properties.step",
    "properties.custom_note",
]
EMAIL_BASE = {
    "email": "reader.canary.base@mailbox.example",
    "timestamp": 1791280800,
    "event": "click",
    "sg_message_id": "msg.filter01",
    "category": ["newsletter"],
    "url": "https://shop.example/l?utm_source=newsletter&utm_medium=email",
    "marketing_campaign_name": "autumn",
}
EMAIL_FIELDS = [
    "email",
    "timestamp",
    "event",
    "sg_event_id",
    "sg_message_id",
    "url",
    "category",
    "reason",
    "status",
    "type",
    "asm_group_id",
    "marketing_campaign_id",
    "marketing_campaign_name",
    "singlesend_name",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "user_id",
    "order_id",
    "smtp-id",
    "useragent",
    "ip",
]
SOCIAL_BASE = {
    "platform": "instagram",
    "author_handle": "@base_author",
    "created_at": "2026-10-04T11:00:00Z",
    "kind": "mention",
    "text": "Nice boots",
    "url": "https://instagram.example/p/1",
    "campaign": "",
    "in_reply_to": "",
    "sentiment": "positive",
}
SOCIAL_COLUMNS = ["mention_id", *SOCIAL_BASE]
REVIEW_BASE = {
    "platform": "trustpilot",
    "reviewer_email": "reviewer.canary.base@mailbox.example",
    "reviewer_handle": "",
    "rating": "4",
    "title": "Good",
    "text": "Solid boots",
    "language": "en",
    "created_at": "2026-10-04T12:00:00Z",
    "order_id": "ord_canary_base",
}
REVIEW_COLUMNS = ["review_id", *REVIEW_BASE]
CRM_COLUMNS = ["user_id", "email", "social_handles", "created_at"]
HANDLE_FIELDS = {"author_handle", "reviewer_handle"}


def _values(canaries: Canaries, where: str, handle_field: bool = False) -> list[object]:
    """The canary forms planted in one field."""
    values: list[object] = [
        canaries.address(where),
        f"@{canaries.handle(where)}",
        f"see {canaries.address(where)} or @{canaries.handle(where)} now",
        f"https://shop.example/x?email={canaries.address(where).replace('@', '%40')}&q=1",
        f"https://shop.example/y?handle={canaries.handle(where)}",
        # Long enough to reach every place a value is cut short for a message.
        "x" * 120 + canaries.address(where),
    ]
    if handle_field:
        values.append(canaries.handle(where))
    return values


def _web_lines(canaries: Canaries) -> list[str]:
    lines = []
    for field in WEB_FIELDS:
        for n, value in enumerate(_values(canaries, f"web {field}")):
            record = _set(WEB_BASE, "messageId", f"canary-web-{field}-{n}")
            lines.append(json.dumps(_set(record, field, value)))
        lines.append(json.dumps(_set(WEB_BASE, field, [canaries.address(f"web {field} list")])))
    return lines


def _email_lines(canaries: Canaries) -> list[str]:
    lines = []
    batch = []
    for field in EMAIL_FIELDS:
        for n, value in enumerate(_values(canaries, f"email {field}")):
            record = _set(EMAIL_BASE, "sg_event_id", f"canary-email-{field}-{n}")
            lines.append(json.dumps(_set(record, field, value)))
        posted = _set(EMAIL_BASE, "sg_event_id", f"canary-email-{field}-posted")
        batch.append(_set(posted, field, canaries.address(f"email {field} posted")))
    lines.append(json.dumps(batch))  # a webhook POST body, an array of events
    return lines


def _rows(base: dict, id_column: str, prefix: str, canaries: Canaries) -> list[dict]:
    rows = []
    for field in [id_column, *base]:
        for n, value in enumerate(_values(canaries, f"{prefix} {field}", field in HANDLE_FIELDS)):
            row = {id_column: f"canary-{prefix}-{field}-{n}", **base}
            row[field] = value
            rows.append(row)
    return rows


def _csv(columns: list[str], rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _crm_rows(canaries: Canaries) -> list[dict]:
    rows = []
    for field in CRM_COLUMNS:
        for n, value in enumerate(_values(canaries, f"crm {field}", field == "social_handles")):
            row = {
                "user_id": f"usr_canary_crm_{field}_{n}",
                "email": f"crm.{n}.{field}@mailbox.example",
                "social_handles": f"instagram:@{canaries.handle('crm pair')};x:"
                + canaries.handle("crm bare pair"),
                "created_at": "2026-01-01",
            }
            row[field] = value
            rows.append(row)
    return rows


def plant(landing: Path, canaries: Canaries) -> None:
    """Canary files for the last landing date, in every format and encoding."""
    day = LAST.isoformat()

    def put(source: str, name: str, data: bytes) -> None:
        folder = landing / source / day
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)

    web = "\n".join(_web_lines(canaries)) + "\n"
    put("web", "canary.jsonl", web.encode())
    put("web", "canary-gz.jsonl.gz", gzip.compress(web.replace("canary-web", "gz-web").encode()))
    put("web", "canary-u16.jsonl", web.replace("canary-web", "u16-web").encode("utf-16"))
    latin = json.dumps(
        _set(WEB_BASE, "userId", f"jos\u00e9.{canaries.address('web latin-1')}"),
        ensure_ascii=False,
    )
    put("web", "canary-latin1.jsonl", latin.encode("latin-1") + b"\n")
    put(
        "web",
        f"export-{canaries.address('web file name')}.jsonl",
        web.replace("canary-web", "fn-web").encode(),
    )
    email = "\n".join(_email_lines(canaries)) + "\n"
    put("email", "canary.json", codecs.BOM_UTF8 + email.encode())
    social = _rows(SOCIAL_BASE, "mention_id", "social", canaries)
    put("social", "canary.csv", _csv(SOCIAL_COLUMNS, social).encode())
    # UTF-16 without a byte order mark.
    put(
        "social",
        "canary-u16le.jsonl",
        "\n".join(json.dumps({**r, "mention_id": "l" + r["mention_id"]}) for r in social).encode(
            "utf-16-le"
        ),
    )
    put(
        "social",
        "canary.jsonl",
        "\n".join(json.dumps({**r, "mention_id": "j" + r["mention_id"]}) for r in social).encode(),
    )
    put(
        "social",
        "canary-u16.csv",
        _csv(SOCIAL_COLUMNS, social).replace("canary-", "u16-").encode("utf-16-le"),
    )
    reviews = _rows(REVIEW_BASE, "review_id", "reviews", canaries)
    put("reviews", "canary.csv", _csv(REVIEW_COLUMNS, reviews).encode())
    put(
        "reviews",
        "canary.jsonl.gz",
        gzip.compress(
            "\n".join(
                json.dumps({**r, "review_id": "j" + r["review_id"]}) for r in reviews
            ).encode()
        ),
    )
    put("crm", "canary.csv", _csv(CRM_COLUMNS, _crm_rows(canaries)).encode())
    # A CSV whose first line is data, not a header.
    put("social", "no-header.csv", _csv(SOCIAL_COLUMNS, social).split("\n", 1)[1].encode())


def scan_file(path: Path) -> list[str]:
    """Planted values found in one file, read as what it is."""
    if path.suffix == ".parquet":
        frame = pl.read_parquet(path)
        text = "\n".join(str(v) for column in frame.columns for v in frame[column].to_list())
        return leaks(text)
    if path.suffix == ".duckdb":
        return scan_database(path)
    data = path.read_bytes()
    # As text, with NUL bytes dropped (text interleaved with them), and as UTF-16.
    forms = [data, data.replace(b"\x00", b"")]
    texts = [form.decode("utf-8", errors="replace") for form in forms]
    texts += [data.decode(codec, errors="replace") for codec in ("utf-16-le", "utf-16-be")]
    return [hit for text in texts for hit in leaks(text)]


def scan_database(path: Path) -> list[str]:
    found = []
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE'"
        ).fetchall()
        for schema, table in tables:
            columns = con.execute(
                "select column_name from information_schema.columns "
                "where table_schema = ? and table_name = ?",
                [schema, table],
            ).fetchall()
            for (column,) in columns:
                values = con.execute(
                    f'select distinct cast("{column}" as varchar) from "{schema}"."{table}" '
                    f"where cast(\"{column}\" as varchar) ilike '%canary%' "
                    f"or cast(\"{column}\" as varchar) ilike '%{HANDLE_PREFIX}%'"
                ).fetchall()
                found += [
                    f"{schema}.{table}.{column}: {hit}" for (v,) in values for hit in leaks(v or "")
                ]
    return found


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Canaries, str]:
    root = tmp_path_factory.mktemp("pii_scan")
    generate(root / "data", customers=80, start=START, days=DAYS, seed=9, progress=lambda _: None)
    canaries = Canaries()
    plant(root / "data" / "landing", canaries)
    env = {
        **os.environ,
        "CJM_DATA_DIR": str(root / "data"),
        "CJM_WAREHOUSE_PATH": str(root / "warehouse" / "cjm.duckdb"),
        "CJM_BUILD_PATH": str(root / "warehouse" / "build" / "cjm.duckdb"),
        "CJM_SALT": "scan-salt",
        # The canary records are a large share of a small day: the scan is about where
        # they go, not about the gate, which would rightly stop the night.
        "CJM_MAX_QUARANTINE_SHARE": "1",
    }
    done = subprocess.run(
        [str(CJM), "run", "--start", START.isoformat(), "--end", LAST.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = done.stdout + "\n" + done.stderr
    assert done.returncode == 0, output[-5000:]
    return root, canaries, output


def test_the_canaries_were_planted_and_read(night) -> None:
    root, canaries, output = night
    assert len(canaries.planted) > 500
    lake = root / "data" / "lake"
    events = pl.read_parquet(
        lake / "events" / "*" / f"date={LAST}" / "*.parquet", hive_partitioning=False
    )
    quarantine = pl.read_parquet(
        lake / "quarantine" / "*" / f"date={LAST}" / "*.parquet", hive_partitioning=False
    )
    # Most canary records are accepted (their canary masked or hashed), the rest
    # quarantined: the scan below covers both routes.
    assert events.filter(pl.col("native_id").str.contains("canary|u16-|gz-|sha256:")).height > 300
    assert quarantine.height > 50
    assert "journey map: " in output


def test_no_planted_address_or_handle_is_written_anywhere(night) -> None:
    root, canaries, output = night
    findings = {"stdout/stderr": leaks(output)}
    outputs = [root / "data" / "lake", root / "warehouse"]
    files = [
        p for folder in outputs for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
    ]
    kinds = {p.suffix for p in files}
    # Everything the night writes is there to be scanned.
    assert {".parquet", ".json", ".duckdb", ".html"} <= kinds, kinds
    assert any("dbt" in p.parts and p.suffix == ".log" for p in files)
    assert any("validations" in p.parts for p in files)
    assert any("data_docs" in p.parts for p in files)
    assert any("reports" in p.parts for p in files)
    for path in files:
        hits = scan_file(path)
        if hits:
            findings[str(path.relative_to(root))] = hits
    findings = {where: hits for where, hits in findings.items() if hits}
    routes = {
        canaries.planted.get(re.sub(r"\s*(@|%40).*$", "", h).lower(), h)
        for hits in findings.values()
        for h in hits
    }
    assert not findings, (
        f"{len(findings)} file(s) hold planted values, planted in {sorted(routes)[:40]}: {findings}"
    )
