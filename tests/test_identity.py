"""Identity hygiene end to end: a shared family tablet, a shared mailbox and a
placeholder device id in hand-written Segment files, built night by night and as one
full refresh. Who is who is written down here, from the story the files tell, and
compared with the customers the models made."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cjm_pipeline.build import build, summary
from cjm_pipeline.ingest import ingest
from cjm_pipeline.settings import Settings
from tests.conftest import MARTS, lake_events, land, quiet

NIGHT_1 = date(2026, 10, 5)
NIGHT_2 = date(2026, 10, 6)
TABLET = "family-tablet"
KIOSK = "office-kiosk"
LAPTOP = "couple-laptop"
# Written to the lake as it was before the adapters dropped placeholder values.
PLACEHOLDER = "true"
PLANTED = "planted-placeholder"


def _call(message_id: str, at: str, anonymous_id: str, user_id: str | None = None, **more) -> str:
    record = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": message_id,
        "anonymousId": anonymous_id,
        "timestamp": at,
        "context": {"page": {"url": "https://shop.example/p/1", "path": "/p/1"}},
        "properties": {"product_id": "sku-1"},
        **more,
    }
    if user_id:
        record["userId"] = user_id
    return json.dumps(record)


def _night_1() -> tuple[list[str], dict[str, str]]:
    """Segment calls of the first day, and the person each call belongs to."""
    calls: list[tuple[str, str]] = []
    # Five members of a family sign in on one tablet (five people: under the cap of
    # five, so the tablet merges them for now), each also on their own phone.
    for n in range(1, 6):
        calls.append((f"u{n}", _call(f"tablet-u{n}", f"2026-10-05T0{n}:00:00Z", TABLET, f"u{n}")))
        calls.append(
            (f"u{n}", _call(f"phone-u{n}", f"2026-10-05T1{n}:00:00Z", f"phone-u{n}", f"u{n}"))
        )
    # Five colleagues sign in on an office kiosk, and nobody ever browses it signed out:
    # when it splits, the customer named after it is left with no event at all.
    for n in range(1, 6):
        calls.append((f"x{n}", _call(f"kiosk-x{n}", f"2026-10-05T0{n}:30:00Z", KIOSK, f"x{n}")))
    # Two people share a laptop: two is under the cap, so they are one customer.
    calls.append(("couple", _call("laptop-v1", "2026-10-05T09:00:00Z", LAPTOP, "v1")))
    calls.append(("couple", _call("laptop-v2", "2026-10-05T09:30:00Z", LAPTOP, "v2")))
    # Six colleagues sign up with the shop's info@ mailbox, each on their own device.
    for n in range(1, 7):
        calls.append(
            (
                f"w{n}",
                _call(
                    f"info-w{n}",
                    f"2026-10-05T10:0{n}:00Z",
                    f"desk-w{n}",
                    f"w{n}",
                    type="identify",
                    traits={"email": "info@shop.example"},
                ),
            )
        )
    # Two strangers whose SDKs sent the placeholder device id, and one visit with
    # nothing but the placeholder.
    calls.append(("z1", _call("placeholder-z1", "2026-10-05T12:00:00Z", PLANTED, "z1")))
    calls.append(("z2", _call("placeholder-z2", "2026-10-05T12:30:00Z", PLANTED, "z2")))
    calls.append(("placeholder", _call("placeholder-only", "2026-10-05T13:00:00Z", PLANTED)))
    return _split(calls)


def _night_2() -> tuple[list[str], dict[str, str]]:
    calls = [
        # A sixth family member signs in on the tablet: it is now shared by more people
        # than the cap, and the family it had merged falls apart into its members.
        ("u6", _call("tablet-u6", "2026-10-06T08:00:00Z", TABLET, "u6")),
        ("x6", _call("kiosk-x6", "2026-10-06T08:30:00Z", KIOSK, "x6")),
        # Browsing on the tablet without signing in belongs to the tablet itself.
        ("tablet", _call("tablet-alone", "2026-10-06T09:00:00Z", TABLET)),
        ("u1", _call("phone-u1-again", "2026-10-06T10:00:00Z", "phone-u1", "u1")),
        ("couple", _call("laptop-again", "2026-10-06T11:00:00Z", LAPTOP)),
    ]
    return _split(calls)


def _split(calls: list[tuple[str, str]]) -> tuple[list[str], dict[str, str]]:
    lines = [line for _, line in calls]
    people = {json.loads(line)["messageId"]: person for person, line in calls}
    return lines, people


def _plant_placeholder(settings: Settings) -> None:
    """Rewrite the lake's device ids as data written before the adapters' filter."""
    for path in (settings.lake_dir / "events" / "source=web").glob("*/*.parquet"):
        frame = pl.read_parquet(path)
        frame = frame.with_columns(
            pl.col("anonymous_id").replace(PLANTED, PLACEHOLDER).alias("anonymous_id")
        )
        frame.write_parquet(path)


def _customers_by_message(database: Path, settings: Settings) -> dict[str, str]:
    lake = lake_events(settings, "web").select("event_id", "native_id")
    with duckdb.connect(str(database), read_only=True) as con:
        built = con.sql("select event_id, customer_id from fct_journey_events").pl()
    joined = lake.join(built, on="event_id", how="left")
    return dict(zip(joined["native_id"], joined["customer_id"], strict=True))


def _partition(assignment: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for message, group in assignment.items():
        groups.setdefault(group, set()).add(message)
    return {frozenset(members) for members in groups.values()}


def _marts(database: Path) -> dict[str, pl.DataFrame]:
    with duckdb.connect(str(database), read_only=True) as con:
        tables = {name: con.sql(f"select * from {name}").pl() for name in MARTS}
    return {name: df.drop("build_id", strict=False).sort(pl.all()) for name, df in tables.items()}


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two nights built one after the other, and the same two days as a full refresh."""
    root = tmp_path_factory.mktemp("identity")
    settings = Settings(
        data_dir=root / "data",
        salt="test-salt",
        build_path=root / "nightly" / "cjm.duckdb",
        warehouse_path=root / "warehouse" / "cjm.duckdb",
    )
    people: dict[str, str] = {}
    night_1, people_1 = _night_1()
    land(settings, "web", NIGHT_1.isoformat(), "calls.jsonl", "\n".join(night_1) + "\n")
    ingest(settings, [NIGHT_1], sources=["web"], progress=quiet)
    _plant_placeholder(settings)
    build(settings, NIGHT_1, progress=quiet, tests=False)
    after_night_1 = _customers_by_message(settings.build_path, settings)

    night_2, people_2 = _night_2()
    land(settings, "web", NIGHT_2.isoformat(), "calls.jsonl", "\n".join(night_2) + "\n")
    ingest(settings, [NIGHT_2], sources=["web"], progress=quiet)
    incremental = build(settings, NIGHT_2, progress=quiet, tests=False)
    refreshed = settings.model_copy(update={"build_path": root / "full" / "cjm.duckdb"})
    build(refreshed, NIGHT_2, full_refresh=True, progress=quiet, tests=False)
    people = {**people_1, **people_2}
    return {
        "settings": settings,
        "refreshed": refreshed,
        "incremental": incremental,
        "after_night_1": after_night_1,
        "people": people,
    }


