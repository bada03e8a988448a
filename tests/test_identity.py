"""Identity hygiene end to end: a shared family tablet, shared mailboxes, and
placeholder device and user ids in hand-written Segment files, built night by night
and as one full refresh. Who is who is written down here, from the story the files
tell, and compared with the customers the models made."""

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
INFO = "info@shop.example"
CLUB = "club@shop.example"
# Written to the lake as it was before the adapters dropped placeholder values.
PLACEHOLDER = "true"
PLANTED = "planted-placeholder"
PLACEHOLDER_USER = "null"
PLANTED_USER = "planted-placeholder-user"


def _call(
    message_id: str, at: str, anonymous_id: str | None, user_id: str | None = None, **more
) -> str:
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
                _identify(f"info-w{n}", f"2026-10-05T10:0{n}:00Z", f"desk-w{n}", INFO, f"w{n}"),
            )
        )
    # The mailbox identifies nobody, so a form sent with it without signing in goes with
    # the device: w1's own desk, or the desk of a newcomer seen nowhere else.
    calls.append(("w1", _identify("info-desk-w1", "2026-10-05T10:30:00Z", "desk-w1", INFO)))
    calls.append(
        ("newcomer", _identify("info-newcomer", "2026-10-05T10:40:00Z", "desk-newcomer", INFO))
    )
    # Two strangers whose SDKs sent the placeholder device id, and one visit with
    # nothing but the placeholder.
    calls.append(("z1", _call("placeholder-z1", "2026-10-05T12:00:00Z", PLANTED, "z1")))
    calls.append(("z2", _call("placeholder-z2", "2026-10-05T12:30:00Z", PLANTED, "z2")))
    calls.append(("placeholder", _call("placeholder-only", "2026-10-05T13:00:00Z", PLANTED)))
    # SDKs that sent userId "null": with u2's phone the visit is u2's, with a phone seen
    # nowhere else it is that phone's owner's, and with no device at all it is nobody's
    # (the placeholder user id's own customer).
    calls.append(
        ("u2", _call("null-user-phone-u2", "2026-10-05T14:00:00Z", "phone-u2", PLANTED_USER))
    )
    calls.append(
        (
            "stranger",
            _call("null-user-stranger", "2026-10-05T14:30:00Z", "stranger-phone", PLANTED_USER),
        )
    )
    calls.append(
        ("placeholder-user", _call("null-user-only", "2026-10-05T15:00:00Z", None, PLANTED_USER))
    )
    # Four members of a club sign up with its shared address, each on their own desk:
    # four people (five links with the placeholder user id below), so the address
    # merges them for now. A reader's SDK sends the address with userId "null" from the
    # reader's phone: the visit goes with the club until the address stops merging.
    for n in range(1, 5):
        calls.append(
            (
                f"c{n}",
                _identify(
                    f"club-c{n}", f"2026-10-05T16:0{n}:00Z", f"club-desk-c{n}", CLUB, f"c{n}"
                ),
            )
        )
    calls.append(("r1", _call("reader-r1", "2026-10-05T17:00:00Z", "reader-phone", "r1")))
    calls.append(
        ("r1", _identify("reader-club", "2026-10-05T17:30:00Z", "reader-phone", CLUB, PLANTED_USER))
    )
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
        # Two more members sign up with the club's address: six people, over the cap.
        # The club falls apart into its members, and the reader's visit with the
        # address moves to the reader, whom nothing else touched tonight.
        ("c5", _identify("club-c5", "2026-10-06T12:00:00Z", "club-desk-c5", CLUB, "c5")),
        ("c6", _identify("club-c6", "2026-10-06T12:30:00Z", "club-desk-c6", CLUB, "c6")),
    ]
    return _split(calls)


def _identify(
    message_id: str, at: str, anonymous_id: str, email: str, user_id: str | None = None
) -> str:
    return _call(message_id, at, anonymous_id, user_id, type="identify", traits={"email": email})


def _split(calls: list[tuple[str, str]]) -> tuple[list[str], dict[str, str]]:
    lines = [line for _, line in calls]
    people = {json.loads(line)["messageId"]: person for person, line in calls}
    return lines, people


def _plant_placeholder(settings: Settings) -> None:
    """Rewrite the lake's device and user ids as data written before the adapters'
    filter."""
    for path in (settings.lake_dir / "events" / "source=web").glob("*/*.parquet"):
        frame = pl.read_parquet(path)
        frame = frame.with_columns(
            pl.col("anonymous_id").replace(PLANTED, PLACEHOLDER),
            pl.col("user_id").replace(PLANTED_USER, PLACEHOLDER_USER),
        )
        frame.write_parquet(path)


def _customers_by_message(database: Path, settings: Settings) -> dict[str, str]:
    lake = lake_events(settings, "web").select("event_id", "native_id")
    with duckdb.connect(str(database), read_only=True) as con:
        built = con.sql("select event_id, customer_id from fct_journey_events").pl()
    joined = lake.join(built, on="event_id", how="left")
    return dict(zip(joined["native_id"], joined["customer_id"], strict=True))


def _customer_of_node(database: Path, node: str) -> str:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(
            "select customer_id from intermediate.int_identity__customers where node = ?", [node]
        ).fetchone()[0]


def _email_node(settings: Settings, message_id: str) -> str:
    """The identity node of the address a call carried, as ingestion hashed it."""
    lake = lake_events(settings, "web").filter(pl.col("native_id") == message_id)
    return f"email:{lake['email_sha256'].item()}"


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
    assert len({after[f"club-c{n}"] for n in range(1, 5)}) == 1


