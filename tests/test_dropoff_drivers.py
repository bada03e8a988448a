"""Drop-off drivers (agg_dropoff_drivers): the statistics of each two-by-two table,
worked out by hand here (rates, lift and odds ratio with their intervals, Fisher's exact
p-value summed over the hypergeometric distribution, Benjamini-Hochberg q-values), and
the counts the demo's build gives, recomputed from the journey tables."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pytest

MODEL = Path(__file__).resolve().parents[1] / "models" / "marts" / "agg_dropoff_drivers.py"


def _module():
    spec = importlib.util.spec_from_file_location("agg_dropoff_drivers", MODEL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(level: str, a: int, b: int, c: int, d: int, stage: str = "consideration") -> dict:
    return {
        "persona_scope": "all",
        "stage": stage,
        "stage_order": {"discovery": 1, "consideration": 2, "purchase": 3}[stage],
        "factor": "touchpoint",
        "level": level,
        "dropped_with": a,
        "advanced_with": b,
        "dropped_without": c,
        "advanced_without": d,
    }


def fisher_two_sided(a: int, b: int, c: int, d: int) -> float:
    """Fisher's exact test by its definition: the probability, with the margins fixed,
    of every table at most as likely as the one seen."""
    row, col, n = a + b, a + c, a + b + c + d

    def p(k: int) -> float:
        return math.comb(col, k) * math.comb(n - col, row - k) / math.comb(n, row)

    seen = p(a)
    low, high = max(0, row + col - n), min(row, col)
    return sum(p(k) for k in range(low, high + 1) if p(k) <= seen * (1 + 1e-7))


def test_one_table_by_hand() -> None:
    # 40 journeys touched the factor: 30 dropped. 60 did not: 20 dropped.
    [row] = (
        _module().drivers(pd.DataFrame([_table("x", 30, 10, 20, 40)]), 30, 0.05).to_dict("records")
    )
    assert (row["journeys_with"], row["journeys_without"]) == (40, 60)
    assert row["drop_rate_with"] == pytest.approx(0.75)
    assert row["drop_rate_without"] == pytest.approx(1 / 3)
    # Relative risk 0.75 / (1/3) = 2.25; Katz: se = sqrt(1/30 - 1/40 + 1/20 - 1/60).
    se = math.sqrt(1 / 30 - 1 / 40 + 1 / 20 - 1 / 60)
    assert row["lift"] == pytest.approx(2.25)
    assert row["lift_ci_low"] == pytest.approx(2.25 * math.exp(-1.959964 * se), rel=1e-5)
    assert row["lift_ci_high"] == pytest.approx(2.25 * math.exp(1.959964 * se), rel=1e-5)
    # Odds ratio 30*40 / (10*20) = 6; Woolf: se = sqrt(1/30 + 1/10 + 1/20 + 1/40).
    se = math.sqrt(1 / 30 + 1 / 10 + 1 / 20 + 1 / 40)
    assert row["odds_ratio"] == pytest.approx(6.0)
    assert row["odds_ratio_ci_low"] == pytest.approx(6 * math.exp(-1.959964 * se), rel=1e-5)
    assert row["odds_ratio_ci_high"] == pytest.approx(6 * math.exp(1.959964 * se), rel=1e-5)
    assert row["p_value"] == pytest.approx(fisher_two_sided(30, 10, 20, 40), rel=1e-9)
    assert row["p_value"] < 1e-4
    # One table tested: its q-value is its p-value.
    assert row["q_value"] == pytest.approx(row["p_value"])
    assert (row["is_tested"], row["is_significant"], row["direction"]) == (True, True, "more_drop")
    assert row["rank_in_stage"] == 1


def test_many_tables_are_corrected_together_and_small_ones_not_tested() -> None:
    tables = [
        _table("strong", 30, 10, 20, 40),
        _table("weak", 22, 18, 28, 32),
        _table("protective", 10, 30, 40, 20),
        # 12 journeys with the factor: below the minimum of 30, counted but not tested.
        _table("rare", 10, 2, 40, 48),
        # Everyone dropped: nothing to compare.
        _table("all_dropped", 35, 0, 50, 0, stage="purchase"),
    ]
    frame = _module().drivers(pd.DataFrame(tables), 30, 0.05)
    rows = {r["level"]: r for r in frame.to_dict("records")}
    tested = ["strong", "weak", "protective"]
    assert [lvl for lvl, r in rows.items() if r["is_tested"]] == ["strong", "protective", "weak"]
    for level in ("rare", "all_dropped"):
        assert not rows[level]["is_tested"] and not rows[level]["is_significant"]
        assert math.isnan(rows[level]["p_value"]) and math.isnan(rows[level]["q_value"])
    assert rows["rare"]["drop_rate_with"] == pytest.approx(10 / 12)
    # Benjamini-Hochberg by hand over the three tested p-values: sort, scale the i-th
    # smallest by m / i, then take running minima from the largest down.
    p = {
        "strong": fisher_two_sided(30, 10, 20, 40),
        "weak": fisher_two_sided(22, 18, 28, 32),
        "protective": fisher_two_sided(10, 30, 40, 20),
    }
    order = sorted(tested, key=p.get)
    q, running = {}, 1.0
    for i in range(len(order), 0, -1):
        running = min(running, p[order[i - 1]] * len(order) / i)
        q[order[i - 1]] = running
    for level in tested:
        assert rows[level]["q_value"] == pytest.approx(q[level], rel=1e-9)
    assert rows["weak"]["q_value"] > 0.05 and not rows["weak"]["is_significant"]
    assert rows["protective"]["direction"] == "less_drop"
    # 10/40 against 40/60: the factor makes a drop 0.375 times as likely.
    assert rows["protective"]["lift"] == pytest.approx(0.25 / (40 / 60))
    # The strongest driver of a drop ranks first; the protective one after it.
    assert rows["strong"]["rank_in_stage"] == 1


def test_a_zero_cell_gets_half_a_journey() -> None:
    # No journey with the factor advanced: the odds ratio is infinite without the
    # Haldane-Anscombe correction, which adds 0.5 to every cell.
    [row] = (
        _module().drivers(pd.DataFrame([_table("z", 31, 0, 20, 49)]), 30, 0.05).to_dict("records")
    )
    assert row["odds_ratio"] == pytest.approx((31.5 * 49.5) / (0.5 * 20.5))
    se = math.sqrt(1 / 31.5 + 1 / 0.5 + 1 / 20.5 + 1 / 49.5)
    assert row["odds_ratio_ci_low"] == pytest.approx(
        row["odds_ratio"] * math.exp(-1.959964 * se), rel=1e-5
    )
    assert row["lift"] == pytest.approx((31 / 31) / (20 / 69))


def test_the_builds_tables_count_the_journeys(built) -> None:
    # At consideration, in scope all: journeys of the funnel's populations whose outcome
    # there is known, and whether they touched the cart at consideration before they
    # entered purchase (or ever, when they dropped), counted from the journey tables.
    with duckdb.connect(str(built.build_path), read_only=True) as con:
        journeys = con.sql(
            "select journey_id, furthest_stage_order > 2 as advanced, purchase_entered_at "
            "from fct_journeys where population in ('known', 'anonymous') "
            "and furthest_stage_order >= 2 "
            "and (furthest_stage_order > 2 or status = 'dropped')"
        ).pl()
        cart = con.sql(
            "select journey_id, occurred_at from fct_journey_events "
            "where is_activity and stage = 'consideration' and touchpoint_id = 'site_cart'"
        ).pl()
        [row] = con.execute(
            "select dropped_with, advanced_with, dropped_without, advanced_without, lift "
            "from agg_dropoff_drivers where persona_scope = 'all' and stage = 'consideration' "
            "and factor = 'touchpoint' and level = 'site_cart'"
        ).fetchall()
    touched = (
        journeys.join(cart, on="journey_id")
        .filter(
            pl.col("purchase_entered_at").is_null()
            | (pl.col("occurred_at") < pl.col("purchase_entered_at"))
        )
        .select("journey_id")
        .unique()
    )
    flagged = journeys.with_columns(
        touched=pl.col("journey_id").is_in(touched["journey_id"].to_list())
    )

    def count(advanced: bool, touched: bool) -> int:
        return flagged.filter(
            (pl.col("advanced") == advanced) & (pl.col("touched") == touched)
        ).height

    expected = (count(False, True), count(True, True), count(False, False), count(True, False))
    assert row[:4] == expected
    assert sum(expected) == journeys.height > 0
