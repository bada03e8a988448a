"""The customer journey map: one self-contained HTML file per published night.

Every number comes from the served marts (or a kept snapshot, for an earlier run
date), opened read-only. Where the report shows everyone, it sums the persona rows
of a mart and recomputes a rate with the mart's own formula (drop-off rate =
dropped / (advanced + dropped); exit rate = dropped after / touching before purchase,
post-purchase dropped after / touching after it), so a BI tool summing the same rows
gets the same figure. ``collect`` builds the data, ``write_report``
renders it (``report_html``), ``summary_text`` is the terminal version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from cjm_pipeline.publish import DamagedDatabase, PublishError, Snapshot, served_info, snapshots
from cjm_pipeline.settings import MARTS, Settings

ALL = "all"
MODELS = ("first_touch", "last_touch", "linear", "position_based", "time_decay", "markov")
SANKEY_STEPS = 6  # columns of the Sankey after '(start)'
SANKEY_NODES_PER_STEP = 8  # touchpoints per column; the rest are drawn as one node
OTHER_TOUCHPOINTS = "(other touchpoints)"
# What the funnel's outcome columns mean where the stage gives them another name: an
# order closes the pre-purchase journey; after it, loyalty signals within the return
# window decide.
OUTCOME_LABELS: dict[str, dict[str, str]] = {
    "purchase": {"advanced": "Ordered", "dropped": "Abandoned checkout"},
    "experience": {"advanced": "Retained", "dropped": "Lapsed", "in_progress": "In return window"},
}
FUNNEL_POPULATIONS = "population in ('known', 'anonymous')"


def _funnel_only(where: str) -> str:
    """A persona filter narrowed to the journeys the funnel counts."""
    return f"{where} and {FUNNEL_POPULATIONS}" if where else f"where {FUNNEL_POPULATIONS}"


TOP_ACTIONS = 5
TOP_TOUCHPOINTS = 6  # touchpoints the map shows at once per stage (the JS keeps the same)
TOP_DRIVERS = 2  # significant drivers of a drop shown per stage
TOP_TERMS = 5  # negative terms shown per stage
# Factors the map does not show as reasons (the mart keeps them): how long a journey
# stayed and how many sessions it had partly are how its drop is defined (a journey that
# stops early has a short stay), not why it stopped.
UNSHOWN_DRIVERS = ("time_at_stage", "sessions")
TOP_OPPORTUNITIES = 8
TOP_VARIANTS = 10
TOP_DEVIATIONS = 10
# Length of a funnel period, to tell which periods are still open (upper bound for months).
PERIODS = {"day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=31)}
# The channels of dim_touchpoints, as a reader names them ('web' is credited as
# 'direct': a visit that opened a session with no campaign or referrer before it).
CHANNEL_NAMES = {
    "direct": "Direct visit",
    "web": "Direct visit",
    "email": "Email",
    "paid_search": "Paid search",
    "paid_social": "Paid social",
    "organic_search": "Organic search",
    "affiliate": "Affiliate",
    "social": "Social posts and mentions",
    "reviews": "Reviews",
    "marketplace": "Marketplace",
    "unclassified": "Unclassified",
}
NO_TOUCH = "(none)"  # a conversion with no touch before the order (int_attribution_paths)
END_NODES = {"(drop-off)": "dropped", "(converted)": "converted", "(in progress)": "in_progress"}


class ReportError(Exception):
    """The report cannot be made: nothing published, or no snapshot of that date."""


@dataclass(frozen=True)
class Source:
    path: Path
    run_date: date
    build_id: int
    published_at: datetime
    is_served: bool


def report_source(settings: Settings, run_date: date | None = None) -> Source:
    """The database to read: the served one, or the kept snapshot of ``run_date``."""
    try:
        served = served_info(settings.warehouse_path)
    except DamagedDatabase as exc:
        raise ReportError(str(exc)) from exc
    except PublishError as exc:
        raise ReportError(f"{exc}; run `cjm run` first") from exc
    if run_date is None or served["run_date"] == run_date:
        return Source(
            settings.warehouse_path,
            served["run_date"],
            int(served["build_id"]),
            served["published_at"],
            True,
        )
    kept: list[Snapshot] = [s for s in snapshots(settings) if not s.rolled_back]
    matching = [s for s in kept if s.run_date == run_date]
    if not matching:
        dates = ", ".join(sorted({s.run_date.isoformat() for s in kept})) or "none"
        raise ReportError(
            f"no published night as of {run_date}: the kept snapshots are as of {dates} "
            f"(CJM_KEEP_SNAPSHOTS keeps the last {settings.keep_snapshots})"
        )
    newest = max(matching, key=lambda s: s.published_at)
    return Source(newest.path, newest.run_date, newest.build_id, newest.published_at, False)


def report_path(settings: Settings, run_date: date, persona: str | None = None) -> Path:
    suffix = f"_{persona}" if persona and persona != ALL else ""
    return settings.reports_dir / f"journey_map_{run_date.isoformat()}{suffix}.html"


def write_report(
    settings: Settings,
    run_date: date | None = None,
    persona: str | None = None,
    out: Path | None = None,
) -> Path:
    """Write the HTML journey map of a published night; returns its path."""
    from cjm_pipeline import report_html

    data = report_data(settings, run_date, persona)
    path = out or report_path(settings, date.fromisoformat(data["run_date"]), persona)
    path.parent.mkdir(parents=True, exist_ok=True)
    return report_html.write(data, path)


def report_data(
    settings: Settings, run_date: date | None = None, persona: str | None = None
) -> dict[str, Any]:
    """What the report of a published night shows (see ``collect``)."""
    return collect(
        report_source(settings, run_date),
        persona,
        settings.attribution_half_life_days,
        settings.journey_gap_days,
        settings.report_min_journeys,
        settings.alert_alpha,
    )


def collect(
    source: Source,
    persona: str | None = None,
    half_life_days: float | None = None,
    journey_gap_days: int = 30,
    min_journeys: int = 20,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Everything the report shows, read from the marts of ``source``. A rate over
    fewer than ``min_journeys`` journeys of known outcome is shown as too small to
    read, not as a rate; a change between two ranges of periods is called significant
    below ``alpha``."""
    with duckdb.connect(str(source.path), read_only=True) as con:
        reader = _Reader(con, source.run_date, journey_gap_days, min_journeys)
        personas = reader.personas()
        known = {p["persona"] for p in personas}
        if persona is not None and persona not in known:
            raise ReportError(
                f"no persona {persona!r} in this night's data; known: {', '.join(sorted(known))}"
            )
        stages = reader.stages()
        return {
            "title": "Customer journey map",
            "run_date": source.run_date.isoformat(),
            "build_id": source.build_id,
            "published_at": source.published_at.isoformat(),
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": f"{source.path.name} (read-only)",
            "initial_persona": persona or ALL,
            "period_grain": reader.period_grain,
            "return_window_days": reader.return_window_days,
            "min_journeys": reader.min_journeys,
            "comparison_alpha": alpha,
            "stages": stages,
            "personas": personas,
            "views": {p["persona"]: reader.view(p["persona"], stages) for p in personas},
            "sankey": {
                "stage": reader.sankey("stage"),
                "touchpoint": reader.sankey("touchpoint"),
                "max_step": SANKEY_STEPS,
            },
            "variants": {level: reader.variants(level) for level in ("stage", "touchpoint")},
            "attribution": {**reader.attribution(), "half_life_days": half_life_days},
            "ideal_path": reader.ideal_path(),
            "alerts": reader.alerts(),
            "marts": [m for m in MARTS if m.startswith(("agg_", "fct_journey_conformance"))]
            + ["fct_journeys", "dim_customers", "dim_touchpoints"],
        }


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the database holds the table (an older snapshot may lack a newer mart)."""
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_name = ?", [name]
        ).fetchall()[0][0]
    )


def alert_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The stages of agg_dropoff_alerts that are alerts, JSON-ready (dates as text);
    none when the database predates the mart."""
    if not has_table(con, "agg_dropoff_alerts"):
        return []
    cursor = con.execute(
        "select stage, cast(period_start as varchar) as period_start, "
        "cast(previous_period_start as varchar) as previous_period_start, "
        "drop_off_rate, previous_drop_off_rate, journeys_known, p_value "
        "from agg_dropoff_alerts where is_alert order by stage_order"
    )
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _scope(persona: str) -> str:
    """The persona_scope of the analysis marts for a persona of the report."""
    return "all" if persona == ALL else persona