def test_under_the_cap_a_shared_device_merges(nights) -> None:
    after = nights["after_night_1"]
    family = {after[f"tablet-u{n}"] for n in range(1, 6)} | {
        after[f"phone-u{n}"] for n in range(1, 6)
    }
    assert len(family) == 1
    assert len({after[f"kiosk-x{n}"] for n in range(1, 6)}) == 1
    assert after["laptop-v1"] == after["laptop-v2"]


def test_customers_are_the_people_the_files_describe(nights) -> None:
    """After the second night every event is with its person, and nobody else: the
    family members apart, the colleagues apart, the strangers behind the placeholder
    apart, the couple together, the tablet's lone browsing on its own."""
    settings = nights["settings"]
    assert not nights["incremental"].plan.full_refresh
    built = _customers_by_message(settings.build_path, settings)
    assert set(built) == set(nights["people"])
    assert None not in built.values()
    expected = _partition(nights["people"])
    assert _partition(built) == expected
    # u1-u6, x1-x6, w1-w6, z1, z2, the couple, the tablet, the placeholder
    assert len(expected) == 23
    with duckdb.connect(str(settings.build_path), read_only=True) as con:
        rows, events = con.execute(
            "select count(*), count(distinct event_id) from fct_journey_events"
        ).fetchone()
    assert rows == events == len(built)


def test_incremental_nights_equal_a_full_refresh(nights) -> None:
    """The second night splits customers the first night merged (the kiosk's customer
    is left with no event at all); a full refresh of both days never merged them."""
    incremental = _marts(nights["settings"].build_path)
    full = _marts(nights["refreshed"].build_path)
    for name in MARTS:
        assert incremental[name].equals(full[name]), name


def test_identifiers_kept_from_merging_are_listed_and_stand_alone(nights) -> None:
    with duckdb.connect(str(nights["settings"].build_path), read_only=True) as con:
        listed = con.sql(
            "select node, identifier_kind, reason, linked_user_ids, linked_people, "
            "first_landing_date, over_cap_since from int_identity__overloaded"
        ).pl()
        sharing = con.execute(
            "select count(*) from int_identity__customers where customer_id in ("
            "select customer_id from int_identity__customers "
            "where node in (select node from int_identity__overloaded))"
        ).fetchone()[0]
    rows = {r["node"]: r for r in listed.iter_rows(named=True)}
    mailbox = [node for node in rows if node.startswith("email:")]
    assert len(mailbox) == 1
    assert set(rows) == {f"anon:{TABLET}", f"anon:{KIOSK}", f"anon:{PLACEHOLDER}", *mailbox}
    assert not any("@" in node for node in rows)
    for node, since in (
        (f"anon:{TABLET}", NIGHT_2),
        (f"anon:{KIOSK}", NIGHT_2),
        (mailbox[0], NIGHT_1),
    ):
        row = rows[node]
        assert (row["reason"], row["linked_user_ids"], row["linked_people"]) == ("over_cap", 6, 6)
        assert (row["first_landing_date"], row["over_cap_since"]) == (NIGHT_1, since)
    placeholder = rows[f"anon:{PLACEHOLDER}"]
    assert (placeholder["reason"], placeholder["linked_user_ids"]) == ("placeholder", 2)
    assert placeholder["over_cap_since"] is None
    # Each listed identifier is the only identifier of its customer.
    assert sharing == len(rows)


def test_summary_names_the_identifiers_kept_from_merging(nights) -> None:
    text = summary(nights["settings"].build_path)
    assert (
        "3 identifiers linked to more than 5 customers were not used to merge: 2 anon, 1 email"
        in text.splitlines()
    )
    assert "1 placeholder identifier was not used to merge: 1 anon" in text.splitlines()
