"""The HTML renderer: the embedded data, and the page as headless Chromium draws it.

The browser tests drive Debian's Chromium (``/usr/bin/chromium``, installed by
``make chromium``, which ``make test`` runs first) through Playwright; Playwright's own
browser download is not used.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from cjm_pipeline.report_html import CSP, render, write

SCRIPT_BREAKER = "</script><script>document.title='broken'</script>"

STAGES = [
    ("discovery", "pre_purchase", "Finding out the brand exists"),
    ("consideration", "pre_purchase", "Comparing products and prices"),
    ("purchase", "purchase", "Checking out and paying"),
    ("retention", "post_purchase", "Using the product, coming back"),
    ("advocacy", "post_purchase", "Reviewing and recommending"),
]
ENTERED = [4100, 2950, 1400, 900, 420]
DROPPED = [800, 1100, 100, 180, 20]
IN_PROGRESS = [350, 450, 400, 300, 0]
TOUCHPOINTS = [
    ("site_content", "Home page and content", "direct", "web"),
    ("site_product", "Product pages", "direct", "web"),
    ("newsletter", "Newsletter", "direct", "email"),
    ("social_post", "Social posts", "indirect", "social"),
    ("review_site", "Review sites", "indirect", "reviews"),
    ("checkout", "Checkout", "direct", "web"),
]
MODELS = ["first_touch", "last_touch", "linear", "position_based", "time_decay", "markov"]
PERSONAS = {
    "all": ("All customers", 3000, 1.0),
    "researcher": ("Researcher", 800, 0.31),
    "bargain_hunter": ("Bargain hunter", 650, 0.23),
}


def _stage_row(i: int, scale: float, persona: str) -> dict:
    stage = STAGES[i][0]
    entered = round(ENTERED[i] * scale)
    dropped = round(DROPPED[i] * scale)
    in_progress = round(IN_PROGRESS[i] * scale)
    last = i == len(STAGES) - 1
    completed = entered - dropped - in_progress if last else 0
    advanced = 0 if last else entered - dropped - in_progress
    sentiment = [0.42, 0.18, -0.27, 0.05, 0.61][i] * (1 if persona != "bargain_hunter" else 0.7)
    no_sentiment = persona == "bargain_hunter" and stage == "retention"
    pains = []
    if dropped / entered > 0.2:
        pains.append(
            {
                "kind": "drop_off",
                "text": f"{dropped / entered:.0%} of journeys stop at {stage}",
                "value": round(dropped / entered, 4),
            }
        )
    if stage == "purchase":
        pains.append({"kind": "low_rating", "text": "Checkout rated 2.1 of 5", "value": 2.1})
        pains.append({"kind": "exit", "text": SCRIPT_BREAKER, "value": 0.2311})
    if stage == "consideration":
        pains.append(
            {"kind": "negative_sentiment", "text": "Complaints about shipping", "value": -0.34}
        )
    touchpoints = []
    for j, (tp_id, name, kind, channel) in enumerate(TOUCHPOINTS[: 3 + i % 3]):
        touching = round(entered * (0.8 - 0.12 * j))
        dropped_after = round(touching * (0.05 + 0.04 * j))
        touchpoints.append(
            {
                "touchpoint_id": tp_id,
                "name": name,
                "type": kind,
                "channel": channel,
                "journeys_touching": touching,
                "journeys_dropped_after": dropped_after,
                "exit_rate": round(dropped_after / touching, 4),
            }
        )
    return {
        "stage": stage,
        "entered": entered,
        "advanced": advanced,
        "dropped": dropped,
        "in_progress": in_progress,
        "completed": completed,
        "drop_off_rate": round(dropped / entered, 4),
        "advance_rate": round(advanced / entered, 4),
        "actions": [
            {
                "event_type": event,
                "label": label,
                "events": round(entered * (3.1 - k)),
                "journeys": round(entered * (0.9 - 0.2 * k)),
            }
            for k, (event, label) in enumerate(
                [
                    ("page_view", "Viewed a page"),
                    ("email_open", "Opened an email"),
                    ("search", "Searched the site"),
                ][: 1 + i % 3]
            )
        ],
        "touchpoints": touchpoints,
        "emotion": {
            "average_sentiment": None if no_sentiment else round(sentiment, 3),
            "texts": 0 if no_sentiment else round(120 * scale) + 10 * i,
            "average_rating": None if i == 0 else round(4.4 - 0.6 * (i == 2) - 0.1 * i, 2),
            "ratings": 0 if i == 0 else round(60 * scale) + i,
        },
        "pain_points": pains[:3],
    }


def _view(persona: str, scale: float) -> dict:
    stages = [_stage_row(i, scale, persona) for i in range(len(STAGES))]
    weeks = ["2026-08-03", "2026-08-10", "2026-08-17", "2026-08-24", "2026-08-31", "2026-09-07"]
    over_time = []
    for w, week in enumerate(weeks):
        for i, row in enumerate(stages[:4]):
            dropped = round(row["dropped"] / 6 * (0.8 + 0.08 * w))
            advanced = round(row["advanced"] / 6)
            rate = None if (persona == "researcher" and w == 3 and i == 1) else 0.0
            if rate is not None:
                rate = round(dropped / (dropped + advanced + 5), 4)
            over_time.append(
                {
                    "period_start": week,
                    "stage": row["stage"],
                    "dropped": dropped,
                    "advanced": advanced,
                    "in_progress": 5,
                    "drop_off_rate": rate,
                }
            )
    return {
        "customers": PERSONAS[persona][1],
        "journeys": stages[0]["entered"],
        "converted": round(900 * scale),
        "dropped": sum(row["dropped"] for row in stages),
        "in_progress": round(1200 * scale),
        "stages": stages,
        "opportunities": [
            {
                "rank": 1,
                "stage": "consideration",
                "touchpoint_id": "site_product",
                "name": "Product pages",
                "lost_journeys": round(420 * scale),
                "exit_rate": 0.18,
                "text": "Journeys leave after product pages more than anywhere else.",
            },
            {
                "rank": 2,
                "stage": "purchase",
                "touchpoint_id": "checkout",
                "name": "Checkout",
                "lost_journeys": round(260 * scale),
                "exit_rate": 0.2311,
                "text": "Checkout loses a quarter of the journeys that reach it.",
            },
            {
                "rank": 3,
                "stage": "consideration",
                "touchpoint_id": "review_site",
                "name": "Review sites",
                "lost_journeys": round(130 * scale),
                "exit_rate": 0.09,
                "text": "Readers of reviews stop comparing.",
            },
        ],
        "dropoff_over_time": over_time,
    }


def _graph(flows: list[tuple[int, str, str, int, str | None]], kinds: dict[str, str]) -> dict:
    """Sankey nodes and links from (step, source label, target label, value, end) flows."""
    nodes: dict[str, dict] = {}

    def node(step: int, label: str, end: str | None = None) -> str:
        node_id = f"{step}:{label}"
        kind = "end" if end else kinds.get(label, "touchpoint")
        nodes.setdefault(
            node_id, {"id": node_id, "label": label, "step": step, "kind": kind, "end": end}
        )
        return node_id

    links = []
    for step, source, target, value, end in flows:
        links.append(
            {
                "source": node(step, source),
                "target": node(step + 1, target, end),
                "value": value,
                "median_gap_hours": None if step == 0 else round(6.5 * step, 1),
            }
        )
    return {"nodes": list(nodes.values()), "links": links}


def make_data() -> dict:
    """A realistic report dictionary: five stages, two personas and "all"."""
    stage_kinds = {"(start)": "start", **{stage: "stage" for stage, _, _ in STAGES}}
    stage_flows = [
        (0, "(start)", "discovery", 4100, None),
        (1, "discovery", "consideration", 2950, None),
        (1, "discovery", "dropped", 800, "dropped"),
        (1, "discovery", "in_progress", 350, "in_progress"),
        (2, "consideration", "purchase", 1400, None),
        (2, "consideration", "dropped", 1100, "dropped"),
        (2, "consideration", "in_progress", 450, "in_progress"),
        (3, "purchase", "retention", 900, None),
        (3, "purchase", "converted", 400, "converted"),
        (3, "purchase", "dropped", 100, "dropped"),
        (4, "retention", "advocacy", 420, None),
        (4, "retention", "converted", 300, "converted"),
        (4, "retention", "dropped", 180, "dropped"),
        (5, "advocacy", "converted", 420, "converted"),
    ]
    tp_flows = [
        (0, "(start)", "Home page and content", 2300, None),
        (0, "(start)", "Social posts", 1100, None),
        (0, "(start)", "Newsletter", 700, None),
        (1, "Home page and content", "Product pages", 1500, None),
        (1, "Home page and content", "dropped", 600, "dropped"),
        (1, "Home page and content", "in_progress", 200, "in_progress"),
        (1, "Social posts", "Home page and content", 700, None),
        (1, "Social posts", "dropped", 400, "dropped"),
        (1, "Newsletter", "Product pages", 500, None),
        (1, "Newsletter", "dropped", 200, "dropped"),
        (2, "Product pages", "Checkout", 1200, None),
        (2, "Product pages", "Review sites", 300, None),
        (2, "Product pages", "dropped", 500, "dropped"),
        (2, "Home page and content", "Product pages", 450, None),
        (2, "Home page and content", "dropped", 250, "dropped"),
        (3, "Checkout", "converted", 800, "converted"),
        (3, "Checkout", "dropped", 400, "dropped"),
        (3, "Review sites", "Checkout", 200, None),
        (3, "Review sites", "dropped", 100, "dropped"),
        (3, "Product pages", "Checkout", 250, None),
        (3, "Product pages", "in_progress", 200, "in_progress"),
        (4, "Checkout", "converted", 350, "converted"),
        (4, "Checkout", "dropped", 100, "dropped"),
    ]
    tp_kinds = {"(start)": "start"}
    channels = ["email", "web", "social", "reviews"]
    credits = [
        [120.0, 90.0, 100.5, 101.2, 95.0, 110.3],
        [610.0, 700.5, 650.25, 655.0, 690.0, 640.7],
        [150.0, 80.0, 110.0, 105.3, 85.5, 100.0],
        [20.0, 29.5, 39.25, 38.5, 29.5, 49.0],
    ]
    views = {persona: _view(persona, scale) for persona, (_, _, scale) in PERSONAS.items()}
    return {
        "title": "Customer journey map",
        "run_date": "2026-10-29",
        "build_id": 7,
        "published_at": "2026-10-30T03:12:00+00:00",
        "generated_at": "2026-10-30T03:15:42+00:00",
        "source": "warehouse/cjm.duckdb (read-only)",
        "initial_persona": "all",
        "stages": [
            {"stage": stage, "stage_order": i + 1, "funnel": funnel, "description": text}
            for i, (stage, funnel, text) in enumerate(STAGES)
        ],
        "personas": [
            {
                "persona": persona,
                "label": label,
                "customers": customers,
                "description": f"{label}: customers grouped by the persona rules.",
            }
            for persona, (label, customers, _) in PERSONAS.items()
        ],
        "views": views,
        "period_grain": "week",
        "sankey": {
            "stage": _graph(stage_flows, stage_kinds),
            "touchpoint": _graph(tp_flows, tp_kinds),
            "max_step": 6,
        },
        "variants": {
            "stage": [
                {
                    "rank": 1,
                    "variant": "discovery > consideration",
                    "journeys": 900,
                    "share": 0.2195,
                    "conversion_rate": 0.0511,
                },
                {
                    "rank": 2,
                    "variant": "discovery",
                    "journeys": 800,
                    "share": 0.1951,
                    "conversion_rate": 0.0,
                },
                {
                    "rank": 3,
                    "variant": "discovery > consideration > purchase",
                    "journeys": 400,
                    "share": 0.0976,
                    "conversion_rate": 1.0,
                },
            ],
            "touchpoint": [
                {
                    "rank": 1,
                    "variant": "Home page and content > Product pages > Checkout",
                    "journeys": 700,
                    "share": 0.1707,
                    "conversion_rate": 0.6143,
                }
            ],
        },
        "attribution": {
            "models": MODELS,
            "conversions": 900,
            "channel": [
                {
                    "node": channel,
                    "label": channel,
                    "credits": dict(zip(MODELS, row, strict=True)),
                    "removal_effect": [0.35, 0.71, 0.22, 0.08][k],
                }
                for k, (channel, row) in enumerate(zip(channels, credits, strict=True))
            ],
            "touchpoint": [
                {
                    "node": tp_id,
                    "label": name,
                    "credits": {
                        m: round(150.0 - 17.3 * k + 3.1 * j, 1) for j, m in enumerate(MODELS)
                    },
                    "removal_effect": round(0.4 - 0.05 * k, 3),
                }
                for k, (tp_id, name, _, _) in enumerate(TOUCHPOINTS)
            ],
        },
        "ideal_path": {
            "steps": [
                {
                    "step": 1,
                    "stage": "discovery",
                    "touchpoint_id": None,
                    "label": "Any discovery touchpoint",
                    "reached": 4100,
                    "reached_share": 1.0,
                },
                {
                    "step": 2,
                    "stage": "consideration",
                    "touchpoint_id": "site_product",
                    "label": "Product pages",
                    "reached": 2200,
                    "reached_share": 0.5366,
                },
                {
                    "step": 3,
                    "stage": "purchase",
                    "touchpoint_id": "checkout",
                    "label": "Checkout",
                    "reached": 1300,
                    "reached_share": 0.3171,
                },
                {
                    "step": 4,
                    "stage": "retention",
                    "touchpoint_id": "newsletter",
                    "label": "Newsletter",
                    "reached": 700,
                    "reached_share": 0.1707,
                },
                {
                    "step": 5,
                    "stage": "advocacy",
                    "touchpoint_id": "review_site",
                    "label": "Review sites",
                    "reached": 300,
                    "reached_share": 0.0732,
                },
            ],
            "summary": {
                "followed": 300,
                "on_path": 500,
                "deviated": 2500,
                "stopped": 800,
                "journeys": 4100,
            },
            "deviations": [
                {
                    "step": 2,
                    "expected": "Product pages",
                    "actual": "Newsletter",
                    "kind": "skipped",
                    "journeys": 400,
                    "share": 0.0976,
                    "converted": 20,
                },
                {
                    "step": 3,
                    "expected": "Checkout",
                    "actual": None,
                    "kind": "stopped",
                    "journeys": 380,
                    "share": 0.0927,
                    "converted": 0,
                },
            ],
        },
    }


# ---------------------------------------------------------------- without a browser


def _embedded(page_html: str) -> str:
    match = re.search(
        r'<script type="application/json" id="cjm-data">(.*?)</script>', page_html, re.S
    )
    assert match, "the data block is missing"
    return match.group(1)


def test_render_embeds_the_data_as_json() -> None:
    data = make_data()
    page = render(data)
    assert json.loads(_embedded(page)) == data
    assert "<title>Customer journey map · 2026-10-29</title>" in page
    assert '<meta charset="utf-8">' in page
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in page
    assert "default-src 'none'" in CSP
    assert "{{" not in page


def test_render_escapes_text_that_would_close_the_script() -> None:
    data = make_data()
    data["views"]["all"]["stages"][0]["pain_points"].append(
        {"kind": "exit", "text": "<!--<script>x</script>", "value": 0.1}
    )
    page = render(data)
    block = _embedded(page)
    assert SCRIPT_BREAKER not in page
    assert "</script>" not in block and "<!--" not in block
    # Exactly the page's own two closing tags remain: the data block's and the script's.
    assert page.count("</script>") == 2
    assert json.loads(block) == data


def test_render_cleans_values_json_cannot_hold() -> None:
    data = make_data()
    data["views"]["all"]["stages"][0]["drop_off_rate"] = float("nan")
    data["views"]["all"]["stages"][1]["advance_rate"] = float("inf")
    data["attribution"]["conversions"] = Decimal("900")
    data["views"]["all"]["stages"][2]["emotion"]["average_rating"] = Decimal("3.45")
    embedded = json.loads(_embedded(render(data)))
    assert embedded["views"]["all"]["stages"][0]["drop_off_rate"] is None
    assert embedded["views"]["all"]["stages"][1]["advance_rate"] is None
    assert embedded["attribution"]["conversions"] == 900
    assert embedded["views"]["all"]["stages"][2]["emotion"]["average_rating"] == 3.45


def test_render_names_no_address() -> None:
    page = render(make_data())
    assert "http://" not in page
    assert "https://" not in page


def test_write_replaces_the_file_atomically(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "journey_map.html"
    target.parent.mkdir()
    target.write_text("old report", encoding="utf-8")
    assert write(make_data(), target) == target
    assert target.read_text(encoding="utf-8") == render(make_data())
    assert sorted(p.name for p in target.parent.iterdir()) == ["journey_map.html"]


# ---------------------------------------------------------------- in Chromium


@pytest.fixture
def open_report(open_page, tmp_path: Path):
    """Write a report of ``data`` and open it (see ``open_page`` in conftest)."""

    def opener(data: dict, name: str = "report.html"):
        opened = open_page(write(data, tmp_path / name))
        opened.data = data
        return opened

    return opener


def _stage_ids(data: dict) -> list[str]:
    return [stage["stage"] for stage in data["stages"]]


def test_page_draws_without_errors_or_requests(open_report, tmp_path: Path) -> None:
    report = open_report(make_data())
    page = report.page
    assert page.title() == "Customer journey map · 2026-10-29"

    columns = page.locator("#journey-map .stage-column")
    assert columns.count() == 5
    assert columns.evaluate_all("cs => cs.map(c => c.dataset.stage)") == _stage_ids(report.data)

    assert page.locator("svg#sankey path.sankey-link").count() >= 1
    assert page.locator('svg#sankey g.sankey-node[data-kind="start"]').count() == 1
    assert page.locator('svg#sankey g.sankey-node[data-node="0:(start)"]').count() == 1
    assert page.locator('svg#sankey g.sankey-node[data-end="dropped"]').count() >= 1
    assert page.locator("svg#emotion-curve circle").count() == 5
    # The text that tried to close the data block is shown as plain text.
    assert page.get_by_text(SCRIPT_BREAKER).count() == 1

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000

    assert report.errors == []
    assert report.requests == []


def test_funnel_and_map_show_the_data(open_report) -> None:
    report = open_report(make_data())
    page = report.page
    for row in report.data["views"]["all"]["stages"]:
        stage = row["stage"]
        funnel = page.locator(f'#funnel [data-funnel="entered"][data-stage="{stage}"]')
        assert funnel.inner_text() == f"{row['entered']:,}"
        cell = f'#journey-map [data-stage="{stage}"]'
        assert page.locator(f'{cell} [data-metric="dropped"]').inner_text() == f"{row['dropped']:,}"
        rate = page.locator(f'{cell} [data-metric="drop_off_rate"]').inner_text()
        assert rate == f"{row['drop_off_rate']:.1%}"
    kpis = report.data["views"]["all"]
    assert page.locator('[data-kpi="journeys"]').inner_text() == f"{kpis['journeys']:,}"
    assert report.errors == []


def test_persona_selector_redraws_the_views(open_report) -> None:
    report = open_report(make_data())
    page = report.page
    entered = page.locator('[data-metric="entered"][data-stage="discovery"]')
    views = report.data["views"]
    assert entered.inner_text() == f"{views['all']['stages'][0]['entered']:,}"

    options = page.locator("#persona-select option").all_inner_texts()
    assert options == ["All customers (3,000)", "Researcher (800)", "Bargain hunter (650)"]

    page.select_option("#persona-select", "researcher")
    researcher = views["researcher"]
    assert entered.inner_text() == f"{researcher['stages'][0]['entered']:,}"
    assert entered.inner_text() != f"{views['all']['stages'][0]['entered']:,}"
    assert page.locator('[data-kpi="customers"]').inner_text() == f"{researcher['customers']:,}"
    for row in researcher["stages"]:
        shown = page.locator(f'#funnel [data-funnel="entered"][data-stage="{row["stage"]}"]')
        assert shown.inner_text() == f"{row['entered']:,}"

    # A persona without sentiment at one stage leaves a gap in the curve, not an error.
    page.select_option("#persona-select", "bargain_hunter")
    assert page.locator("svg#emotion-curve circle").count() == 4
    assert report.errors == []


def test_toggles_switch_levels(open_report) -> None:
    report = open_report(make_data())
    page = report.page
    page.locator('label[for="sankey-level-touchpoint"]').click()
    assert page.locator('svg#sankey g.sankey-node[data-kind="stage"]').count() == 0
    assert page.locator('svg#sankey g.sankey-node[data-kind="touchpoint"]').count() >= 5
    assert page.locator('svg#sankey g.sankey-node[data-node="2:Product pages"]').count() == 1
    assert page.locator("#variants-table tbody tr").count() == 1

    page.locator('label[for="attribution-level-touchpoint"]').click()
    rows = page.locator("#attribution-table tbody tr")
    assert rows.count() == len(report.data["attribution"]["touchpoint"])
    assert page.locator("#attribution-table td.best").count() == len(MODELS)
    assert report.errors == []


def test_page_tolerates_missing_data(open_report) -> None:
    data = {
        "run_date": "2026-10-29",
        "initial_persona": "nobody",
        "stages": make_data()["stages"],
        "personas": [],
        "views": {},
        "sankey": {"stage": {"nodes": [], "links": []}},
        "variants": {},
        "attribution": {"models": MODELS, "channel": []},
        "ideal_path": {"steps": [], "summary": {}, "deviations": []},
    }
    report = open_report(data, "empty.html")
    page = report.page
    assert page.locator(".stage-column").count() == 5
    assert page.locator("#journey-map .no-data").count() >= 5
    assert report.errors == []