class _Reader:
    """SQL over the marts of one database. ``persona = 'all'`` sums every persona."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        run_date: date,
        journey_gap_days: int,
        min_journeys: int = 20,
    ):
        self.con = con
        self.min_journeys = min_journeys
        self.run_date = run_date
        self.journey_gap_days = journey_gap_days
        row = con.execute("select any_value(period_grain) from agg_stage_funnel").fetchone()
        self.period_grain = row[0] or "week"
        self.names = dict(
            con.execute("select touchpoint_id, touchpoint_name from dim_touchpoints").fetchall()
        )
        self.post_purchase = {
            stage
            for (stage,) in con.execute(
                "select stage from dim_stages where funnel = 'post_purchase'"
            ).fetchall()
        }
        # The return window the build used (CJM_RETURN_WINDOW_DAYS), read from its journeys.
        row = con.execute(
            "select max(date_diff('day', experience_entered_at, return_window_ends_at)) "
            "from fct_journeys where return_window_ends_at is not null"
        ).fetchone()
        self.return_window_days = int(row[0]) if row[0] is not None else None

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql, params or [])
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def has_table(self, name: str) -> bool:
        return has_table(self.con, name)

    def has_column(self, table: str, column: str) -> bool:
        return bool(
            self.con.execute(
                "select count(*) from information_schema.columns "
                "where table_name = ? and column_name = ?",
                [table, column],
            ).fetchall()[0][0]
        )

    def label(self, node: str | None) -> str | None:
        return self.names.get(node, node) if node is not None else None

    def node_name(self, level: str, node: str) -> str:
        """What a reader calls an attribution node: the touchpoint's name, or the
        channel's."""
        if node == NO_TOUCH:
            return "No touch before the order"
        if level == "touchpoint":
            return self.label(node) or node
        return CHANNEL_NAMES.get(node) or node.replace("_", " ").capitalize()

    def stages(self) -> list[dict[str, Any]]:
        return self.rows(
            "select stage, stage_order, funnel, description from dim_stages "
            "where stage_order between 1 and 5 order by stage_order"
        )

    def personas(self) -> list[dict[str, Any]]:
        rules = self.rows("select persona, label, description from dim_personas")
        about = {r["persona"]: r for r in rules}
        counts = self.rows(
            "select persona, count(*) as customers from dim_customers "
            "where persona is not null group by persona order by customers desc, persona"
        )
        everyone = sum(c["customers"] for c in counts)
        personas = [
            {
                "persona": ALL,
                "label": "All customers",
                "customers": everyone,
                "description": "Every customer with a journey",
            }
        ]
        for c in counts:
            rule = about.get(c["persona"], {})
            personas.append(
                {
                    "persona": c["persona"],
                    "label": rule.get("label") or c["persona"],
                    "customers": c["customers"],
                    "description": rule.get("description") or "",
                }
            )
        return personas

    # One persona's journey map, funnel and drop-off over time.
    def view(self, persona: str, stages: list[dict[str, Any]]) -> dict[str, Any]:
        where, params = ("", []) if persona == ALL else ("where persona = ?", [persona])
        funnel = {
            r["stage"]: r
            for r in self.rows(
                "select stage, sum(journeys_entered) as entered, "
                "sum(journeys_advanced) as advanced, sum(journeys_dropped) as dropped, "
                "sum(journeys_in_progress) as in_progress, "
                "sum(journeys_completed) as completed, sum(journeys_converted) as converted "
                f"from agg_stage_funnel {where} group by stage",
                params,
            )
        }
        post_purchase = {st["stage"] for st in stages if st["funnel"] == "post_purchase"}
        unclassified = funnel.get("unclassified", {})
        touchpoints = self.touchpoints(where, params, post_purchase)
        emotion = self.emotion(where, params)
        actions = self.actions(where, params)
        drivers = self.drivers(persona)
        opportunities = self.opportunities(touchpoints, post_purchase, drivers)
        durations = self.durations(persona)
        stage_views = []
        for stage in stages:
            name = stage["stage"]
            counts = funnel.get(name, {})
            entered = int(counts.get("entered") or 0)
            advanced = int(counts.get("advanced") or 0)
            dropped = int(counts.get("dropped") or 0)
            at_stage = [t for t in touchpoints if t["stage"] == name]
            stage_views.append(
                {
                    "stage": name,
                    "labels": OUTCOME_LABELS.get(name, {}),
                    "entered": entered,
                    "advanced": advanced,
                    "dropped": dropped,
                    "in_progress": int(counts.get("in_progress") or 0),
                    "completed": int(counts.get("completed") or 0),
                    "drop_off_rate": None
                    if 0 < advanced + dropped < self.min_journeys
                    else _rate(dropped, advanced + dropped),
                    "too_small": 0 < advanced + dropped < self.min_journeys,
                    "advance_rate": _rate(advanced, entered),
                    "actions": actions.get(name, [])[:TOP_ACTIONS],
                    # Every touchpoint of the stage, busiest first: the map shows the
                    # first TOP_TOUCHPOINTS and the rest behind "all N touchpoints".
                    "touchpoints": at_stage,
                    "emotion": emotion.get(name, {}).get("stage")
                    or {
                        "average_sentiment": None,
                        "texts": 0,
                        "average_rating": None,
                        "ratings": 0,
                    },
                    "pain_points": [],
                    "time_to_next": durations.get(name),
                }
            )
        _pain_points(stage_views, touchpoints, emotion, post_purchase, self.return_window_days)
        voice = self.voice() if persona == ALL else {}
        paths = self.dropoff_paths(persona)
        recovery = self.checkout_recovery(persona)
        for view in stage_views:
            view["pain_points"] += [
                _driver_point(d, self.names, view["stage"] in post_purchase)
                for d in drivers.get(view["stage"], [])[:TOP_DRIVERS]
            ]
            top = paths.get(view["stage"])
            if top:
                lost = "lapsed" if view["stage"] in post_purchase else "dropped"
                view["pain_points"].append(
                    {
                        "kind": "last_steps",
                        "text": f"most common last steps of journeys that {lost}: "
                        + " → ".join(self.label(t) or t for t in top["last_steps"].split(" > "))
                        + f" ({int(top['journeys']):,} journeys)",
                        "value": float(top["share_of_dropped"]),
                    }
                )
            if view["stage"] == "purchase" and recovery:
                view["pain_points"].append(recovery)
            said = voice.get(view["stage"], {})
            view["quotes"] = said.get("quotes", [])
            _said_at_touchpoints(view["pain_points"], said.get("touchpoints", {}))
            if said.get("lost_quotes"):
                who = (
                    "buyers who lapsed here had said"
                    if view["stage"] in post_purchase
                    else "customers lost here had said"
                )
                view["pain_points"].append(
                    {
                        "kind": "lost_voice",
                        "text": f"{who}: " + " · ".join(_quoted(q) for q in said["lost_quotes"]),
                        "value": None,
                        "quotes": said["lost_quotes"],
                    }
                )
            if said.get("negative_terms"):
                terms = ", ".join(f"“{t}”" for t in said["negative_terms"])
                view["pain_points"].append(
                    {
                        "kind": "voice",
                        "text": f"words that set negative texts apart here: {terms}",
                        "value": None,
                    }
                )
        # The header counts every journey, and states whose they are: the funnel counts
        # known and anonymous journeys; unlinked voices and unclassified journeys are
        # counted here so nothing vanishes. An unattributed record (no identifier at all)
        # is a customer of its own in the marts but no person: it is counted apart.
        kpis = self.rows(
            "select count(distinct customer_id) filter (where customer_id not in "
            "(select customer_id from dim_customers where is_unattributed)) as customers, "
            "count(*) filter (where customer_id in "
            "(select customer_id from dim_customers where is_unattributed)) as unattributed, "
            "count(*) as journeys, "
            "count(*) filter (where status = 'converted') as converted, "
            "count(*) filter (where status = 'dropped' and population in ('known', 'anonymous'))"
            " as dropped, "
            "count(*) filter (where status = 'in_progress' "
            "and population in ('known', 'anonymous')) as in_progress, "
            "count(*) filter (where post_purchase_outcome = 'retained') as retained, "
            "count(*) filter (where post_purchase_outcome = 'lapsed') as lapsed, "
            "count(*) filter (where population = 'known') as known, "
            "count(*) filter (where population = 'anonymous') as anonymous, "
            "count(*) filter (where population = 'unlinked_voice') as unlinked_voice, "
            "count(*) filter (where population = 'unclassified') as unclassified "
            "from fct_journeys "
            + (
                ""
                if persona == ALL
                else "where customer_id in "
                "(select customer_id from dim_customers where persona = ?)"
            ),
            params,
        )[0]
        convert = durations.get("start")
        return {
            **{k: int(v or 0) for k, v in kpis.items()},
            "time_to_convert": convert,
            "unclassified_in_funnel": int(unclassified.get("entered") or 0),
            "stages": stage_views,
            "opportunities": opportunities,
            "dropoff_over_time": self.dropoff_over_time(where, params),
        }

    def drivers(self, persona: str) -> dict[str, list[dict[str, Any]]]:
        """Per stage, the significant factors that make a drop more likely, strongest
        first (agg_dropoff_drivers; an older snapshot without it has none)."""
        if not self.has_table("agg_dropoff_drivers"):
            return {}
        rows = self.rows(
            "select stage, factor, level, journeys_with, dropped_with, lift, q_value "
            "from agg_dropoff_drivers where persona_scope = ? and is_significant "
            "and direction = 'more_drop' and not list_contains(?, factor) "
            "order by stage_order, rank_in_stage",
            [_scope(persona), list(UNSHOWN_DRIVERS)],
        )
        by_stage: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_stage.setdefault(row["stage"], []).append(row)
        return by_stage

    def alerts(self) -> list[dict[str, Any]]:
        """Stages whose drop-off rose significantly between the two latest settled
        periods (agg_dropoff_alerts), in words."""
        return [
            {
                **r,
                "text": f"{r['stage']} drop-off rose from {_percent(r['previous_drop_off_rate'])}"
                f" to {_percent(r['drop_off_rate'])} (journeys starting in the "
                f"{self.period_grain} of {r['period_start']} against {r['previous_period_start']};"
                f" {int(r['journeys_known']):,} journeys, p = {float(r['p_value']):.3g})",
            }
            for r in alert_rows(self.con)
        ]

    def voice(self) -> dict[str, dict[str, Any]]:
        """Per stage, what customers said: the terms that set negative texts apart
        (agg_voice_themes), the most negative and most positive quote (agg_voice_quotes)
        over the stage as a whole, what the customers the stage lost had said, and per
        touchpoint its negative terms and most negative quote. Everyone's only: the
        marts are not split by persona."""
        said: dict[str, dict[str, Any]] = {}
        if self.has_table("agg_voice_themes"):
            for row in self.rows(
                "select stage, touchpoint_id, list(term order by theme_rank) as terms "
                "from agg_voice_themes where polarity = 'negative' and theme_rank <= ? "
                "group by stage, touchpoint_id",
                [TOP_TERMS],
            ):
                stage = said.setdefault(row["stage"], {})
                if row["touchpoint_id"] == "(all)":
                    stage["negative_terms"] = row["terms"]
                else:
                    place = stage.setdefault("touchpoints", {}).setdefault(row["touchpoint_id"], {})
                    place["negative_terms"] = row["terms"]
        if not self.has_table("agg_voice_quotes"):
            return said
        # A snapshot from before the 'lost' cut has every row as speakers 'all'.
        split = self.has_column("agg_voice_quotes", "speakers")
        everyone = "speakers = 'all' and " if split else ""
        for row in self.rows(
            "select stage, touchpoint_id, polarity, quote, rating, "
            "cast(said_on as varchar) as said_on from agg_voice_quotes "
            f"where {everyone}quote_rank = 1 order by stage, touchpoint_id, polarity"
        ):
            stage = said.setdefault(row.pop("stage"), {})
            place = row.pop("touchpoint_id")
            if place == "(all)":
                stage.setdefault("quotes", []).append(row)
            elif row["polarity"] == "negative":
                stage.setdefault("touchpoints", {}).setdefault(place, {})["quote"] = row
        if split:
            # What the lost had said: their most negative texts first, two at most.
            for row in self.rows(
                "select stage, polarity, quote, rating, cast(said_on as varchar) as said_on "
                "from agg_voice_quotes where speakers = 'lost' and quote_rank <= 2 "
                "order by stage, polarity = 'positive', quote_rank"
            ):
                lost = said.setdefault(row.pop("stage"), {}).setdefault("lost_quotes", [])
                if len(lost) < 2:
                    lost.append(row)
        return said

    def dropoff_paths(self, persona: str) -> dict[str, dict[str, Any]]:
        """Per stage, the most common last steps of the journeys that dropped there (a
        real path: not '(no steps)' nor '(other paths)')."""
        if not self.has_table("agg_dropoff_paths"):
            return {}
        rows = self.rows(
            "select stage, last_steps, journeys, share_of_dropped from agg_dropoff_paths "
            "where persona_scope = ? and path_rank <= 20 and last_steps != '(no steps)' "
            "order by stage, path_rank",
            [_scope(persona)],
        )
        top: dict[str, dict[str, Any]] = {}
        for row in rows:
            top.setdefault(row["stage"], row)
        return top

    def checkout_recovery(self, persona: str) -> dict[str, Any] | None:
        """What customers who left a checkout did next, as a pain point of purchase."""
        if not self.has_table("agg_checkout_recovery"):
            return None
        rows = self.rows(
            "select outcome, returned_through, time_to_order, abandoned_checkouts as n "
            "from agg_checkout_recovery where persona_scope = ?",
            [_scope(persona)],
        )
        total = sum(int(r["n"]) for r in rows)
        if not total:
            return None
        by_outcome: dict[str, int] = {}
        through: dict[str, int] = {}
        delay: dict[str, int] = {}
        for r in rows:
            n = int(r["n"])
            by_outcome[r["outcome"]] = by_outcome.get(r["outcome"], 0) + n
            if r["outcome"] == "ordered_later":
                through[r["returned_through"]] = through.get(r["returned_through"], 0) + n
                delay[r["time_to_order"]] = delay.get(r["time_to_order"], 0) + n
        later = by_outcome.get("ordered_later", 0)
        text = (
            f"{total:,} checkouts left without an order: {_percent(later / total)} ordered "
            f"later, {_percent(by_outcome.get('never', 0) / total)} never came back to order"
        )
        if through:
            best = max(through, key=lambda k: (through[k], k))
            when = max(delay, key=lambda k: (delay[k], k))
            text += f"; most came back through {self.label(best)}, most often {when} later"
        return {"kind": "recovery", "text": text, "value": later / total}

    def durations(self, persona: str) -> dict[str, dict[str, Any]]:
        """Per stage the step will start from (and 'start' for the time to convert): the
        journeys that made it, its histogram buckets and percentiles (agg_stage_durations;
        none from an older snapshot without it)."""
        if not self.has_table("agg_stage_durations"):
            return {}
        rows = self.rows(
            "select from_stage, to_stage, bucket, journeys_in_bucket, journeys, "
            "median_hours, p90_hours from agg_stage_durations where persona_scope = ? "
            "order by from_stage, bucket_order",
            [_scope(persona)],
        )
        steps: dict[str, dict[str, Any]] = {}
        for row in rows:
            step = steps.setdefault(
                row["from_stage"],
                {
                    "to_stage": row["to_stage"],
                    "journeys": int(row["journeys"]),
                    "median_hours": row["median_hours"],
                    "p90_hours": row["p90_hours"],
                    "buckets": [],
                },
            )
            step["buckets"].append(
                {"bucket": row["bucket"], "journeys": int(row["journeys_in_bucket"])}
            )
        return steps

    def touchpoints(
        self, where: str, params: list[Any], post_purchase: set[str]
    ) -> list[dict[str, Any]]:
        rows = self.rows(
            "select stage, touchpoint_id, any_value(touchpoint_name) as name, "
            "any_value(touchpoint_type) as type, any_value(channel) as channel, "
            "sum(journeys_touching) as journeys_touching, "
            "sum(journeys_dropped_after) as journeys_dropped_after, "
            "sum(post_purchase_dropped_after) as post_purchase_dropped_after "
            f"from agg_touchpoint_dropoff {_funnel_only(where)} group by stage, touchpoint_id "
            "order by journeys_touching desc, touchpoint_id",
            params,
        )
        for r in rows:
            r["journeys_touching"] = int(r["journeys_touching"])
            r["journeys_dropped_after"] = int(r["journeys_dropped_after"])
            r["post_purchase_dropped_after"] = int(r["post_purchase_dropped_after"])
            # Lost: the journeys that ended here without reaching the end of their
            # funnel: the mart's exit_rate before purchase, post_purchase_exit_rate after.
            lost = "post_purchase_dropped_after" if r["stage"] in post_purchase else None
            r["lost_journeys"] = r[lost or "journeys_dropped_after"]
            r["exit_rate"] = _rate(r["lost_journeys"], r["journeys_touching"])
            r["name"] = r["name"] or r["touchpoint_id"]
        return rows

    def actions(self, where: str, params: list[Any]) -> dict[str, list[dict[str, Any]]]:
        rows = self.rows(
            "select stage, event_type, any_value(event_description) as label, "
            "sum(events) as events, sum(journeys) as journeys "
            f"from agg_stage_actions {where} group by stage, event_type "
            "order by journeys desc, events desc, event_type",
            params,
        )
        by_stage: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            r["events"], r["journeys"] = int(r["events"]), int(r["journeys"])
            r["label"] = r["label"] or r["event_type"]
            by_stage.setdefault(r["stage"], []).append(r)
        return by_stage

    def emotion(self, where: str, params: list[Any]) -> dict[str, dict[str, Any]]:
        """Per stage: the stage's sentiment and rating, and per touchpoint the same."""
        rows = self.rows(
            "select stage, touchpoint_id, sum(texts) as texts, sum(sentiment_sum) as s, "
            "sum(ratings) as ratings, sum(rating_sum) as r "
            f"from agg_stage_sentiment {where} group by grouping sets "
            "((stage), (stage, touchpoint_id))",
            params,
        )
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            texts, ratings = int(r["texts"] or 0), int(r["ratings"] or 0)
            value = {
                "average_sentiment": _rate(r["s"], texts),
                "texts": texts,
                "average_rating": _rate(r["r"], ratings),
                "ratings": ratings,
            }
            entry = out.setdefault(r["stage"], {"touchpoints": {}})
            if r["touchpoint_id"] is None:
                entry["stage"] = value
            else:
                entry["touchpoints"][r["touchpoint_id"]] = value
        return out

    def opportunities(
        self,
        touchpoints: list[dict[str, Any]],
        post_purchase: set[str],
        drivers: dict[str, list[dict[str, Any]]],
    ) -> list[dict[str, Any]]:
        """The touchpoints most journeys ended after, with what the data says of each:
        its share of the lost journeys whose last touch was at the same stage, and how
        much more often journeys that touched it dropped when that is a significant
        driver (agg_dropoff_drivers)."""
        lost = [t for t in touchpoints if t["lost_journeys"] > 0]
        # A journey's last touch can sit at an earlier stage than the one it dropped at
        # (a discovery email as the last thing a considering customer did), so the
        # share is of the journeys lost after a touch of the stage, not of its drops.
        lost_after = {}
        for t in lost:
            lost_after[t["stage"]] = lost_after.get(t["stage"], 0) + t["lost_journeys"]
        lost.sort(key=lambda t: (-t["lost_journeys"], t["stage"], t["touchpoint_id"]))
        touched = {
            (stage, d["level"]): d
            for stage, rows in drivers.items()
            for d in rows
            if d["factor"] == "touchpoint"
        }
        return [
            {
                "rank": rank,
                "stage": t["stage"],
                "touchpoint_id": t["touchpoint_id"],
                "name": t["name"],
                "lost_journeys": t["lost_journeys"],
                "exit_rate": t["exit_rate"],
                "text": self._opportunity(
                    t,
                    t["stage"] in post_purchase,
                    lost_after[t["stage"]],
                    touched.get((t["stage"], t["touchpoint_id"])),
                ),
            }
            for rank, t in enumerate(lost[:TOP_OPPORTUNITIES], start=1)
        ]

    def _opportunity(
        self,
        t: dict[str, Any],
        after_order: bool,
        lost_at_stage: int,
        driver: dict[str, Any] | None,
    ) -> str:
        share = f"{_percent(t['exit_rate'])} of those touching it"
        of_stage = (
            f"; the last touch of {_percent(_rate(t['lost_journeys'], lost_at_stage))} of "
            + ("the buyers who lapsed after a " if after_order else "the journeys lost after a ")
            + f"{t['stage']} touch"
        )
        more = (
            f"; journeys that touched it dropped {float(driver['lift']):.1f}x as often as "
            "those that did not"
            if driver is not None
            else ""
        )
        if not after_order:
            return (
                f"{t['lost_journeys']:,} journeys ended after {t['name']} at {t['stage']}"
                f" ({share}{of_stage}){more}"
            )
        # After the order nobody is lost at a touchpoint: a buyer lapsed, and this was
        # the last thing they did before the return window passed.
        window = f"{self.return_window_days} days" if self.return_window_days else "the window"
        return (
            f"{t['lost_journeys']:,} buyers lapsed after {t['name']} ({share}{of_stage}): "
            f"no repeat order, recommendation or loyalty action within {window} of their "
            f"order{more}"
        )

    def dropoff_over_time(self, where: str, params: list[Any]) -> list[dict[str, Any]]:
        grain = self.period_grain
        decided_until = self.run_date - timedelta(days=self.journey_gap_days)
        rows = self.rows(
            "select period_start, stage, any_value(stage_order) as stage_order, "
            "sum(journeys_dropped) as dropped, sum(journeys_advanced) as advanced, "
            "sum(journeys_in_progress) as in_progress "
            f"from agg_stage_funnel {where} group by period_start, stage "
            "having any_value(stage_order) between 1 and 4 order by period_start, stage_order",
            params,
        )
        window = self.return_window_days
        lapses_from = self.run_date - timedelta(days=window) if window is not None else None
        out = []
        for r in rows:
            known = int(r["dropped"] + r["advanced"])
            too_small = 0 < known < self.min_journeys
            rate = None if too_small else _rate(r["dropped"], known)
            undecided = False
            # A journey can only be counted as dropped journey_gap_days after its last
            # activity: for periods that end later than that before the run date, or
            # where most journeys are still in progress, the rate is a floor
            # (right-censored), not a trend.
            until = decided_until
            if r["stage"] in self.post_purchase and lapses_from is not None:
                # After the order a journey lapses only when its return window has
                # passed: in a period that started less than a window before the run
                # date none can have lapsed yet, so the rate is unknown, not 0%.
                until = lapses_from
                if r["period_start"] > lapses_from:
                    rate, undecided = None, True
            out.append(
                {
                    "period_start": r["period_start"].isoformat(),
                    "stage": r["stage"],
                    "dropped": int(r["dropped"]),
                    "advanced": int(r["advanced"]),
                    "in_progress": int(r["in_progress"]),
                    "drop_off_rate": rate,
                    "too_small": too_small,
                    # No journey of the period can have dropped yet: a range summed over
                    # periods leaves it out rather than count its zero drops.
                    "undecided": undecided,
                    "provisional": r["period_start"] + PERIODS[grain] > until
                    or r["in_progress"] > r["dropped"] + r["advanced"],
                }
            )
        return out

    def sankey(self, level: str) -> dict[str, Any]:
        """The Sankey of ``agg_transitions`` for the first steps. Per step, the touchpoints
        beyond the busiest SANKEY_NODES_PER_STEP are drawn as one node, their edges
        summed (a merged edge has no median gap: medians do not add up)."""
        edges = self.rows(
            "select from_step, from_node, from_node_kind, to_node, to_node_kind, "
            "transitions, median_gap_hours from agg_transitions "
            "where level = ? and from_step < ? order by from_step, transitions desc",
            [level, SANKEY_STEPS],
        )
        kept = _busiest_nodes(edges)

        def folded(step: int, node: str, kind: str) -> tuple[int, str, str]:
            if kind == "touchpoint" and (step, node) not in kept:
                return step, OTHER_TOUCHPOINTS, kind
            return step, node, kind

        nodes: dict[str, dict[str, Any]] = {}
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for e in edges:
            step = e["from_step"]
            source = self._node(nodes, *folded(step, e["from_node"], e["from_node_kind"]))
            target = self._node(nodes, *folded(step + 1, e["to_node"], e["to_node_kind"]))
            link = merged.setdefault(
                (source, target),
                {"source": source, "target": target, "value": 0, "edges": 0},
            )
            link["value"] += int(e["transitions"])
            link["edges"] += 1
            link["median_gap_hours"] = e["median_gap_hours"] if link["edges"] == 1 else None
        links = [{k: v for k, v in link.items() if k != "edges"} for link in merged.values()]
        return {"nodes": list(nodes.values()), "links": links}

    def _node(self, nodes: dict[str, dict[str, Any]], step: int, node: str, kind: str) -> str:
        key = f"{step}:{node}"
        if key not in nodes:
            label = self.label(node) if kind == "touchpoint" else node
            nodes[key] = {
                "id": key,
                "label": "Other touchpoints" if node == OTHER_TOUCHPOINTS else label,
                "step": step,
                "kind": kind,
                "end": END_NODES.get(node),
            }
        return key

    def variants(self, level: str) -> list[dict[str, Any]]:
        rows = self.rows(
            "select variant_rank as rank, variant, journeys, share, conversion_rate "
            "from agg_journey_variants where level = ? and variant_rank <= ? "
            "order by variant_rank",
            [level, TOP_VARIANTS],
        )
        for r in rows:
            r["journeys"] = int(r["journeys"])
            if level == "touchpoint":
                r["variant"] = " > ".join(self.label(n) or n for n in r["variant"].split(" > "))
        return rows

    def attribution(self) -> dict[str, Any]:
        rows = self.rows(
            "select attribution_model, level, node, conversions, revenue, removal_effect "
            "from agg_attribution order by level, node"
        )
        levels: dict[str, dict[str, dict[str, Any]]] = {"channel": {}, "touchpoint": {}}
        for r in rows:
            entry = levels[r["level"]].setdefault(
                r["node"],
                {
                    "node": r["node"],
                    "label": self.node_name(r["level"], r["node"]),
                    "credits": dict.fromkeys(MODELS, 0.0),
                    "revenue": dict.fromkeys(MODELS, 0.0),
                    "removal_effect": None,
                },
            )
            entry["credits"][r["attribution_model"]] = float(r["conversions"])
            entry["revenue"][r["attribution_model"]] = float(r["revenue"] or 0.0)
            if r["attribution_model"] == "markov":
                entry["removal_effect"] = r["removal_effect"]
        conversions, revenue = self.con.execute(
            "select count(*), coalesce(sum(revenue), 0) from fct_journeys "
            "where status = 'converted'"
        ).fetchone()
        ordered = {
            level: sorted(nodes.values(), key=lambda n: (-n["credits"]["markov"], n["node"]))
            for level, nodes in levels.items()
        }
        return {
            "models": list(MODELS),
            "conversions": int(conversions),
            "revenue": float(revenue),
            **ordered,
        }

    def ideal_path(self) -> dict[str, Any]:
        steps = self.rows(
            "select step, stage, touchpoint_id, label from dim_ideal_path order by step"
        )
        journeys = self.con.execute("select count(*) from fct_journey_conformance").fetchone()[0]
        reached = dict(
            self.con.execute(
                "select ideal.step, count(conformance.journey_id) from dim_ideal_path as ideal "
                "left join fct_journey_conformance as conformance "
                "on conformance.steps_followed >= ideal.step group by ideal.step"
            ).fetchall()
        )
        for s in steps:
            s["reached"] = int(reached.get(s["step"], 0))
            s["reached_share"] = _rate(s["reached"], journeys)
        summary = dict.fromkeys(("followed", "on_path", "deviated", "stopped"), 0)
        for conformance, n in self.con.execute(
            "select conformance, count(*) from fct_journey_conformance group by conformance"
        ).fetchall():
            summary[conformance] = int(n)
        deviations = self.rows(
            "select deviation_step as step, any_value(expected_label) as expected, "
            "deviation_touchpoint_id, conformance as kind, sum(journeys) as journeys, "
            "sum(share_of_journeys) as share, sum(journeys_converted) as converted "
            "from agg_path_conformance where conformance in ('deviated', 'stopped') "
            "group by deviation_step, deviation_touchpoint_id, conformance "
            "order by journeys desc, step, kind limit ?",
            [TOP_DEVIATIONS],
        )
        for d in deviations:
            d["actual"] = self.label(d.pop("deviation_touchpoint_id")) or "(nothing: journey ended)"
            d["journeys"], d["converted"] = int(d["journeys"]), int(d["converted"])
        return {
            "steps": steps,
            "summary": {**summary, "journeys": int(journeys)},
            "deviations": deviations,
        }