def test_an_event_goes_with_its_strongest_identifier_that_merges(nights) -> None:
    """Under the cap, the club's address merges the club, and the reader's visit sent
    with it and a placeholder user id goes with the club, not with the placeholder."""
    after = nights["after_night_1"]
    assert after["reader-club"] == after["club-c1"]
    assert after["reader-club"] != after["reader-r1"]


def test_a_shared_mailbox_or_placeholder_user_id_leaves_the_event_with_its_device(
    nights,
) -> None:
    """An event whose strongest identifier does not merge belongs to the customer of
    the next one that does: the device's person. Only when none merges does it go to
    the strongest one's own customer."""
    settings = nights["settings"]
    built = _customers_by_message(settings.build_path, settings)
    # The shared mailbox with w1's desk: w1. With a desk seen nowhere else: that desk.
    assert built["info-desk-w1"] == built["info-w1"]
    newcomer = _customer_of_node(settings.build_path, "anon:desk-newcomer")
    assert built["info-newcomer"] == newcomer
    assert newcomer != _customer_of_node(settings.build_path, _email_node(settings, "info-w1"))
    # userId "null" with u2's phone: u2. With a phone seen nowhere else: that phone.
    assert built["null-user-phone-u2"] == built["phone-u2"] == built["tablet-u2"]
    assert built["null-user-stranger"] == _customer_of_node(
        settings.build_path, "anon:stranger-phone"
    )
    # userId "null" alone: the placeholder's own customer, not the placeholder device's.
    placeholder_user = _customer_of_node(settings.build_path, f"user:{PLACEHOLDER_USER}")
    assert built["null-user-only"] == placeholder_user
    assert built["placeholder-only"] != placeholder_user
    # The club's address stopped merging on the second night: the reader's visit moved
    # from the club to the reader.
    assert built["reader-club"] == built["reader-r1"] != built["club-c1"]


def test_customers_are_the_people_the_files_describe(nights) -> None:
    """After the second night every event is with its person, and nobody else: the
    family members apart, the colleagues and club members apart, the strangers behind
    the placeholders apart, the couple together, the tablet's lone browsing on its
    own, and visits sent with a shared address or userId "null" with their device."""
    settings = nights["settings"]
    assert not nights["incremental"].plan.full_refresh
    built = _customers_by_message(settings.build_path, settings)
    assert set(built) == set(nights["people"])
    assert None not in built.values()
    expected = _partition(nights["people"])
    assert _partition(built) == expected
    # u1-u6, x1-x6, w1-w6, c1-c6, z1, z2, r1, the couple, the tablet, the placeholder
    # device, the placeholder user id, the newcomer, the stranger
    assert len(expected) == 33
    with duckdb.connect(str(settings.build_path), read_only=True) as con:
        rows, events = con.execute(
            "select count(*), count(distinct event_id) from fct_journey_events"
        ).fetchone()
    assert rows == events == len(built)


def test_incremental_nights_equal_a_full_refresh(nights) -> None:
    """The second night splits customers the first night merged (the kiosk's customer
    is left with no event at all) and moves the reader's visit with the club's address
    to a customer the night touched in no other way; a full refresh of both days never
    merged them."""
    incremental = _marts(nights["settings"].build_path)
    full = _marts(nights["refreshed"].build_path)
    for name in MARTS:
        assert incremental[name].equals(full[name]), name


def test_identifiers_kept_from_merging_are_listed_and_stand_alone(nights) -> None:
    with duckdb.connect(str(nights["settings"].build_path), read_only=True) as con:
        listed = con.sql(
            "select node, identifier_kind, reason, linked_user_ids, linked_people, "
            "first_landing_date, over_cap_since from intermediate.int_identity__overloaded"
        ).pl()
        sharing = con.execute(
            "select count(*) from intermediate.int_identity__customers where customer_id in ("
            "select customer_id from intermediate.int_identity__customers "
            "where node in (select node from intermediate.int_identity__overloaded))"
        ).fetchone()[0]
    rows = {r["node"]: r for r in listed.iter_rows(named=True)}
    settings = nights["settings"]
    mailbox, club = _email_node(settings, "info-w1"), _email_node(settings, "club-c1")
    placeholders = f"anon:{PLACEHOLDER}", f"user:{PLACEHOLDER_USER}"
    assert set(rows) == {f"anon:{TABLET}", f"anon:{KIOSK}", mailbox, club, *placeholders}
    assert not any("@" in node for node in rows)
    for node, since in (
        (f"anon:{TABLET}", NIGHT_2),
        (f"anon:{KIOSK}", NIGHT_2),
        (mailbox, NIGHT_1),
    ):
        row = rows[node]
        assert (row["reason"], row["linked_user_ids"], row["linked_people"]) == ("over_cap", 6, 6)
        assert (row["first_landing_date"], row["over_cap_since"]) == (NIGHT_1, since)
    assert (rows[club]["reason"], rows[club]["first_landing_date"]) == ("over_cap", NIGHT_1)
    assert rows[club]["over_cap_since"] == NIGHT_2
    for node, user_ids in zip(placeholders, (2, 0), strict=True):
        assert (rows[node]["reason"], rows[node]["linked_user_ids"]) == ("placeholder", user_ids)
        assert rows[node]["over_cap_since"] is None
    # Each listed identifier is the only identifier of its customer.
    assert sharing == len(rows)


def test_summary_names_the_identifiers_kept_from_merging(nights) -> None:
    text = summary(nights["settings"].build_path)
    assert (
        "4 identifiers linked to more than 5 customers were not used to merge: 2 anon, 2 email"
        in text.splitlines()
    )
    assert "2 placeholder identifiers were not used to merge: 1 anon, 1 user" in text.splitlines()
