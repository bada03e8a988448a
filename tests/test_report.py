"""The analyst layer end to end: the marts on the sample, the Markov removal effect
worked by hand, and the journey map written from a published night, read back in
headless Chromium and compared with the marts."""

from __future__ import annotations

import importlib.util
import re
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from scipy.stats import chi2_contingency
from typer.testing import CliRunner

from cjm_pipeline.cli import app
from cjm_pipeline.publish import publish
from cjm_pipeline.report import ReportError, collect, report_data, report_source, write_report
from cjm_pipeline.settings import PROJECT_ROOT, Settings
from tests.conftest import RUN_DATE, quiet

MARKOV = PROJECT_ROOT / "models" / "intermediate" / "int_attribution_markov.py"
STAGES = ["discovery", "consideration", "purchase", "experience", "loyalty"]


def markov_module():
    spec = importlib.util.spec_from_file_location("int_attribution_markov", MARKOV)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_markov_removal_effect_on_three_channels() -> None:
    """Paths A > B > conversion, A > C > null, B > conversion, C > null.

    From the start: A 2/4, B 1/4, C 1/4. A goes to B or C (1/2 each), B always
    converts, C never. P(A) = 1/2, so P = 1/2 x 1/2 + 1/4 x 1 + 1/4 x 0 = 1/2.
    Without A: 1/4, removal effect 1 - (1/4)/(1/2) = 1/2. Without B: nothing
    converts, effect 1. Without C: A still converts through B half the time, P stays
    1/2, effect 0.
    """
    counts = {
        ("(start)", "A"): 2,
        ("(start)", "B"): 1,
        ("(start)", "C"): 1,
        ("A", "B"): 1,
        ("A", "C"): 1,
        ("B", "(conversion)"): 2,
        ("C", "(null)"): 2,
    }
    p, effects = markov_module().removal_effects(counts)
    assert p == pytest.approx(0.5)
    assert effects == pytest.approx({"A": 0.5, "B": 1.0, "C": 0.0})


def test_markov_solves_a_chain_that_loops() -> None:
    """Paths A > B > A > conversion and A > B > null: A goes to B 2/3 and converts 1/3,
    B goes back to A or to null (1/2 each). P(A) = 1/3 + 2/3 x 1/2 x P(A), so
    P(A) = 1/2 = P. Without B: P(A) = 1/3, effect 1 - (1/3)/(1/2) = 1/3. Without A:
    nothing converts, effect 1."""
    counts = {
        ("(start)", "A"): 2,
        ("A", "B"): 2,
        ("B", "A"): 1,
        ("A", "(conversion)"): 1,
        ("B", "(null)"): 1,
    }
    p, effects = markov_module().removal_effects(counts)
    assert p == pytest.approx(0.5)
    assert effects == pytest.approx({"A": 1.0, "B": 1 / 3})


def test_markov_without_conversions_credits_nothing() -> None:
    p, effects = markov_module().removal_effects({("(start)", "A"): 3, ("A", "(null)"): 3})
    assert p == 0
    assert effects == {"A": 0.0}


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    return con.execute(sql).fetchone()[0]