def _busiest_nodes(edges: list[dict[str, Any]]) -> set[tuple[int, str]]:
    """The (step, node) pairs drawn on their own: per step, the SANKEY_NODES_PER_STEP with
    the most journeys through them (the larger of what enters and what leaves)."""
    through: dict[tuple[int, str], list[int]] = {}
    for e in edges:
        through.setdefault((e["from_step"], e["from_node"]), [0, 0])[1] += e["transitions"]
        through.setdefault((e["from_step"] + 1, e["to_node"]), [0, 0])[0] += e["transitions"]
    by_step: dict[int, list[tuple[int, str]]] = {}
    for (step, node), (into, out) in through.items():
        by_step.setdefault(step, []).append((max(into, out), node))
    kept = set()
    for step, flows in by_step.items():
        flows.sort(key=lambda flow: (-flow[0], flow[1]))
        kept |= {(step, node) for _, node in flows[:SANKEY_NODES_PER_STEP]}
    return kept


def _pain_points(
    stages: list[dict[str, Any]],
    touchpoints: list[dict[str, Any]],
    emotion: dict[str, dict[str, Any]],
    post_purchase: set[str] = frozenset(),
    return_window_days: int | None = None,
) -> None:
    """Per stage, up to three pain points: the stage's drop-off when it is among the
    two largest, the touchpoint most journeys ended after, and the touchpoint with the
    worst rating or the most negative text."""
    by_drops = sorted(
        (s for s in stages if s["dropped"] > 0), key=lambda s: s["dropped"], reverse=True
    )
    worst = {s["stage"] for s in by_drops[:2]}
    names = {t["touchpoint_id"]: t["name"] for t in touchpoints}
    for s in stages:
        points = s["pain_points"]
        after_order = s["stage"] in post_purchase
        if s["stage"] in worst:
            rate = _percent(s["drop_off_rate"])
            window = f"{return_window_days} days" if return_window_days else "the return window"
            points.append(
                {
                    "kind": "drop_off",
                    "text": f"{s['dropped']:,} buyers lapsed: no loyalty signal within "
                    f"{window} of their order ({rate} of those whose window has passed)"
                    if after_order
                    else f"{s['dropped']:,} journeys dropped here "
                    f"({rate} of those with a known outcome)",
                    "value": s["drop_off_rate"],
                }
            )
        exits = [t for t in touchpoints if t["stage"] == s["stage"] and t["lost_journeys"]]
        if exits:
            top = max(exits, key=lambda t: (t["lost_journeys"], t["touchpoint_id"]))
            what = "buyers lapsed after" if after_order else "journeys ended after"
            points.append(
                {
                    "kind": "exit",
                    "text": f"{top['lost_journeys']:,} {what} "
                    f"{top['name']} (exit rate {_percent(top['exit_rate'])})",
                    "value": top["exit_rate"],
                    "touchpoint_id": top["touchpoint_id"],
                }
            )
        felt = emotion.get(s["stage"], {}).get("touchpoints", {})
        rated = [(v["average_rating"], k) for k, v in felt.items() if v["ratings"] >= 5]
        negative = [(v["average_sentiment"], k) for k, v in felt.items() if v["texts"] >= 5]
        if rated and min(rated)[0] < 3.5:
            value, key = min(rated)
            points.append(
                {
                    "kind": "low_rating",
                    "text": f"{names.get(key, key)} rated {value:.1f} of 5",
                    "value": value,
                    "touchpoint_id": key,
                }
            )
        elif negative and min(negative)[0] < 0:
            value, key = min(negative)
            points.append(
                {
                    "kind": "negative_sentiment",
                    "text": f"negative words on {names.get(key, key)} (sentiment {value:+.2f})",
                    "value": value,
                    "touchpoint_id": key,
                }
            )


def _quoted(quote: dict[str, Any]) -> str:
    """A quote as the map prints it: “text” (★2, 2026-10-03)."""
    about = [f"★{int(quote['rating'])}" if quote.get("rating") is not None else None]
    about.append(quote.get("said_on"))
    shown = ", ".join(a for a in about if a)
    return f"“{quote['quote']}”" + (f" ({shown})" if shown else "")


def _said_at_touchpoints(points: list[dict[str, Any]], said: dict[str, dict[str, Any]]) -> None:
    """A pain point on a touchpoint comes with what customers said there: the words that
    set its negative texts apart, and its most negative quote."""
    for point in points:
        place = said.get(point.get("touchpoint_id") or "")
        if not place:
            continue
        parts = []
        if place.get("negative_terms"):
            parts.append("words: " + ", ".join(f"“{t}”" for t in place["negative_terms"]))
        if place.get("quote"):
            parts.append(f"worst: {_quoted(place['quote'])}")
            point["quote"] = place["quote"]
        if parts:
            point["text"] += "; said there, " + "; ".join(parts)


# How a driver reads: the journeys that had the factor, in words.
DRIVER_WORDS = {
    "touchpoint": "journeys that touched {level} at this stage",
    "first_touch_channel": "journeys that came in through {level}",
    "persona": "journeys of {level} customers",
    "campaign": "journeys from the {level} campaign",
    "platform": "journeys first seen on {level}",
    "sessions": "journeys with {level} session(s) so far",
    "time_at_stage": "journeys that spent {level} at this stage",
    "low_rating": "journeys whose customer gave a rating of 1 or 2",
    "reviews_read": "journeys that read reviews on the site",
    "late_delivery": "journeys with an order delivered after its estimated date",
    "negative_voice": "journeys whose customer wrote something negative",
}
EMAIL_PROBLEMS = {
    "bounce": "journeys whose customer's email bounced",
    "unsubscribe": "journeys whose customer unsubscribed",
    "spam_report": "journeys whose customer reported an email as spam",
}