def test_analyst_marts_agree_with_the_journeys(built: Settings) -> None:
    """Totals every analyst mart must share with fct_journeys and the events."""
    with duckdb.connect(str(built.build_path), read_only=True) as con:
        journeys = scalar(con, "select count(*) from fct_journeys")
        converted = scalar(con, "select count(*) from fct_journeys where status = 'converted'")
        dropped = scalar(con, "select count(*) from fct_journeys where status = 'dropped'")
        assert converted > 0 and dropped > 0

        # Each model and level credits exactly the converted journeys.
        credited = con.execute(
            "select attribution_model, level, sum(conversions) from agg_attribution group by all"
        ).fetchall()
        assert len(credited) == 12
        assert all(total == pytest.approx(converted, abs=1e-4) for _, _, total in credited)

        # Every journey with a path leaves '(start)' once and ends once, in its status.
        # At the stage level the path is the journey's progress, so it starts as often
        # as journeys enter discovery or later, like the funnel.
        # Paths are drawn for the funnel populations (known and anonymous journeys).
        in_funnel = "select journey_id from fct_journeys where population in ('known', 'anonymous')"
        with_path = {
            "touchpoint": (
                "select journey_id from intermediate.int_journey_steps "
                f"where journey_id in ({in_funnel})"
            ),
            "stage": f"{in_funnel} and furthest_stage_order >= 1",
        }
        for level, journeys_with_path in with_path.items():
            starts, drops = con.execute(
                "select sum(transitions) filter (where from_node = '(start)'), "
                "sum(transitions) filter (where to_node = '(drop-off)') "
                f"from agg_transitions where level = '{level}'"
            ).fetchone()
            assert starts == scalar(
                con, f"select count(*) from fct_journeys where journey_id in ({journeys_with_path})"
            )
            assert drops == scalar(
                con,
                "select count(*) from fct_journeys where status = 'dropped' "
                f"and journey_id in ({journeys_with_path})",
            )
            share = scalar(
                con, f"select sum(share) from agg_journey_variants where level = '{level}'"
            )
            assert share == pytest.approx(1.0)
        # The stage Sankey agrees with the funnel: before purchase, the journeys that
        # drop after reaching a stage are the funnel's drops at that stage.
        drops_after = dict(
            con.execute(
                "select from_node, sum(transitions) from agg_transitions where level = 'stage' "
                "and to_node = '(drop-off)' group by from_node"
            ).fetchall()
        )
        funnel_drops = dict(
            con.execute(
                "select stage, sum(journeys_dropped) from agg_stage_funnel "
                "where stage_order <= 3 group by stage"
            ).fetchall()
        )
        assert {stage: drops_after.get(stage, 0) for stage in funnel_drops} == funnel_drops

        # Conformance covers every journey once; the aggregate adds up to the funnel
        # populations' journeys.
        assert scalar(con, "select count(*) from fct_journey_conformance") == journeys
        assert scalar(con, "select sum(journeys) from agg_path_conformance") == scalar(
            con, f"select count(*) from ({in_funnel})"
        )

        # Every text of the customers' voice is scored once (or counted as not scored),
        # and the sentiment mart counts them all; search queries are not voice.
        texts = scalar(
            con,
            "select count(*) from fct_journey_events where text is not null and text != '' "
            "and event_type in (select event_type from rules.voice_event_types)",
        )
        assert texts > 0
        assert scalar(con, "select count(*) from intermediate.int_text_sentiment") == texts
        assert (
            scalar(con, "select sum(texts) + sum(texts_not_scored) from agg_stage_sentiment")
            == texts
        )

        # Personas split the funnel without losing a journey.
        by_persona = scalar(
            con,
            "select sum(journeys_entered) from agg_stage_funnel where stage = 'discovery'",
        )
        entered = scalar(
            con,
            f"select count(*) from fct_journeys where discovery_entered_at is not null "
            f"and journey_id in ({in_funnel})",
        )
        assert by_persona == entered
        assert scalar(con, "select count(*) from dim_customers where journeys > 0") == scalar(
            con, "select count(*) from dim_customers where persona is not null"
        )