def _driver_point(d: dict[str, Any], names: dict[str, str], after_order: bool) -> dict[str, Any]:
    """A significant driver of a drop as a pain point, in words: "journeys that touched
    Cart at this stage dropped 2.4x as often as the others (312 journeys,
    adjusted p < 0.001)"."""
    level = str(d["level"])
    if d["factor"] == "email_problem":
        who = EMAIL_PROBLEMS.get(level, f"journeys with an email {level}")
    elif d["factor"] == "campaign" and level == "none":
        who = "journeys with no campaign"
    else:
        shown = names.get(level, level) if d["factor"] == "touchpoint" else level
        who = DRIVER_WORDS.get(d["factor"], "journeys with {level}").format(
            level=shown.replace("_", " ")
        )
    verb = "lapsed" if after_order else "dropped"
    q = float(d["q_value"])
    p_text = "adjusted p < 0.001" if q < 0.001 else f"adjusted p = {q:.3f}"
    return {
        "kind": "driver",
        "text": f"{who} {verb} {float(d['lift']):.1f}x as often as the others "
        f"({int(d['journeys_with']):,} journeys, {p_text})",
        "value": float(d["lift"]),
        "factor": d["factor"],
        "level": level,
    }


def _hours(value: Any) -> str:
    if value is None:
        return "-"
    hours = float(value)
    if hours < 1:
        return f"{hours * 60:.0f} min"
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _convert_line(step: dict[str, Any] | None) -> str:
    if not step or not step["journeys"]:
        return "time to convert: no journey converted"
    return (
        f"time to convert: median {_hours(step['median_hours'])}, 90% within "
        f"{_hours(step['p90_hours'])} ({step['journeys']:,} journeys that ordered)"
    )


def _rate(numerator: Any, denominator: Any) -> float | None:
    if not denominator:
        return None
    return float(numerator or 0) / float(denominator)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def summary_text(data: dict[str, Any], persona: str | None = None) -> str:
    """A short terminal summary of the same data as the report."""
    key = persona or data["initial_persona"]
    view = data["views"][key]
    label = next(p["label"] for p in data["personas"] if p["persona"] == key)
    lines = [
        f"journey map as of {data['run_date']} (build {data['build_id']}, "
        f"published {data['published_at'][:16].replace('T', ' ')} UTC) - {label}",
        f"customers {view['customers']:,}  journeys {view['journeys']:,}  "
        f"converted {view['converted']:,}  dropped {view['dropped']:,}  "
        f"in progress {view['in_progress']:,}",
        _convert_line(view.get("time_to_convert")),
        "",
        f"{'stage':<14}{'entered':>9}{'advanced':>10}{'dropped':>9}{'drop-off':>10}"
        f"{'sentiment':>11}",
    ]
    for s in view["stages"]:
        sentiment = s["emotion"]["average_sentiment"]
        lines.append(
            f"{s['stage']:<14}{s['entered']:>9,}{s['advanced']:>10,}{s['dropped']:>9,}"
            f"{_percent(s['drop_off_rate']):>10}"
            f"{'-' if sentiment is None else f'{sentiment:+.2f}':>11}"
        )
    alerts = data.get("alerts") or []
    if alerts:
        lines += ["", "alerts:"] + [f"  {a['text']}" for a in alerts]
    lines += ["", "where journeys are lost:"]
    lines += [f"  {o['rank']}. {o['text']}" for o in view["opportunities"][:3]] or ["  none"]
    drivers = [
        (s["stage"], p["text"])
        for s in view["stages"]
        for p in s["pain_points"]
        if p["kind"] == "driver"
    ]
    lines += ["", "why (the strongest significant driver of each stage's drop):"]
    seen: set[str] = set()
    for stage, text in drivers:
        if stage not in seen:
            seen.add(stage)
            lines.append(f"  {stage}: {text}")
    if not seen:
        lines.append("  none significant")
    attribution = data["attribution"]["channel"]
    if attribution:
        lines.append("")
        lines.append("conversions credited (markov / last touch):")
        for node in attribution[:5]:
            credits = node["credits"]
            lines.append(
                f"  {node['label']:<26}{credits['markov']:>9.1f}{credits['last_touch']:>9.1f}"
            )
    ideal = data["ideal_path"]["summary"]
    if ideal["journeys"]:
        lines += [
            "",
            f"ideal path: {ideal['followed']:,} of {ideal['journeys']:,} journeys followed it "
            f"({_percent(_rate(ideal['followed'], ideal['journeys']))}), "
            f"{ideal['deviated']:,} deviated, {ideal['stopped']:,} stopped, "
            f"{ideal['on_path']:,} on the path so far",
        ]
    return "\n".join(lines)