@pytest.fixture(scope="module")
def published(built: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The built sample published, with its journey map written."""
    root = tmp_path_factory.mktemp("report")
    build = root / "build" / "cjm.duckdb"
    build.parent.mkdir()
    build.write_bytes(built.build_path.read_bytes())
    settings = built.model_copy(
        update={"build_path": build, "warehouse_path": root / "warehouse" / "cjm.duckdb"}
    )
    publish(settings, RUN_DATE, 1, progress=quiet)
    write_report(settings)
    return settings


def journey_map(settings: Settings) -> Path:
    """The published night's journey map."""
    return settings.reports_dir / f"journey_map_{RUN_DATE.isoformat()}.html"


def mart_funnel(settings: Settings, persona: str | None = None) -> dict[str, tuple[int, int]]:
    """Entered and dropped per stage, summed over the funnel mart's rows."""
    where = "where stage != 'unclassified'" + (f" and persona = '{persona}'" if persona else "")
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        rows = con.execute(
            "select stage, sum(journeys_entered), sum(journeys_dropped) "
            f"from agg_stage_funnel {where} group by stage"
        ).fetchall()
    return {stage: (int(entered), int(dropped)) for stage, entered, dropped in rows}


def number(text: str) -> int:
    return int(re.sub(r"[^0-9]", "", text))


def shown_funnel(page) -> dict[str, tuple[int, int]]:
    return {
        stage: (
            number(page.locator(f'[data-metric="entered"][data-stage="{stage}"]').inner_text()),
            number(page.locator(f'[data-metric="dropped"][data-stage="{stage}"]').inner_text()),
        )
        for stage in STAGES
    }


def test_report_shows_the_marts_numbers(published: Settings, open_page) -> None:
    path = journey_map(published)
    opened = open_page(path)
    page = opened.page

    columns = page.locator("#journey-map .stage-column")
    assert columns.count() == 5
    assert [columns.nth(i).get_attribute("data-stage") for i in range(5)] == STAGES
    assert page.locator("svg#sankey path.sankey-link").count() > 5
    assert page.locator("svg#emotion-curve").count() == 1

    # Everyone: the shown funnel is the mart's, summed over personas, and equals an
    # independent count from the journeys.
    expected = mart_funnel(published)
    assert shown_funnel(page) == expected
    with duckdb.connect(str(published.warehouse_path), read_only=True) as con:
        reached = scalar(
            con,
            "select count(*) from fct_journeys where purchase_entered_at is not null "
            "and population in ('known', 'anonymous')",
        )
    assert expected["purchase"][0] == reached

    # One persona: the map is redrawn with that persona's rows.
    personas = [
        o for o in page.locator("#persona-select option").evaluate_all("o => o.map(x => x.value)")
    ]
    persona = next(p for p in personas if p != "all")
    page.select_option("#persona-select", persona)
    assert shown_funnel(page) == mart_funnel(published, persona)
    assert shown_funnel(page) != expected

    # Attribution cells show the mart's credits (one decimal).
    with duckdb.connect(str(published.warehouse_path), read_only=True) as con:
        markov = con.execute(
            "select node, conversions from agg_attribution where attribution_model = 'markov' "
            "and level = 'channel' order by conversions desc limit 1"
        ).fetchone()
    assert f"{markov[1]:,.1f}" in page.locator("#attribution").inner_text()

    assert opened.errors == []
    assert opened.requests == []
    shot = page.screenshot(full_page=True, path=str(path.with_suffix(".png")))
    assert len(shot) > 50_000


def test_report_for_a_date_or_persona(published: Settings) -> None:
    source = report_source(published, RUN_DATE)
    assert source.is_served and source.run_date == RUN_DATE
    with pytest.raises(ReportError, match="no published night as of"):
        report_source(published, RUN_DATE - timedelta(days=1))
    with pytest.raises(ReportError, match="no persona 'nobody'"):
        collect(source, "nobody")
    data = collect(source, "subscriber")
    assert data["initial_persona"] == "subscriber"
    path = write_report(published, RUN_DATE, "subscriber")
    assert path.name == f"journey_map_{RUN_DATE.isoformat()}_subscriber.html"


def cjm(settings: Settings, *args: str):
    env = {
        "CJM_DATA_DIR": str(settings.data_dir),
        "CJM_WAREHOUSE_PATH": str(settings.warehouse_path),
        "CJM_BUILD_PATH": str(settings.build_path),
    }
    return CliRunner().invoke(app, list(args), env=env)


def test_report_and_summary_commands(published: Settings) -> None:
    done = cjm(published, "report", "--date", RUN_DATE.isoformat(), "--persona", "subscriber")
    assert done.exit_code == 0, done.output
    path = Path(done.output.strip().removeprefix("journey map: "))
    assert path.exists() and path.name.endswith("_subscriber.html")

    missing = cjm(published, "report", "--date", (RUN_DATE - timedelta(days=3)).isoformat())
    assert missing.exit_code == 1
    assert "no published night as of" in missing.output
    assert "Traceback" not in missing.output

    summary = cjm(published, "summary")
    assert summary.exit_code == 0, summary.output
    funnel = mart_funnel(published)
    for stage in STAGES:
        line = next(x for x in summary.output.splitlines() if x.startswith(stage))
        entered, _, dropped = line.split()[1:4]
        assert (number(entered), number(dropped)) == funnel[stage]


def test_report_shows_times_to_the_next_stage_and_the_drivers(
    published: Settings, open_page
) -> None:
    path = journey_map(published)
    opened = open_page(path)
    page = opened.page
    with duckdb.connect(str(published.warehouse_path), read_only=True) as con:
        buckets = [
            r[0]
            for r in con.execute(
                "select journeys_in_bucket from agg_stage_durations where persona_scope = 'all' "
                "and from_stage = 'discovery' order by bucket_order"
            ).fetchall()
        ]
        advanced = scalar(
            con,
            "select count(*) from fct_journeys where population in ('known', 'anonymous') "
            "and consideration_entered_at is not null",
        )
        drivers = con.execute(
            "select stage, journeys_with from agg_dropoff_drivers where persona_scope = 'all' "
            "and is_significant and direction = 'more_drop' "
            "and factor not in ('time_at_stage', 'sessions') order by stage_order, rank_in_stage"
        ).fetchall()
    # The histogram's bars are the mart's buckets, which hold every journey that
    # went on from discovery (counted here from the journeys).
    bars = page.locator('[data-stage="discovery"] .cell-time .histogram-bar')
    shown = [int(bars.nth(i).get_attribute("data-journeys")) for i in range(bars.count())]
    assert shown == buckets and len(shown) == 9
    assert sum(shown) == advanced
    # The strongest driver of each stage is a pain point there, in words (the sample
    # has some: its personas drop at different rates).
    assert drivers
    for stage, journeys in {s: j for s, j in reversed(drivers)}.items():
        pains = page.locator(f'[data-stage="{stage}"] .cell-pain li[data-kind="driver"]')
        assert pains.count() >= 1
        assert f"({journeys:,} journeys, adjusted p" in pains.first.inner_text()
    # Checkouts left without an order, counted here from the sessions' events.
    with duckdb.connect(str(published.warehouse_path), read_only=True) as con:
        left = scalar(
            con,
            "select count(*) from (select session_id from fct_journey_events e "
            "join fct_journeys j using (journey_id) where j.population in "
            "('known', 'anonymous') group by session_id having bool_or(e.event_type in "
            "('checkout_started', 'checkout_step_viewed', 'checkout_step_completed', "
            "'payment_info_entered')) and not bool_or(e.is_conversion))",
        )
    recovery = page.locator('[data-stage="purchase"] .cell-pain li[data-kind="recovery"]')
    assert left > 0
    assert f"\n{left:,} checkouts left without an order:" in recovery.inner_text()
    assert page.locator('.cell-pain li[data-kind="last_steps"]').count() >= 2
    # What customers said: each stage's most negative and most positive quote, masked.
    with duckdb.connect(str(published.warehouse_path), read_only=True) as con:
        quotes = con.execute(
            "select stage, polarity, quote from agg_voice_quotes "
            "where speakers = 'all' and touchpoint_id = '(all)' and quote_rank = 1"
        ).fetchall()
    # What the customers each stage lost had said, from their journeys' texts in the
    # build (read here from the events, not from the mart): most negative first, the
    # newer text on a tie.
    with duckdb.connect(str(published.build_path), read_only=True) as con:
        lost = con.execute(
            "select j.stage, e.text, s.sentiment_score from intermediate.int_journey_stages j "
            "join fct_journey_events e using (journey_id) "
            "join intermediate.int_text_sentiment s using (event_id) "
            "where j.outcome = 'dropped' and j.population in ('known', 'anonymous') "
            "and s.sentiment_label in ('negative', 'positive') and trim(e.text) != '' "
            "order by j.stage, s.sentiment_label = 'positive', "
            "case when s.sentiment_label = 'negative' then s.sentiment_score "
            "else -s.sentiment_score end, e.occurred_at desc, e.event_id"
        ).fetchall()
    assert quotes
    for stage, polarity, quote in quotes:
        shown = page.locator(f'[data-stage="{stage}"] .cell-feel .quote-{polarity}')
        assert shown.count() == 1
        text = shown.inner_text()
        assert f"“{quote}”" in text
        assert not re.search(r"[\w.+-]+@[\w-]+\.\w+|@(?!\[)\w", text), text
    first_lost = {}
    for stage, text, _ in lost:
        first_lost.setdefault(stage, text)
    assert first_lost
    shown_lost = page.locator('.cell-pain li[data-kind="lost_voice"]')
    assert shown_lost.count() == len([s for s in first_lost if s in STAGES])
    for stage, text in first_lost.items():
        item = page.locator(f'[data-stage="{stage}"] .cell-pain li[data-kind="lost_voice"]')
        assert f"had said: “{text.strip()[:199]}" in item.inner_text(), (stage, text)
    assert opened.errors == []
    assert opened.requests == []


def test_rates_over_too_few_journeys_are_not_drawn(published: Settings, open_page) -> None:
    # With a minimum above every stage's journeys of known outcome, no rate is shown:
    # each reads "too few", and each period of drop-off over time is a hollow mark.
    strict = published.model_copy(update={"report_min_journeys": 1_000_000})
    data = report_data(strict)
    stages = [s for s in data["views"]["all"]["stages"] if s["advanced"] + s["dropped"]]
    assert stages and all(s["too_small"] and s["drop_off_rate"] is None for s in stages)
    periods = data["views"]["all"]["dropoff_over_time"]
    assert all(r["drop_off_rate"] is None for r in periods)
    path = write_report(strict, RUN_DATE, out=published.reports_dir / "strict.html")
    opened = open_page(path)
    page = opened.page
    shown = page.locator('[data-metric="drop_off_rate"]').all_inner_texts()
    assert shown and all(t == "too few (< 1,000,000)" for t in shown[: len(stages)])
    marks = page.locator("#dropoff-over-time circle.too-small").count()
    assert marks == sum(1 for r in periods if r["too_small"]) > 0
    assert opened.errors == []
    # The default minimum (20) leaves the sample's stages readable.
    assert all(not s["too_small"] for s in report_data(published)["views"]["all"]["stages"])


def test_every_touchpoint_of_a_stage_is_reachable(published: Settings, open_page) -> None:
    path = journey_map(published)
    page = open_page(path).page
    with duckdb.connect(str(published.warehouse_path), read_only=True) as con:
        per_stage = dict(
            con.execute(
                "select stage, count(distinct touchpoint_id) from agg_touchpoint_dropoff "
                "where stage in (select stage from dim_stages where stage_order > 0) "
                "group by stage"
            ).fetchall()
        )
    crowded = [stage for stage, n in per_stage.items() if n > 6]
    assert crowded, per_stage
    for stage, n in per_stage.items():
        column = page.locator(f'[data-stage="{stage}"] .cell-touchpoints')
        shown = column.locator(":scope > ul.chips > li").count()
        hidden = column.locator("details.more-touchpoints li").count()
        assert (shown, shown + hidden) == (min(n, 6), n), stage
        if n > 6:
            # Folded away until opened.
            assert column.locator("details.more-touchpoints li").first.is_hidden()
            column.locator("details.more-touchpoints summary").click()
            assert column.locator("details.more-touchpoints li").first.is_visible()


def test_the_map_fits_an_800_pixel_window(published: Settings, open_page) -> None:
    path = journey_map(published)
    opened = open_page(path)
    page = opened.page
    page.set_viewport_size({"width": 800, "height": 1200})
    scroll = page.locator(".map-scroll")
    widths = scroll.evaluate("n => [n.scrollWidth, n.clientWidth]")
    assert widths[0] <= widths[1], widths
    assert page.evaluate("document.documentElement.scrollWidth") <= 800
    columns = page.locator("#journey-map .stage-column")
    assert columns.count() == 5
    page.screenshot(path=str(path.with_name("map_800.png")), full_page=True)
    assert opened.errors == []


def test_periods_compared_are_the_marts_sums_with_their_test(
    published: Settings, open_page
) -> None:
    path = journey_map(published)
    opened = open_page(path)
    page = opened.page
    with duckdb.connect(str(published.warehouse_path), read_only=True) as con:
        periods = [
            r[0].isoformat()
            for r in con.execute(
                "select distinct period_start from agg_stage_funnel order by 1"
            ).fetchall()
        ]
    assert len(periods) >= 2, periods

    def expected(persona: str | None, period: str) -> dict[str, tuple[int, int]]:
        where = f"and persona = '{persona}'" if persona else ""
        with duckdb.connect(str(published.warehouse_path), read_only=True) as con:
            rows = con.execute(
                "select stage, sum(journeys_dropped), sum(journeys_advanced) "
                f"from agg_stage_funnel where period_start = ? {where} group by stage",
                [period],
            ).fetchall()
        return {stage: (int(d), int(d) + int(a)) for stage, d, a in rows}

    def check(persona: str | None) -> int:
        """The shown sums and test of each stage; how many stages had a p-value."""
        tested = 0
        # One period against the one before it.
        page.select_option("#range-from", periods[1])
        page.select_option("#range-to", periods[1])
        now, then = expected(persona, periods[1]), expected(persona, periods[0])
        for stage in STAGES[:3]:
            row = page.locator(f'#compare-table tr[data-stage="{stage}"]')
            d1, n1 = now.get(stage, (0, 0))
            d0, n0 = then.get(stage, (0, 0))
            assert int(row.get_attribute("data-dropped")) == d1, stage
            assert int(row.get_attribute("data-known")) == n1, stage
            assert int(row.get_attribute("data-before-dropped")) == d0, stage
            assert int(row.get_attribute("data-before-known")) == n0, stage
            reading = row.locator("td").last.inner_text()
            if min(n0, n1) < published.report_min_journeys:
                assert row.get_attribute("data-p") is None
                assert reading.startswith("too few"), reading
                continue
            # Pearson's chi-square on the 2x2 table, without continuity correction.
            table = [[d1, n1 - d1], [d0, n0 - d0]]
            p = 1.0 if 0 in (d1 + d0, n1 + n0 - d1 - d0) else chi2_contingency(table, False)[1]
            assert float(row.get_attribute("data-p")) == pytest.approx(p, rel=1e-5, abs=1e-9)
            tested += 1
            assert reading.startswith(
                ("rose significantly", "fell significantly")
                if p < published.alert_alpha
                else "no significant change"
            ), (stage, reading, p)
            # The range is younger than the journey gap: its rates are floors.
            assert reading.endswith("(open periods)"), reading
        # After the order no journey of a 12-day sample can have lapsed yet.
        experience = page.locator('#compare-table tr[data-stage="experience"] td').last
        assert experience.inner_text() == "not known yet: return window still open"
        return tested

    assert check(None) >= 2
    shown_before = page.locator("#compare-table").inner_text()
    personas = page.locator("#persona-select option").evaluate_all("o => o.map(x => x.value)")
    persona = next(p for p in personas if p != "all")
    page.select_option("#persona-select", persona)
    check(persona)
    assert page.locator("#compare-table").inner_text() != shown_before
    # The chosen range and the one before are drawn as bands on the chart.
    assert page.locator("#dropoff-chart rect.range-band").count() == 1
    assert page.locator("#dropoff-chart rect.range-before").count() == 1
    # A start after the end moves the end with it.
    page.select_option("#range-to", periods[0])
    page.select_option("#range-from", periods[-1])
    assert page.locator("#range-to").input_value() == periods[-1]
    assert opened.errors == []
    assert opened.requests == []


# Every text of the Sankey, with its box in the page; and the pairs that overlap or the
# texts that leave the chart (half a pixel of anti-aliasing allowed).
SANKEY_TEXT_BOXES = """() => {
  const svg = document.getElementById('sankey');
  const frame = svg.getBoundingClientRect();
  const boxes = [...svg.querySelectorAll('text')].map((t) => [t.textContent,
    t.getBoundingClientRect()]);
  const clipped = boxes.filter(([, r]) => r.left < frame.left - 0.5 ||
    r.right > frame.right + 0.5 || r.top < frame.top - 0.5 || r.bottom > frame.bottom + 0.5)
    .map(([name]) => name);
  const overlaps = [];
  boxes.forEach(([a, r], i) => boxes.slice(i + 1).forEach(([b, q]) => {
    if (r.left < q.right - 0.5 && q.left < r.right - 0.5 && r.top < q.bottom - 0.5 &&
        q.top < r.bottom - 0.5) overlaps.push(`${a} / ${b}`);
  }));
  return { texts: boxes.length, clipped, overlaps,
    nodes: svg.querySelectorAll('.sankey-node').length,
    labelled: svg.querySelectorAll('.sankey-node text').length };
}"""


def test_sankey_labels_never_overlap_or_leave_the_chart(published: Settings, open_page) -> None:
    path = journey_map(published)
    opened = open_page(path)
    page = opened.page
    for width in (1400, 800):
        page.set_viewport_size({"width": width, "height": 900})
        for level in ("stage", "touchpoint"):
            page.click(f"label[for=sankey-level-{level}]")
            boxes = page.evaluate(SANKEY_TEXT_BOXES)
            assert boxes["overlaps"] == [] and boxes["clipped"] == [], (width, level, boxes)
            # Labels are dropped only where a column has no room: most nodes keep theirs,
            # and at the stage level every node does.
            assert boxes["labelled"] >= 0.8 * boxes["nodes"] > 0, (width, level, boxes)
            if level == "stage":
                assert boxes["labelled"] == boxes["nodes"], boxes
    assert opened.errors == []


def test_attribution_shows_names_and_revenue(published: Settings, open_page) -> None:
    path = journey_map(published)
    opened = open_page(path)
    page = opened.page
    with duckdb.connect(str(published.warehouse_path), read_only=True) as con:
        channels = con.execute(
            "select node, revenue from agg_attribution where attribution_model = 'markov' "
            "and level = 'channel'"
        ).fetchall()
        names = dict(
            con.execute("select touchpoint_id, touchpoint_name from dim_touchpoints").fetchall()
        )
        touchpoint = con.execute(
            "select node, revenue from agg_attribution where attribution_model = 'linear' "
            "and level = 'touchpoint' and node in (select touchpoint_id from dim_touchpoints) "
            "order by revenue desc limit 1"
        ).fetchall()[0]
    page.click("label[for=attribution-measure-revenue]")
    rows = page.locator("#attribution-table tbody tr")
    shown = {
        rows.nth(i).get_attribute("data-node"): (
            rows.nth(i).locator("td").first.inner_text(),
            rows.nth(i).locator('td[data-model="markov"]').inner_text(),
        )
        for i in range(rows.count())
    }
    assert set(shown) == {node for node, _ in channels}
    for node, revenue in channels:
        name, value = shown[node]
        # A reader's name, not the mart's key; revenue in whole units.
        assert "_" not in name and name != node, (node, name)
        assert value == f"{revenue:,.0f}", (node, value)
    assert shown.get("direct", ("Direct visit",))[0] == "Direct visit"
    page.click("label[for=attribution-level-touchpoint]")
    row = page.locator(f'#attribution-table tr[data-node="{touchpoint[0]}"]')
    assert row.locator("td").first.inner_text() == names[touchpoint[0]]
    assert row.locator('td[data-model="linear"]').inner_text() == f"{touchpoint[1]:,.0f}"
    assert opened.errors == []


def test_opportunities_say_their_share_of_the_journeys_lost_there(published: Settings) -> None:
    view = report_data(published)["views"]["all"]
    with duckdb.connect(str(published.warehouse_path), read_only=True) as con:
        # Dropped journeys by the stage of their last touch, counted from the journeys.
        lost_after = dict(
            con.execute(
                "select last_touch_stage, count(*) from fct_journeys where status = 'dropped' "
                "and population in ('known', 'anonymous') and last_touchpoint_id is not null "
                "group by all"
            ).fetchall()
        )
        drivers = {
            (stage, touchpoint): lift
            for stage, touchpoint, lift in con.execute(
                "select stage, level, lift from agg_dropoff_drivers where persona_scope = 'all' "
                "and factor = 'touchpoint' and is_significant and direction = 'more_drop'"
            ).fetchall()
        }
    before_order = [o for o in view["opportunities"] if o["stage"] in STAGES[:3]]
    assert before_order
    for o in before_order:
        share = o["lost_journeys"] / lost_after[o["stage"]]
        assert (
            f"; the last touch of {share:.1%} of the journeys lost after a {o['stage']} touch"
            in o["text"]
        ), o["text"]
        lift = drivers.get((o["stage"], o["touchpoint_id"]))
        said = "journeys that touched it dropped"
        assert (f"{said} {lift:.1f}x as often" in o["text"]) if lift else said not in o["text"]
        assert "keep them going" not in o["text"]


def test_a_touchpoint_pain_point_carries_what_was_said_there() -> None:
    from cjm_pipeline.report import _said_at_touchpoints

    points = [
        {"kind": "low_rating", "text": "Review platform rated 2.9 of 5", "touchpoint_id": "rv"},
        {"kind": "exit", "text": "12 journeys ended after Cart", "touchpoint_id": "cart"},
        {"kind": "drop_off", "text": "40 journeys dropped here"},
    ]
    said = {
        "rv": {
            "negative_terms": ["broke", "zip"],
            "quote": {"quote": "Zip broke.", "rating": 2, "said_on": "2026-10-03"},
        },
        "social": {"negative_terms": ["late"]},
    }
    _said_at_touchpoints(points, said)
    assert points[0]["text"] == (
        "Review platform rated 2.9 of 5; said there, words: “broke”, “zip”; "
        "worst: “Zip broke.” (★2, 2026-10-03)"
    )
    assert points[0]["quote"]["quote"] == "Zip broke."
    # Nothing was said at the cart, and a stage-wide point names no touchpoint.
    assert points[1]["text"] == "12 journeys ended after Cart" and "quote" not in points[1]
    assert points[2]["text"] == "40 journeys dropped here"
