"use strict";
/* Customer journey map: draws the report from the JSON embedded in #cjm-data.

   Every number was computed by the pipeline (report.py reading the marts). This script only
   displays, sorts and picks them; its own arithmetic is formatting (percentages, separators),
   chart geometry, and the sums and two-proportion test of a range of periods the reader
   picks. Text from the data is always set with textContent, never parsed as
   HTML, so no field can inject markup. Missing or empty parts show "no data" instead of
   throwing, because one thin mart must not blank the whole report. */
(() => {
  // The SVG namespace is read from an <svg> the HTML parser created, so the file holds no
  // URL at all (the report must be checkable for "no external address" by a plain grep).
  const SVG_NS = document.getElementById("sankey").namespaceURI;

  // ---------------------------------------------------------------- formatting

  // A fixed locale so the report reads the same whatever machine opens it.
  const LOCALE = "en-US";
  const DASH = "—";
  const intFormat = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
  const oneFormat = new Intl.NumberFormat(LOCALE, {
    minimumFractionDigits: 1,
    maximumFractionDigits: 1,
  });
  const pctFormat = new Intl.NumberFormat(LOCALE, {
    style: "percent",
    minimumFractionDigits: 1,
    maximumFractionDigits: 1,
  });

  /** A finite number, or null for null, missing, "" and anything non-numeric. */
  function num(value) {
    if (value === null || value === undefined || value === "" || typeof value === "boolean") {
      return null;
    }
    const n = typeof value === "number" ? value : Number(value);
    return Number.isFinite(n) ? n : null;
  }

  const fmtInt = (v) => (num(v) === null ? DASH : intFormat.format(num(v)));
  const fmtOne = (v) => (num(v) === null ? DASH : oneFormat.format(num(v)));
  const compactFormat = new Intl.NumberFormat(LOCALE, {
    notation: "compact",
    maximumFractionDigits: 1,
  });
  /** Axis ticks that stay short at any size: "250K", "1.2M". */
  const fmtCompact = (v) => (num(v) === null ? DASH : compactFormat.format(num(v)));
  const fmtPct = (v) => (num(v) === null ? DASH : pctFormat.format(num(v)));
  const fmtHours = (v) => (num(v) === null ? "n/a" : `${oneFormat.format(num(v))} h`);

  /** Sentiment with an explicit sign: "+0.31", "−0.12", "0.00". */
  function fmtSigned(v) {
    const n = num(v);
    if (n === null) return DASH;
    const sign = n > 0.004 ? "+" : n < -0.004 ? "\u2212" : "";
    return sign + Math.abs(n).toFixed(2);
  }

  /** ISO timestamp as "2026-10-30 03:12 UTC"; anything unparseable is shown as given. */
  function fmtDateTime(value) {
    if (value === null || value === undefined || value === "") return DASH;
    const date = new Date(String(value));
    if (Number.isNaN(date.getTime())) return String(value);
    return `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
  }

  /** "2026-08-03" as "Aug 3" for axis ticks. */
  function fmtShortDate(value) {
    const date = new Date(`${String(value).slice(0, 10)}T00:00:00Z`);
    if (Number.isNaN(date.getTime())) return String(value);
    return date.toLocaleDateString(LOCALE, { month: "short", day: "numeric", timeZone: "UTC" });
  }

  const list = (v) => (Array.isArray(v) ? v.filter((x) => x !== null && x !== undefined) : []);
  const obj = (v) => (v && typeof v === "object" && !Array.isArray(v) ? v : {});
  const str = (v, fallback = "") => (v === null || v === undefined ? fallback : String(v));
  const has = (o, key) => Object.prototype.hasOwnProperty.call(o, key);
  const humanise = (id) => {
    const text = str(id).replace(/_/g, " ").trim();
    return text ? text.charAt(0).toUpperCase() + text.slice(1) : DASH;
  };
  /** Text broken at spaces into lines of at most maxChars (a longer word is cut), the last
      of maxLines lines ending in "…" when words remain. */
  function wrapWords(text, maxChars, maxLines) {
    const lines = [];
    let line = "";
    for (const word of str(text).split(/\s+/).filter(Boolean)) {
      const next = line ? `${line} ${word}` : word;
      if (next.length <= maxChars || !line) line = next;
      else {
        lines.push(line);
        line = word;
      }
    }
    if (line) lines.push(line);
    const kept = lines.slice(0, maxLines).map((l) => truncate(l, maxChars));
    if (lines.length > maxLines) kept[maxLines - 1] = `${kept[maxLines - 1].slice(0, maxChars - 1)}…`;
    return kept;
  }
  const truncate = (text, max) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

  // ---------------------------------------------------------------- DOM helpers

  function setAttrs(node, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "style") Object.assign(node.style, value);
      else if (key === "vars") {
        for (const [name, v] of Object.entries(value)) node.style.setProperty(name, String(v));
      } else node.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function appendAll(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** An HTML element: h("p", {class: "x"}, "text", child, [more]). */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    return appendAll(node, children);
  }

  /** An SVG element, same calling convention as h(). */
  function s(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    return appendAll(node, children);
  }

  const byId = (id) => document.getElementById(id);
  const clear = (node) => {
    node.replaceChildren();
    return node;
  };
  const noData = (what) => h("p", { class: "no-data" }, what ? `No data for ${what}.` : "No data.");

  function readData() {
    const node = document.getElementById("cjm-data");
    try {
      return obj(JSON.parse(node ? node.textContent : "{}"));
    } catch (err) {
      console.error("cjm: the embedded report data is not valid JSON", err);
      return {};
    }
  }

  // ---------------------------------------------------------------- shared lookups

  // Read after the helpers above exist (const bindings are not hoisted).
  const DATA = readData();

  const STAGES = list(DATA.stages)
    .slice()
    .sort((a, b) => (num(a.stage_order) ?? 0) - (num(b.stage_order) ?? 0));
  const STAGE_POS = new Map(STAGES.map((stage, i) => [str(stage.stage), i]));
  const stageLabel = (id) => {
    const stage = STAGES[STAGE_POS.get(str(id))];
    return stage && stage.label ? str(stage.label) : humanise(id);
  };

  // Okabe-Ito hues in stage order; the end-of-journey colours below are kept apart from them.
  const STAGE_COLOURS = ["#0072b2", "#e69f00", "#cc79a7", "#56b4e9", "#f0e442", "#8c6d31"];
  const stageColour = (id) =>
    STAGE_POS.has(str(id))
      ? STAGE_COLOURS[STAGE_POS.get(str(id)) % STAGE_COLOURS.length]
      : "#6a6f76";
  const END_COLOURS = { dropped: "#d55e00", converted: "#009e73", in_progress: "#9aa0a6" };
  const END_LABELS = { dropped: "Dropped off", converted: "Converted", in_progress: "In progress" };
  const START_COLOUR = "#4a4f57";
  // Line markers differ in shape as well as colour, for print in black and white.
  const MARKERS = ["circle", "square", "triangle", "diamond", "circle", "square"];

  const VIEWS = obj(DATA.views);
  const PERSONAS = list(DATA.personas).filter((p) => p.persona !== undefined);

  const state = {
    persona: initialPersona(),
    sankeyLevel: "stage",
    attributionLevel: "channel",
    attributionMeasure: "conversions",
    // The compared range of journey-start periods (period_start of its first and last).
    rangeFrom: null,
    rangeTo: null,
  };

  function initialPersona() {
    const known = new Set([...PERSONAS.map((p) => str(p.persona)), ...Object.keys(VIEWS)]);
    const wanted = str(DATA.initial_persona, "all");
    if (known.has(wanted)) return wanted;
    if (known.has("all")) return "all";
    return known.size ? [...known][0] : wanted;
  }

  const currentView = () => (has(VIEWS, state.persona) ? obj(VIEWS[state.persona]) : null);
  const personaLabel = (id) => {
    const persona = PERSONAS.find((p) => str(p.persona) === id);
    return persona && persona.label ? str(persona.label) : humanise(id);
  };

  /** The view's stage rows keyed by stage id. */
  const stageRows = (view) =>
    new Map(list(view && view.stages).map((row) => [str(row.stage), obj(row)]));

  // Touchpoint id and name to "direct"/"indirect", gathered from every view, so the Sankey
  // can colour touchpoint nodes the same way the journey map marks its chips.
  const TOUCHPOINT_TYPE = new Map();
  for (const view of Object.values(VIEWS)) {
    for (const row of list(obj(view).stages)) {
      for (const tp of list(obj(row).touchpoints)) {
        TOUCHPOINT_TYPE.set(str(tp.touchpoint_id), str(tp.type));
        TOUCHPOINT_TYPE.set(str(tp.name), str(tp.type));
      }
    }
  }

  // ---------------------------------------------------------------- header and KPIs

  function renderHeader() {
    const meta = byId("run-meta");
    clear(meta);
    const parts = [
      ["Run date", str(DATA.run_date, DASH)],
      ["Build", str(DATA.build_id, DASH)],
      ["Published", fmtDateTime(DATA.published_at)],
    ];
    for (const [label, value] of parts) meta.append(h("span", {}, `${label} ${value}`));
  }

  /** Stages whose drop-off rose significantly between the two latest settled periods
      (agg_dropoff_alerts, for all customers); nothing is shown when none did. */
  function renderAlerts() {
    const node = clear(byId("alerts"));
    for (const alert of list(DATA.alerts)) {
      node.append(
        h(
          "li",
          { "data-stage": str(alert.stage) },
          h("strong", {}, "Alert: "),
          `${stageLabel(alert.stage)} ${str(alert.text).replace(/^\S+ /, "")}`,
        ),
      );
    }
    node.hidden = !node.children.length;
  }

  function renderPersonaSelect() {
    const select = clear(byId("persona-select"));
    const seen = new Set();
    for (const persona of PERSONAS) {
      const id = str(persona.persona);
      if (seen.has(id)) continue;
      seen.add(id);
      const count = num(persona.customers);
      const label = str(persona.label, humanise(id));
      select.append(
        h("option", { value: id }, count === null ? label : `${label} (${fmtInt(count)})`),
      );
    }
    // Views without a persona row still get an option, so no computed view is unreachable.
    for (const id of [...Object.keys(VIEWS), state.persona]) {
      if (seen.has(id)) continue;
      seen.add(id);
      select.append(h("option", { value: id }, humanise(id)));
    }
    select.value = state.persona;
    select.addEventListener("change", () => {
      state.persona = select.value;
      renderPersona();
    });
  }

  function renderPersonaDescription() {
    const persona = PERSONAS.find((p) => str(p.persona) === state.persona);
    byId("persona-description").textContent = persona ? str(persona.description) : "";
  }

  // Every journey is counted in the header, with whose it is: the funnel counts the
  // known and anonymous journeys; unlinked voices (reviews, mentions and comments
  // only; among them records of no one at all, the unattributed) and journeys of no
  // stage are counted beside it, never lost. Customers are people: unattributed
  // records are not among them.
  const KPIS = [
    ["customers", "Customers"],
    ["journeys", "Journeys"],
    ["converted", "Converted"],
    ["dropped", "Dropped"],
    ["in_progress", "In progress"],
    ["retained", "Retained after an order"],
    ["lapsed", "Lapsed after an order"],
    ["known", "Known customers' journeys"],
    ["anonymous", "Anonymous journeys"],
    ["unlinked_voice", "Unlinked voices (not in the funnel)"],
    ["unattributed", "Of which unattributed (no one's)"],
    ["unclassified", "Unclassified (no stage)"],
  ];

  // The stage's own name for an outcome (at purchase, "Ordered"; after it, "Retained").
  function outcomeLabel(row, key, fallback) {
    return (row && row.labels && str(row.labels[key])) || fallback;
  }

  function renderKpis(view) {
    const strip = clear(byId("kpi-strip"));
    for (const [key, label] of KPIS) {
      strip.append(
        h(
          "div",
          { class: `kpi kpi-${key.replace("_", "-")}` },
          h("dt", {}, label),
          h("dd", { "data-kpi": key }, view ? fmtInt(view[key]) : DASH),
        ),
      );
    }
    if (!view) strip.append(noData(personaLabel(state.persona)));
  }

  // ---------------------------------------------------------------- journey map

  // Lanes are the map's rows; their order is the row order of the grid.
  const LANES = [
    { id: "header", label: "Stage" },
    { id: "entering", label: "Customers entering", hint: "journeys reaching the stage" },
    { id: "time", label: "Time to next stage", hint: "journeys that advanced, by time taken" },
    { id: "actions", label: "What customers do", hint: "top actions, by journeys" },
    { id: "touchpoints", label: "Touchpoints", hint: "journeys · exit rate" },
    { id: "feel", label: "How they feel", hint: "average sentiment (−1 to +1) and rating" },
    { id: "pain", label: "Pain points" },
    { id: "opportunities", label: "Opportunities", hint: "ranked by journeys lost or lapsed" },
  ];
  const laneRow = (id) => LANES.findIndex((lane) => lane.id === id) + 1;

  function renderJourneyMap(view) {
    const grid = clear(byId("map-grid"));
    if (!STAGES.length) {
      grid.append(noData("stages"));
      return;
    }
    grid.style.setProperty("--stage-count", String(STAGES.length));

    for (const lane of LANES) {
      const hint =
        lane.id === "touchpoints" ? touchpointLegend() : lane.hint && h("small", {}, lane.hint);
      grid.append(
        h(
          "div",
          { class: `lane-label lane-${lane.id}`, style: { gridRow: String(laneRow(lane.id)) } },
          lane.id === "header" ? "" : lane.label,
          lane.id === "header" ? null : hint,
        ),
      );
    }

    const rows = stageRows(view);
    const opportunities = list(view && view.opportunities);
    STAGES.forEach((stage, i) => {
      const id = str(stage.stage);
      const row = rows.get(id) || null;
      grid.append(
        h(
          "div",
          {
            class: i % 2 ? "stage-column" : "stage-column alt",
            "data-stage": id,
            style: { gridColumn: String(i + 2) },
          },
          headerCell(stage, i),
          enteringCell(id, row),
          timeCell(row),
          actionsCell(row),
          touchpointsCell(row),
          feelCell(row),
          painCell(row),
          opportunitiesCell(id, opportunities, view),
        ),
      );
    });
    grid.append(emotionCurve(rows));
  }

  const cell = (lane, ...children) => h("div", { class: `cell cell-${lane}` }, ...children);

  function touchpointLegend() {
    return h(
      "small",
      {},
      h(
        "span",
        { class: "legend-item" },
        h("span", { class: "legend-chip chip-direct" }),
        "direct",
      ),
      " ",
      h(
        "span",
        { class: "legend-item" },
        h("span", { class: "legend-chip chip-indirect" }),
        "indirect",
      ),
      h("br", {}),
      "journeys touching · exit rate",
    );
  }

  function headerCell(stage, i) {
    const id = str(stage.stage);
    return h(
      "div",
      { class: "cell cell-header", vars: { "--stage-colour": stageColour(id) } },
      h("div", { class: "stage-number" }, `Stage ${str(stage.stage_order, String(i + 1))}`),
      h("div", { class: "stage-name" }, stageLabel(id)),
      stage.funnel ? h("span", { class: "stage-funnel" }, humanise(stage.funnel)) : null,
      stage.description ? h("p", { class: "stage-description" }, str(stage.description)) : null,
    );
  }

  function metricRow(label, metric, stage, value, extraClass) {
    return h(
      "div",
      { class: extraClass || null, style: { display: "contents" } },
      h("dt", {}, label),
      h("dd", { "data-metric": metric, "data-stage": stage }, value),
    );
  }

  function enteringCell(stageId, row) {
    if (!row) return cell("entering", noData());
    const rate = num(row.drop_off_rate);
    return cell(
      "entering",
      h(
        "div",
        { class: "metric-main" },
        h(
          "span",
          { class: "metric-value big", "data-metric": "entered", "data-stage": stageId },
          fmtInt(row.entered),
        ),
        h("span", { class: "metric-unit" }, "entered"),
      ),
      h(
        "dl",
        { class: "metric-list" },
        metricRow(outcomeLabel(row, "advanced", "Advanced"), "advanced", stageId, fmtInt(row.advanced)),
        metricRow(
          outcomeLabel(row, "dropped", "Dropped"),
          "dropped",
          stageId,
          fmtInt(row.dropped),
          "is-drop",
        ),
        metricRow(
          "Drop-off rate",
          "drop_off_rate",
          stageId,
          row.too_small ? `too few (< ${fmtInt(DATA.min_journeys)})` : fmtPct(rate),
          "is-drop",
        ),
        metricRow(
          outcomeLabel(row, "in_progress", "In progress"),
          "in_progress",
          stageId,
          fmtInt(row.in_progress),
        ),
        num(row.completed)
          ? metricRow("Completed", "completed", stageId, fmtInt(row.completed))
          : null,
      ),
      rate === null
        ? null
        : h(
            "div",
            { class: "rate-bar", title: `Drop-off rate ${fmtPct(rate)}` },
            h("span", { style: { width: `${Math.min(100, Math.max(0, rate * 100))}%` } }),
          ),
    );
  }

  // A duration in hours as minutes, hours or days, whichever reads best.
  function fmtDuration(hours) {
    const v = num(hours);
    if (v === null) return DASH;
    if (v < 1) return `${fmtInt(Math.round(v * 60))} min`;
    if (v < 48) return `${fmtOne(v)} h`;
    return `${fmtOne(v / 24)} days`;
  }

  function timeCell(row) {
    const step = row && row.time_to_next;
    if (!step || !num(step.journeys)) return cell("time", h("p", { class: "no-data" }, "No step."));
    const buckets = list(step.buckets);
    const most = Math.max(1, ...buckets.map((b) => num(b.journeys) || 0));
    return cell(
      "time",
      h(
        "div",
        {
          class: "histogram",
          role: "img",
          "aria-label": `Time to ${str(step.to_stage)}: ${buckets
            .map((b) => `${str(b.bucket)} ${fmtInt(b.journeys)}`)
            .join(", ")}`,
        },
        buckets.map((b) =>
          h("span", {
            class: "histogram-bar",
            title: `${str(b.bucket)}: ${fmtInt(b.journeys)} journeys`,
            "data-journeys": String(num(b.journeys) || 0),
            style: { height: `${Math.round(((num(b.journeys) || 0) / most) * 100)}%` },
          }),
        ),
      ),
      h(
        "div",
        { class: "histogram-axis" },
        h("span", {}, "< 1 min"),
        h("span", {}, "30+ days"),
      ),
      h(
        "p",
        { class: "histogram-caption" },
        `median ${fmtDuration(step.median_hours)} · 90% within ${fmtDuration(step.p90_hours)} · `,
        `${fmtInt(step.journeys)} journeys`,
      ),
    );
  }

  function actionsCell(row) {
    const actions = list(row && row.actions);
    if (!actions.length) return cell("actions", noData());
    const top = Math.max(...actions.map((a) => num(a.journeys) ?? 0), 1);
    return cell(
      "actions",
      h(
        "ul",
        { class: "item-list" },
        actions.map((action) =>
          h(
            "li",
            {
              title: `${fmtInt(action.events)} events in ${fmtInt(action.journeys)} journeys`,
            },
            h(
              "div",
              { class: "item-row" },
              h("span", {}, str(action.label, humanise(action.event_type))),
              h("span", { class: "item-value" }, fmtInt(action.journeys)),
            ),
            h(
              "div",
              { class: "mini-bar" },
              h("span", { style: { width: `${((num(action.journeys) ?? 0) / top) * 100}%` } }),
            ),
          ),
        ),
      ),
    );
  }

  const TOP_TOUCHPOINTS = 6; // shown at once; the rest behind "all N touchpoints"

  function touchpointChip(tp) {
    const direct = str(tp.type).toLowerCase() === "direct";
    const exit = num(tp.exit_rate);
    const name = str(tp.name, str(tp.touchpoint_id));
    return h(
      "li",
      {
        class: `chip ${direct ? "chip-direct" : "chip-indirect"}`,
        "data-touchpoint": str(tp.touchpoint_id),
        title:
          `${name} (${direct ? "direct" : "indirect"}, ${str(tp.channel, "no channel")}): ` +
          `${fmtInt(tp.journeys_touching)} journeys touched it, ` +
          `${fmtInt(num(tp.lost_journeys) ?? tp.journeys_dropped_after)} ended after it`,
      },
      h("span", { class: "chip-name" }, name),
      h(
        "span",
        { class: "chip-stats" },
        `${fmtInt(tp.journeys_touching)} · exit `,
        // An exit rate of a fifth or more is called out: it is where journeys end.
        h("span", { class: exit !== null && exit >= 0.2 ? "exit-high" : null }, fmtPct(exit)),
      ),
    );
  }

  function touchpointsCell(row) {
    const touchpoints = list(row && row.touchpoints);
    if (!touchpoints.length) return cell("touchpoints", noData());
    const rest = touchpoints.slice(TOP_TOUCHPOINTS);
    return cell(
      "touchpoints",
      h("ul", { class: "chips" }, touchpoints.slice(0, TOP_TOUCHPOINTS).map(touchpointChip)),
      rest.length
        ? h(
            "details",
            { class: "more-touchpoints" },
            h("summary", {}, `all ${fmtInt(touchpoints.length)} touchpoints`),
            h("ul", { class: "chips" }, rest.map(touchpointChip)),
          )
        : null,
    );
  }

  function feelCell(row) {
    const emotion = obj(row && row.emotion);
    const rating = num(emotion.average_rating);
    return cell(
      "feel",
      rating === null
        ? h("div", { class: "rating-none" }, "No ratings")
        : h(
            "div",
            { class: "rating", title: `Average rating ${fmtOne(rating)} of 5` },
            `★ ${fmtOne(rating)} (${fmtInt(emotion.ratings)})`,
          ),
      num(emotion.texts)
        ? h("div", { class: "texts-count" }, `${fmtInt(emotion.texts)} texts scored`)
        : null,
      list(row && row.quotes).map((q) =>
        h(
          "blockquote",
          { class: `quote quote-${str(q.polarity)}`, "data-polarity": str(q.polarity) },
          `“${str(q.quote)}”`,
          h(
            "small",
            {},
            [num(q.rating) === null ? null : `★${fmtInt(q.rating)}`, str(q.said_on)]
              .filter(Boolean)
              .join(" · "),
          ),
        ),
      ),
    );
  }

  const PAIN_ICONS = {
    drop_off: "↘",
    exit: "⇥",
    low_rating: "★",
    negative_sentiment: "☹",
    driver: "⚑",
    last_steps: "⋯",
    voice: "❝",
    lost_voice: "❝",
    recovery: "↺",
  };

  function painValue(kind, value) {
    if (num(value) === null) return "";
    if (kind === "low_rating") return `★ ${fmtOne(value)}`;
    if (kind === "negative_sentiment") return fmtSigned(value);
    if (kind === "driver") return `×${fmtOne(value)}`;
    return fmtPct(value);
  }

  function painCell(row) {
    const pains = list(row && row.pain_points);
    if (!pains.length) return cell("pain", h("p", { class: "no-data" }, "None flagged."));
    return cell(
      "pain",
      h(
        "ul",
        { class: "item-list pain-list" },
        pains.map((pain) => {
          const kind = str(pain.kind);
          return h(
            "li",
            { "data-kind": kind },
            h(
              "span",
              { class: "pain-icon", title: humanise(kind), "aria-hidden": "true" },
              PAIN_ICONS[kind] || "!",
            ),
            h(
              "span",
              {},
              str(pain.text, humanise(kind)),
              " ",
              h("span", { class: "pain-value" }, painValue(kind, pain.value)),
            ),
          );
        }),
      ),
    );
  }

  function opportunitiesCell(stageId, opportunities, view) {
    if (!view) return cell("opportunities", noData());
    const mine = opportunities
      .filter((o) => str(o.stage) === stageId)
      .sort((a, b) => (num(a.rank) ?? 1e9) - (num(b.rank) ?? 1e9));
    if (!mine.length) return cell("opportunities", h("p", { class: "no-data" }, "None ranked."));
    return cell(
      "opportunities",
      h(
        "ul",
        { class: "item-list" },
        mine.map((o) =>
          h(
            "li",
            { class: "opportunity", "data-rank": str(o.rank) },
            h(
              "div",
              { class: "opportunity-title" },
              h("span", { class: "opportunity-rank" }, `#${str(o.rank, "?")}`),
              str(o.name, str(o.touchpoint_id)),
            ),
            h(
              "div",
              { class: "opportunity-stats" },
              `${fmtInt(o.lost_journeys)} ${afterOrder(o.stage) ? "buyers lapsed" : "journeys lost"}` +
                ` · exit ${fmtPct(o.exit_rate)}`,
            ),
            o.text ? h("p", { class: "opportunity-text" }, str(o.text)) : null,
          ),
        ),
      ),
    );
  }

  /* The emotion curve is one SVG laid over the "How they feel" lane across all stage
     columns. The grid has no column gap, so column centres sit at (i + 0.5) / n of the
     SVG's width and are given in percentages: the curve stays aligned at any width and in
     print without measuring the layout. Stages without sentiment leave a gap. */
  function emotionCurve(rows) {
    const height = 120;
    const pad = 18;
    const y = (v) => pad + ((1 - Math.max(-1, Math.min(1, v))) / 2) * (height - 2 * pad);
    const x = (i) => `${(((i + 0.5) / STAGES.length) * 100).toFixed(3)}%`;
    const svg = s("svg", {
      id: "emotion-curve",
      class: "emotion-curve",
      role: "img",
      "aria-label": "Average sentiment by stage",
      style: { gridColumn: "2 / -1", gridRow: String(laneRow("feel")) },
    });
    svg.append(
      s("rect", { class: "band-positive", x: 0, y: pad, width: "100%", height: y(0) - pad }),
      s("rect", { class: "band-negative", x: 0, y: y(0), width: "100%", height: y(0) - pad }),
      s("line", { class: "zero-line", x1: 0, x2: "100%", y1: y(0), y2: y(0) }),
      s("text", { class: "scale-label", x: 4, y: pad - 5 }, "+1 positive"),
      s("text", { class: "scale-label", x: 4, y: y(0) - 4 }, "0"),
      s("text", { class: "scale-label", x: 4, y: height - pad + 12 }, "−1 negative"),
    );

    const values = STAGES.map((stage) => {
      const emotion = obj(obj(rows.get(str(stage.stage))).emotion);
      return { value: num(emotion.average_sentiment), texts: emotion.texts };
    });
    // Segments only between neighbouring stages that both have a value: a gap means "unknown".
    for (let i = 0; i + 1 < values.length; i++) {
      if (values[i].value === null || values[i + 1].value === null) continue;
      svg.append(
        s("line", {
          class: "curve",
          x1: x(i),
          y1: y(values[i].value),
          x2: x(i + 1),
          y2: y(values[i + 1].value),
        }),
      );
    }
    values.forEach(({ value, texts }, i) => {
      const name = stageLabel(STAGES[i].stage);
      if (value === null) {
        svg.append(
          s(
            "text",
            { class: "missing", x: x(i), y: y(0) + 16, "text-anchor": "middle" },
            "no sentiment",
          ),
        );
        return;
      }
      const tone = value > 0.05 ? "positive" : value < -0.05 ? "negative" : "neutral";
      svg.append(
        s(
          "circle",
          { class: tone, cx: x(i), cy: y(value), r: 6, "data-stage": str(STAGES[i].stage) },
          s(
            "title",
            {},
            `${name}: average sentiment ${fmtSigned(value)} over ${fmtInt(texts)} texts`,
          ),
        ),
        s(
          "text",
          {
            class: "point-label",
            x: x(i),
            y: value >= 0 ? y(value) - 11 : y(value) + 20,
            "text-anchor": "middle",
          },
          fmtSigned(value),
        ),
      );
    });
    return svg;
  }

  // ---------------------------------------------------------------- funnel

  function renderFunnel(view) {
    const chart = clear(byId("funnel-chart"));
    const rows = stageRows(view);
    if (!view || !STAGES.length || !rows.size) {
      chart.append(noData(view ? "the funnel" : personaLabel(state.persona)));
      return;
    }
    // Bars are scaled to the widest stage so the narrowing reads at a glance.
    const widest = Math.max(...[...rows.values()].map((r) => num(r.entered) ?? 0), 1);
    STAGES.forEach((stage, i) => {
      const id = str(stage.stage);
      const row = rows.get(id);
      if (!row) {
        chart.append(
          h(
            "div",
            { class: "funnel-row", "data-stage": id },
            h("div", { class: "funnel-label" }, stageLabel(id)),
            noData(),
          ),
        );
        return;
      }
      const entered = num(row.entered) ?? 0;
      const finalStage = i === STAGES.length - 1 && num(row.completed) !== null;
      chart.append(
        h(
          "div",
          { class: "funnel-row", "data-stage": id },
          h("div", { class: "funnel-label" }, stageLabel(id)),
          h(
            "div",
            { class: "funnel-track" },
            h("div", {
              class: "funnel-bar",
              style: { width: `${(entered / widest) * 100}%`, background: stageColour(id) },
            }),
          ),
          h(
            "div",
            { class: "funnel-numbers" },
            h("strong", { "data-funnel": "entered", "data-stage": id }, fmtInt(row.entered)),
            " entered",
            // The last stage has nowhere to advance to: it shows the journeys completed.
            h(
              "span",
              { class: "advanced" },
              " · ",
              finalStage
                ? [
                    h(
                      "span",
                      { "data-funnel": "completed", "data-stage": id },
                      fmtInt(row.completed),
                    ),
                    " completed",
                  ]
                : [
                    h(
                      "span",
                      { "data-funnel": "advanced", "data-stage": id },
                      fmtInt(row.advanced),
                    ),
                    ` ${outcomeLabel(row, "advanced", "advanced").toLowerCase()}`,
                  ],
            ),
          ),
        ),
      );
      if (i < STAGES.length - 1 || num(row.dropped)) {
        chart.append(
          h(
            "div",
            { class: "funnel-drop", "data-stage": id },
            h("span", {}, ""),
            h(
              "span",
              { class: "drop-note" },
              "↓ ",
              h("span", { "data-funnel": "dropped", "data-stage": id }, fmtInt(row.dropped)),
              ` ${outcomeLabel(row, "dropped", "dropped").toLowerCase()} (`,
              h(
                "span",
                { "data-funnel": "drop_off_rate", "data-stage": id },
                fmtPct(row.drop_off_rate),
              ),
              " drop-off)",
              num(row.in_progress)
                ? h(
                    "span",
                    { class: "in-progress" },
                    ` · ${fmtInt(row.in_progress)} still in progress`,
                  )
                : null,
            ),
          ),
        );
      }
    });
    // Journeys whose activity matched no stage rule are counted, not dropped from view.
    if (num(view.unclassified_in_funnel)) {
      chart.append(
        h(
          "p",
          { class: "funnel-unclassified", "data-funnel": "unclassified" },
          `${fmtInt(view.unclassified_in_funnel)} journeys reached no stage: their activity ` +
            "matched no stage rule (add one to the stage_rules seed).",
        ),
      );
    }
  }

  // ---------------------------------------------------------------- Sankey

  // labelWidth: room right of the last column for its labels; line: a label's height.
  const SANKEY = {
    width: 1100,
    nodeWidth: 12,
    gap: 10,
    minHeight: 2,
    top: 26,
    bottom: 8,
    labelWidth: 170,
    line: 14,
  };
  const END_ORDER = { converted: 0, in_progress: 1, dropped: 2 };

  function nodeColour(node) {
    if (node.kind === "start") return START_COLOUR;
    if (node.kind === "end") return END_COLOURS[node.end] || END_COLOURS.in_progress;
    if (node.kind === "stage") return stageColour(node.stageId);
    return TOUCHPOINT_TYPE.get(node.tail) === "indirect" ||
      TOUCHPOINT_TYPE.get(node.label) === "indirect"
      ? "#56b4e9"
      : "#0072b2";
  }

  function nodeLabel(node) {
    if (node.kind === "start") return "Start";
    if (node.kind === "end") return END_LABELS[node.end] || humanise(node.label);
    if (node.kind === "stage") return stageLabel(node.stageId);
    return node.label;
  }

  /** Nodes, links and positions for one level; null when the level has nothing to draw. */
  function layoutSankey(graph) {
    const nodes = list(graph.nodes).map((n) => {
      const id = str(n.id);
      const tail = id.includes(":") ? id.slice(id.indexOf(":") + 1) : id;
      const label = str(n.label, tail);
      return {
        id,
        tail,
        label,
        step: Math.max(0, Math.round(num(n.step) ?? 0)),
        kind: str(n.kind, "stage"),
        end: n.end === null || n.end === undefined ? null : str(n.end),
        stageId: STAGE_POS.has(label) ? label : tail,
        ins: [],
        outs: [],
        inValue: 0,
        outValue: 0,
      };
    });
    const index = new Map(nodes.map((n) => [n.id, n]));
    const links = [];
    for (const l of list(graph.links)) {
      const source = index.get(str(l.source));
      const target = index.get(str(l.target));
      const value = num(l.value);
      if (!source || !target || value === null || value <= 0 || source === target) continue;
      const link = { source, target, value, gap: num(l.median_gap_hours) };
      source.outs.push(link);
      target.ins.push(link);
      source.outValue += value;
      target.inValue += value;
      links.push(link);
    }
    const used = nodes.filter((n) => n.ins.length || n.outs.length);
    if (!links.length) return null;
    for (const n of used) {
      n.value = Math.max(n.inValue, n.outValue);
      n.name = nodeLabel(n);
    }

    const maxStep = Math.max(...used.map((n) => n.step));
    const columns = Array.from({ length: maxStep + 1 }, () => []);
    for (const n of used) columns[n.step].push(n);

    // End nodes sit at the bottom of their column in a fixed order; other nodes follow stage
    // order (stage level) or size (touchpoint level) before the crossing reduction below.
    const rank = (n) => (n.kind === "end" ? 1 : 0);
    const initialOrder = (a, b) =>
      rank(a) - rank(b) ||
      (rank(a)
        ? (END_ORDER[a.end] ?? 9) - (END_ORDER[b.end] ?? 9)
        : (STAGE_POS.get(a.stageId) ?? 99) - (STAGE_POS.get(b.stageId) ?? 99) || b.value - a.value);
    for (const column of columns) column.sort(initialOrder);

    const tallest = Math.max(...columns.map((c) => c.length));
    const height = Math.min(900, Math.max(340, tallest * 30 + SANKEY.top + SANKEY.bottom));
    const inner = height - SANKEY.top - SANKEY.bottom;
    // One scale for all columns: the fullest column decides it.
    const scale = Math.min(
      ...columns
        .filter((c) => c.length)
        .map((c) => (inner - SANKEY.gap * (c.length - 1)) / c.reduce((t, n) => t + n.value, 0)),
    );
    const usable = SANKEY.width - 8 - SANKEY.labelWidth - SANKEY.nodeWidth;
    const xOf = (step) => 8 + (maxStep ? (step / maxStep) * usable : usable / 2);

    const place = (column) => {
      let total = SANKEY.gap * Math.max(0, column.length - 1);
      for (const n of column) {
        n.h = Math.max(SANKEY.minHeight, n.value * scale);
        total += n.h;
      }
      let y = SANKEY.top + Math.max(0, (inner - total) / 2);
      for (const n of column) {
        n.x = xOf(n.step);
        n.y = y;
        y += n.h + SANKEY.gap;
      }
    };
    columns.forEach(place);

    // Crossing reduction for the touchpoint level (which has no natural order): a few
    // sweeps that sort each column by the weighted centre of its neighbours.
    const centre = (n) => n.y + n.h / 2;
    const barycentre = (n, links, other) => {
      const weight = links.reduce((t, l) => t + l.value, 0);
      return weight
        ? links.reduce((t, l) => t + centre(l[other]) * l.value, 0) / weight
        : centre(n);
    };
    const reorder = (column, key) => {
      for (const n of column) n.key = n.kind === "end" ? 1e9 + (END_ORDER[n.end] ?? 9) : key(n);
      column.sort((a, b) => a.key - b.key);
      place(column);
    };
    if (used.some((n) => n.kind === "touchpoint")) {
      for (let pass = 0; pass < 3; pass++) {
        for (let c = 1; c <= maxStep; c++)
          reorder(columns[c], (n) => barycentre(n, n.ins, "source"));
        for (let c = maxStep - 1; c >= 0; c--)
          reorder(columns[c], (n) => barycentre(n, n.outs, "target"));
      }
    }

    // Stack each node's links in the order of the nodes at their other end, so ribbons
    // leave and arrive without crossing inside a node.
    for (const n of used) {
      n.outs.sort((a, b) => a.target.y - b.target.y);
      let y = n.y;
      for (const l of n.outs) {
        l.width = Math.max(1, l.value * scale);
        l.y0 = y + (l.value * scale) / 2;
        y += l.value * scale;
      }
      n.ins.sort((a, b) => a.source.y - b.source.y);
      y = n.y;
      for (const l of n.ins) {
        l.y1 = y + (l.value * scale) / 2;
        y += l.value * scale;
      }
    }
    return { nodes: used, links, maxStep, height, xOf };
  }

  function renderSankey() {
    const svg = clear(byId("sankey"));
    const sankey = obj(DATA.sankey);
    const layout = layoutSankey(obj(sankey[state.sankeyLevel]));
    renderSankeyLegend();
    if (!layout) {
      svg.setAttribute("viewBox", `0 0 ${SANKEY.width} 60`);
      svg.append(s("text", { x: 8, y: 30, class: "axis-label" }, "No transitions for this level."));
      return;
    }
    svg.setAttribute("viewBox", `0 0 ${SANKEY.width} ${layout.height}`);

    for (let step = 0; step <= layout.maxStep; step++) {
      svg.append(
        s(
          "text",
          { class: "step-label", x: layout.xOf(step), y: 14 },
          step === 0 ? "Start" : `Step ${step}`,
        ),
      );
    }

    // Wide ribbons first so narrow ones stay visible (and hoverable) on top.
    const links = layout.links.slice().sort((a, b) => b.width - a.width);
    const linkGroup = s("g", { class: "sankey-links" });
    for (const l of links) {
      const x0 = l.source.x + SANKEY.nodeWidth;
      const x1 = l.target.x;
      const mid = (x0 + x1) / 2;
      // Ribbons take the colour of where journeys go when that is an end or when they come
      // from the start (whose grey says nothing); otherwise the colour of where they come from.
      const colour =
        l.target.kind === "end" || l.source.kind === "start"
          ? nodeColour(l.target)
          : nodeColour(l.source);
      linkGroup.append(
        s(
          "path",
          {
            class: "sankey-link",
            d: `M${x0},${l.y0}C${mid},${l.y0} ${mid},${l.y1} ${x1},${l.y1}`,
            stroke: colour,
            "stroke-width": l.width.toFixed(2),
            "data-source": l.source.id,
            "data-target": l.target.id,
          },
          s(
            "title",
            {},
            `${l.source.name} → ${l.target.name}: ${fmtInt(l.value)} journeys, ` +
              `median gap ${fmtHours(l.gap)}`,
          ),
        ),
      );
    }
    svg.append(linkGroup);

    const nodeGroup = s("g", { class: "sankey-nodes" });
    for (const n of layout.nodes) {
      nodeGroup.append(
        s(
          "g",
          {
            class: `sankey-node sankey-${n.kind}`,
            "data-node": n.id,
            "data-kind": n.kind,
            "data-end": n.end,
          },
          s("rect", { x: n.x, y: n.y, width: SANKEY.nodeWidth, height: n.h, fill: nodeColour(n) }),
          s("title", {}, `${n.name} (step ${n.step}): ${fmtInt(n.value)} journeys`),
        ),
      );
    }
    svg.append(nodeGroup);
    placeSankeyLabels(nodeGroup, layout);
  }

  /** Labels right of each node that never overlap one another, the step headings or the
      next column, and never leave the chart. Per column, labels are stacked a line apart
      as near their node's centre as the others allow; where a column has no room for
      all, the smallest nodes go unlabelled (their name stays in the node's tooltip), and
      a label displaced beyond its node is dropped rather than pointing at a neighbour. A
      name too long for the room to the next column is shortened with "…" (measured in
      the browser, so any font fits). */
  function placeSankeyLabels(group, layout) {
    const line = SANKEY.line;
    const minY = SANKEY.top + line / 2;
    const maxY = layout.height - line / 2;
    const byStep = new Map();
    for (const n of layout.nodes) {
      if (!byStep.has(n.step)) byStep.set(n.step, []);
      byStep.get(n.step).push(n);
    }
    const stack = (labelled) => {
      const ys = labelled.map((n) => Math.min(maxY, Math.max(minY, n.y + n.h / 2)));
      for (let i = 1; i < ys.length; i++) ys[i] = Math.max(ys[i], ys[i - 1] + line);
      if (ys.length) ys[ys.length - 1] = Math.min(ys[ys.length - 1], maxY);
      for (let i = ys.length - 2; i >= 0; i--) ys[i] = Math.min(ys[i], ys[i + 1] - line);
      return ys;
    };
    for (const [step, column] of byStep) {
      let labelled = column.slice().sort((a, b) => a.y - b.y);
      let ys = stack(labelled);
      // Too far from its node (beyond its edge by more than a line), or pushed above the
      // top: the smallest such node loses its label, and the column is stacked again.
      const misplaced = () =>
        labelled.filter(
          (n, i) => ys[i] < minY - 0.01 || Math.abs(ys[i] - (n.y + n.h / 2)) > n.h / 2 + line,
        );
      for (let bad = misplaced(); bad.length; bad = misplaced()) {
        const smallest = bad.reduce((a, b) => (b.value < a.value ? b : a));
        labelled = labelled.filter((n) => n !== smallest);
        ys = stack(labelled);
      }
      const x = layout.xOf(step) + SANKEY.nodeWidth + 4;
      const room = (step < layout.maxStep ? layout.xOf(step + 1) : SANKEY.width) - x - 4;
      labelled.forEach((n, i) => {
        const count = ` ${fmtInt(n.value)}`;
        const text = s(
          "text",
          { x, y: ys[i], "dominant-baseline": "middle", class: "node-label" },
          `${n.name}${count}`,
        );
        const g = group.querySelector(`g[data-node="${CSS.escape(n.id)}"]`);
        (g || group).append(text);
        let chars = n.name.length;
        while (chars > 1 && text.getComputedTextLength() > room) {
          chars -= 1;
          text.textContent = `${truncate(n.name, chars)}${count}`;
        }
        if (text.getComputedTextLength() > room) text.remove();
      });
    }
  }

  function renderSankeyLegend() {
    const legend = clear(byId("sankey-legend"));
    const item = (colour, label) =>
      h(
        "span",
        { class: "legend-item" },
        h("span", { class: "swatch", style: { background: colour } }),
        label,
      );
    legend.append(item(START_COLOUR, "Start"));
    if (state.sankeyLevel === "stage") {
      for (const stage of STAGES)
        legend.append(item(stageColour(stage.stage), stageLabel(stage.stage)));
    } else {
      legend.append(item("#0072b2", "Direct touchpoint"), item("#56b4e9", "Indirect touchpoint"));
    }
    for (const end of ["converted", "in_progress", "dropped"]) {
      legend.append(item(END_COLOURS[end], END_LABELS[end]));
    }
  }

  /** A variant "a > b > c" as path segments with arrows; stage ids get their stage names. */
  function variantPath(variant) {
    const parts = str(variant)
      .split(">")
      .map((p) => p.trim())
      .filter(Boolean);
    const out = [];
    parts.forEach((part, i) => {
      if (i) out.push(h("span", { class: "path-arrow", "aria-hidden": "true" }, "→"));
      out.push(STAGE_POS.has(part) ? stageLabel(part) : part);
    });
    return out.length ? out : DASH;
  }

  function table(node, headers, rows, emptyText) {
    clear(node);
    node.append(
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          headers.map(([label, numeric]) =>
            h("th", { class: numeric ? "num" : null, scope: "col" }, label),
          ),
        ),
      ),
    );
    const body = h("tbody", {});
    if (!rows.length) {
      body.append(h("tr", {}, h("td", { colspan: headers.length, class: "no-data" }, emptyText)));
    }
    for (const row of rows) body.append(row);
    node.append(body);
  }

  function renderVariants() {
    const variants = list(obj(DATA.variants)[state.sankeyLevel])
      .slice()
      .sort((a, b) => (num(a.rank) ?? 1e9) - (num(b.rank) ?? 1e9));
    table(
      byId("variants-table"),
      [
        ["#", true],
        ["Journey", false],
        ["Journeys", true],
        ["Share", true],
        ["Conversion", true],
      ],
      variants.map((v) =>
        h(
          "tr",
          {},
          h("td", { class: "num" }, str(v.rank, DASH)),
          h("td", {}, variantPath(v.variant)),
          h("td", { class: "num" }, fmtInt(v.journeys)),
          h("td", { class: "num" }, fmtPct(v.share)),
          h("td", { class: "num" }, fmtPct(v.conversion_rate)),
        ),
      ),
      "No journey variants for this level.",
    );
  }

  // ---------------------------------------------------------------- drop-off over time

  function markerShape(kind, x, y, colour, title, hollow) {
    const r = 4.5;
    const attrs = hollow
      ? { fill: "#fff", stroke: colour, "stroke-width": 2, class: "point provisional" }
      : { fill: colour, stroke: "#fff", "stroke-width": 1.5, class: "point" };
    let shape;
    if (kind === "square")
      shape = s("rect", { ...attrs, x: x - r, y: y - r, width: 2 * r, height: 2 * r });
    else if (kind === "triangle") {
      shape = s("path", {
        ...attrs,
        d: `M${x},${y - r - 1}L${x + r + 1},${y + r}L${x - r - 1},${y + r}Z`,
      });
    } else if (kind === "diamond") {
      shape = s("path", {
        ...attrs,
        d: `M${x},${y - r - 1}L${x + r + 1},${y}L${x},${y + r + 1}L${x - r - 1},${y}Z`,
      });
    } else shape = s("circle", { ...attrs, cx: x, cy: y, r });
    if (title) shape.append(s("title", {}, title));
    return shape;
  }

  function legendMarker(kind, colour) {
    const svg = s("svg", { width: 26, height: 12, viewBox: "0 0 26 12", "aria-hidden": "true" });
    svg.append(
      s("line", { x1: 0, x2: 26, y1: 6, y2: 6, stroke: colour, "stroke-width": 2 }),
      markerShape(kind, 13, 6, colour, null),
    );
    return svg;
  }

  /** A round upper bound for a rate axis: the next 5% (or 10% above 50%). */
  function niceRateMax(max) {
    const step = max > 0.5 ? 0.1 : 0.05;
    return Math.min(1, Math.max(step, Math.ceil(max / step - 1e-9) * step));
  }

  /** Horizontal grid lines with their value labels, from 0 to yMax in equal ticks. */
  function yGrid(parent, { ticks, yMax, yOf, x1, x2, format }) {
    for (let t = 0; t <= ticks; t++) {
      const v = (yMax / ticks) * t;
      parent.append(
        s("line", { class: "grid-line", x1, x2, y1: yOf(v), y2: yOf(v) }),
        s(
          "text",
          {
            class: "tick-label",
            x: x1 - 7,
            y: yOf(v),
            "text-anchor": "end",
            "dominant-baseline": "middle",
          },
          format(v),
        ),
      );
    }
  }

  // A post-purchase stage (experience, loyalty): nobody there is lost, a buyer lapses.
  function afterOrder(stageId) {
    return STAGES.some((st) => str(st.stage) === str(stageId) && str(st.funnel) === "post_purchase");
  }

  function renderDropoffOverTime(view) {
    const svg = clear(byId("dropoff-chart"));
    const legend = clear(byId("dropoff-legend"));
    const grain = str(DATA.period_grain, "period");
    byId("dropoff-note").textContent =
      `Drop-off rate of each stage per ${grain}, for ${personaLabel(state.persona)}. ` +
      "The last stage is left out: journeys there have no next stage to reach. " +
      "Hollow points are recent periods: a journey counts as dropped only after the " +
      "journey gap without activity, so there most outcomes are not known yet and the " +
      "rate is a floor, not a trend." +
      (DATA.return_window_days
        ? ` After the order a journey drops (lapses) only when its ${DATA.return_window_days}-day ` +
          "return window passes without a loyalty signal: periods younger than the window " +
          "have no post-purchase rate yet."
        : "");
    // The final stage is excluded: its "drop-off" has no next stage to be measured against.
    const charted = STAGES.slice(0, Math.max(1, STAGES.length - 1)).map((st) => str(st.stage));
    const rows = list(view && view.dropoff_over_time).filter((r) => charted.includes(str(r.stage)));
    const periods = [...new Set(rows.map((r) => str(r.period_start)))].sort();
    const width = 1100;
    const height = 320;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    if (!periods.length) {
      svg.setAttribute("viewBox", `0 0 ${width} 60`);
      svg.append(
        s(
          "text",
          { x: 8, y: 30, class: "axis-label" },
          `No drop-off history for ${personaLabel(state.persona)}.`,
        ),
      );
      return;
    }
    const m = { left: 64, right: 20, top: 14, bottom: 52 };
    const plotW = width - m.left - m.right;
    const plotH = height - m.top - m.bottom;
    const rates = rows.map((r) => num(r.drop_off_rate)).filter((v) => v !== null);
    const yMax = niceRateMax(Math.max(0, ...rates));
    const xOf = (i) =>
      m.left + (periods.length === 1 ? plotW / 2 : (i / (periods.length - 1)) * plotW);
    const yOf = (v) => m.top + plotH - (v / yMax) * plotH;

    // Axes and grid: five horizontal lines, and at most about a dozen date labels.
    const axis = s("g", { class: "axes" });
    yGrid(axis, { ticks: 5, yMax, yOf, x1: m.left, x2: width - m.right, format: fmtPct });
    const every = Math.max(1, Math.ceil(periods.length / 12));
    periods.forEach((p, i) => {
      if (i % every) return;
      axis.append(
        s("line", {
          class: "axis-line",
          x1: xOf(i),
          x2: xOf(i),
          y1: m.top + plotH,
          y2: m.top + plotH + 5,
        }),
        s(
          "text",
          { class: "tick-label", x: xOf(i), y: m.top + plotH + 19, "text-anchor": "middle" },
          fmtShortDate(p),
        ),
      );
    });
    axis.append(
      s("line", {
        class: "axis-line",
        x1: m.left,
        x2: width - m.right,
        y1: m.top + plotH,
        y2: m.top + plotH,
      }),
      s(
        "text",
        { class: "axis-label", x: m.left + plotW / 2, y: height - 8, "text-anchor": "middle" },
        `${humanise(grain)} starting`,
      ),
      s(
        "text",
        {
          class: "axis-label",
          x: 14,
          y: m.top + plotH / 2,
          "text-anchor": "middle",
          transform: `rotate(-90 14 ${m.top + plotH / 2})`,
        },
        "Drop-off rate",
      ),
    );
    svg.append(axis);

    // Shade the recent periods where every stage's rate is provisional (too recent for
    // the journey gap, or mostly in progress): right-censored, so a falling rate there
    // is journeys not having had time to drop.
    const spans = viewPeriods(view);
    const halfStep = periods.length > 1 ? plotW / (periods.length - 1) / 2 : plotW / 2;
    let firstOpen = spans.length;
    while (firstOpen > 0 && spans[firstOpen - 1].open) firstOpen -= 1;
    if (firstOpen < periods.length) {
      const x0 = Math.max(m.left, xOf(firstOpen) - halfStep);
      svg.append(
        s("rect", {
          class: "censored-band",
          x: x0,
          y: m.top,
          width: width - m.right - x0,
          height: plotH,
        }),
        s(
          "text",
          { class: "axis-label", x: x0 + 6, y: m.top + 14 },
          "mostly in progress: drop-off not known yet",
        ),
      );
    }

    // The range compared below, and the range it is compared with, as bands behind the lines.
    const chosen = selectedRange(spans);
    const length = chosen.to - chosen.from + 1;
    const band = (a, b, cls) => {
      const x0 = Math.max(m.left, xOf(a) - halfStep);
      const x1 = Math.min(width - m.right, xOf(b) + halfStep);
      svg.append(s("rect", { class: cls, x: x0, y: m.top, width: x1 - x0, height: plotH }));
    };
    if (chosen.from - length >= 0) band(chosen.from - length, chosen.from - 1, "range-before");
    band(chosen.from, chosen.to, "range-band");

    charted.forEach((stageId, si) => {
      const colour = stageColour(stageId);
      const marker = MARKERS[si % MARKERS.length];
      const byPeriod = new Map(
        rows.filter((r) => str(r.stage) === stageId).map((r) => [str(r.period_start), r]),
      );
      legend.append(
        h("span", { class: "legend-item" }, legendMarker(marker, colour), stageLabel(stageId)),
      );
      // The line breaks where a period has no rate, rather than bridging the gap.
      let d = "";
      let pen = false;
      periods.forEach((p, i) => {
        const rate = num(obj(byPeriod.get(p)).drop_off_rate);
        if (rate === null) {
          pen = false;
          return;
        }
        d += `${pen ? "L" : "M"}${xOf(i).toFixed(1)},${yOf(rate).toFixed(1)}`;
        pen = true;
      });
      const group = s("g", { class: "series", "data-stage": stageId });
      if (d) group.append(s("path", { d, fill: "none", stroke: colour, "stroke-width": 2.2 }));
      periods.forEach((p, i) => {
        const row = byPeriod.get(p);
        const rate = num(obj(row).drop_off_rate);
        if (rate === null && obj(row).too_small) {
          // Too few journeys to read a rate: a hollow mark on the axis, not a point.
          group.append(
            s(
              "circle",
              {
                class: "too-small",
                cx: xOf(i).toFixed(1),
                cy: yOf(0).toFixed(1),
                r: 3,
                fill: "none",
                stroke: "#999",
              },
              s(
                "title",
                {},
                `${stageLabel(stageId)}, ${grain} of ${p}: too few journeys to read ` +
                  `(${fmtInt(num(row.dropped) + num(row.advanced))} of known outcome, ` +
                  `under ${fmtInt(DATA.min_journeys)})`,
              ),
            ),
          );
          return;
        }
        if (rate === null) return;
        group.append(
          markerShape(
            marker,
            xOf(i),
            yOf(rate),
            colour,
            `${stageLabel(stageId)}, ${grain} of ${p}: ${fmtPct(rate)} drop-off ` +
              `(${fmtInt(row.dropped)} dropped, ${fmtInt(row.advanced)} advanced, ` +
              `${fmtInt(row.in_progress)} in progress)` +
              (row.provisional ? ", mostly still in progress" : ""),
            Boolean(row.provisional),
          ),
        );
      });
      svg.append(group);
    });
  }

  // ---------------------------------------------------------------- periods compared

  /** The complementary error function, to within 1.2e-7 (the Chebyshev fit of Numerical
      Recipes' erfcc): enough for a p-value shown to three places. */
  function erfc(x) {
    const z = Math.abs(x);
    const t = 1 / (1 + 0.5 * z);
    const poly =
      -1.26551223 +
      t *
        (1.00002368 +
          t *
            (0.37409196 +
              t *
                (0.09678418 +
                  t *
                    (-0.18628806 +
                      t *
                        (0.27886807 +
                          t *
                            (-1.13520398 +
                              t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    const r = t * Math.exp(-z * z + poly);
    return x >= 0 ? r : 2 - r;
  }

  /** Two-sided p-value of the change between two drop-off rates: the two-proportion z
      test, which is Pearson's chi-square test of the 2x2 table without continuity
      correction. Null when either side has no journey of known outcome. */
  function changePValue(d1, n1, d0, n0) {
    if (!n1 || !n0) return null;
    const pooled = (d1 + d0) / (n1 + n0);
    const variance = pooled * (1 - pooled) * (1 / n1 + 1 / n0);
    if (variance <= 0) return 1;
    return Math.min(1, erfc(Math.abs(d1 / n1 - d0 / n0) / Math.sqrt(variance) / Math.SQRT2));
  }

  /** Journey-start periods of a view, oldest first, and whether each is still open
      (every charted stage provisional: right-censored). */
  function viewPeriods(view) {
    const rows = list(view && view.dropoff_over_time);
    const periods = [...new Set(rows.map((r) => str(r.period_start)))].sort();
    return periods.map((p) => ({
      start: p,
      open: rows.filter((r) => str(r.period_start) === p).every((r) => r.provisional),
    }));
  }

  /** The selected range as indexes into the view's periods, kept valid when the persona
      changes. By default the latest settled periods (up to four), so that the same number
      of periods before them exists to compare with. */
  function selectedRange(periods) {
    const starts = periods.map((p) => p.start);
    let from = starts.indexOf(state.rangeFrom);
    let to = starts.indexOf(state.rangeTo);
    if (from < 0 || to < 0 || from > to) {
      let last = periods.length - 1;
      while (last > 0 && periods[last].open) last -= 1;
      const length = Math.max(1, Math.min(4, Math.floor((last + 1) / 2)));
      to = last;
      from = Math.max(0, last - length + 1);
    }
    return { from, to };
  }

  /** Dropped, advanced and in progress for one stage over periods [from, to]; periods in
      which no journey can have dropped yet (after the order, younger than the return
      window) are left out and counted. */
  function rangeTotals(rows, periods, stageId, from, to) {
    const wanted = new Set(periods.slice(from, to + 1).map((p) => p.start));
    const totals = { dropped: 0, advanced: 0, in_progress: 0, undecided: 0, provisional: false };
    for (const r of rows) {
      if (str(r.stage) !== stageId || !wanted.has(str(r.period_start))) continue;
      if (r.undecided) {
        totals.undecided += 1;
        continue;
      }
      totals.dropped += num(r.dropped) ?? 0;
      totals.advanced += num(r.advanced) ?? 0;
      totals.in_progress += num(r.in_progress) ?? 0;
      totals.provisional = totals.provisional || Boolean(r.provisional);
    }
    totals.known = totals.dropped + totals.advanced;
    totals.readable = totals.known > 0 && totals.known >= (num(DATA.min_journeys) ?? 0);
    totals.rate = totals.readable ? totals.dropped / totals.known : null;
    return totals;
  }

  /** A change of rate in percentage points, signed: "+4.2 pp", "\u22121.0 pp". */
  function fmtPoints(change) {
    if (change === null) return DASH;
    const points = change * 100;
    const sign = points >= 0.05 ? "+" : points <= -0.05 ? "\u2212" : "";
    return `${sign}${oneFormat.format(Math.abs(points))} pp`;
  }

  function periodOption(period) {
    return `${fmtShortDate(period.start)}${period.open ? " (still open)" : ""}`;
  }

  function renderPeriodComparison(view) {
    const periods = viewPeriods(view);
    const fromSelect = clear(byId("range-from"));
    const toSelect = clear(byId("range-to"));
    const note = byId("range-note");
    const grain = str(DATA.period_grain, "period");
    const alpha = num(DATA.comparison_alpha) ?? 0.05;
    if (!periods.length) {
      note.textContent = `No periods to compare for ${personaLabel(state.persona)}.`;
      table(byId("compare-table"), [["Stage", false]], [], "No drop-off history.");
      return;
    }
    const { from, to } = selectedRange(periods);
    state.rangeFrom = periods[from].start;
    state.rangeTo = periods[to].start;
    periods.forEach((p, i) => {
      fromSelect.append(h("option", { value: p.start, selected: i === from }, periodOption(p)));
      toSelect.append(h("option", { value: p.start, selected: i === to }, periodOption(p)));
    });
    fromSelect.value = state.rangeFrom;
    toSelect.value = state.rangeTo;

    const length = to - from + 1;
    const before = from - length >= 0 ? { from: from - length, to: from - 1 } : null;
    const span = (a, b) =>
      a === b
        ? `the ${grain} of ${fmtShortDate(periods[a].start)}`
        : `the ${b - a + 1} ${grain}s from ${fmtShortDate(periods[a].start)} to ` +
          `${fmtShortDate(periods[b].start)}`;
    note.textContent =
      `Journeys that started in ${span(from, to)}, against ` +
      (before
        ? `the ${length} ${grain}${length > 1 ? "s" : ""} before (${span(before.from, before.to)}). `
        : `the same number of ${grain}s before, which the data does not reach back to. `) +
      `A change is significant when its p-value (two-proportion test) is under ${alpha}. ` +
      `Rates over fewer than ${fmtInt(DATA.min_journeys)} journeys of known outcome are too ` +
      "few to read; a range holding open periods gives a floor, not a rate.";

    const rows = list(view && view.dropoff_over_time);
    const charted = STAGES.slice(0, Math.max(1, STAGES.length - 1)).map((st) => str(st.stage));
    const rateText = (t) =>
      t.known === 0 && t.undecided
        ? "not known yet"
        : t.readable
          ? `${fmtPct(t.rate)}${t.provisional ? " (open)" : ""}`
          : `too few (${fmtInt(t.known)})`;
    table(
      byId("compare-table"),
      [
        ["Stage", false],
        ["Journeys", true],
        ["Dropped", true],
        ["Drop-off", true],
        ["Before", true],
        ["Change", true],
        ["p-value", true],
        ["Reading", false],
      ],
      charted.map((stageId) => {
        const now = rangeTotals(rows, periods, stageId, from, to);
        const then = before ? rangeTotals(rows, periods, stageId, before.from, before.to) : null;
        const comparable = Boolean(then && now.readable && then.readable);
        const p = comparable ? changePValue(now.dropped, now.known, then.dropped, then.known) : null;
        const change = comparable ? now.rate - then.rate : null;
        let reading = "nothing to compare with";
        if (now.known === 0 && now.undecided) reading = "not known yet: return window still open";
        else if (then && !comparable) reading = "too few journeys to compare";
        else if (comparable && p !== null && p < alpha)
          reading = change > 0 ? "rose significantly" : "fell significantly";
        else if (comparable) reading = "no significant change";
        if (comparable && (now.provisional || then.provisional)) reading += " (open periods)";
        return h(
          "tr",
          {
            "data-stage": stageId,
            "data-dropped": now.dropped,
            "data-known": now.known,
            "data-before-dropped": then ? then.dropped : null,
            "data-before-known": then ? then.known : null,
            "data-p": p === null ? null : p.toPrecision(6),
            class: comparable && p < alpha ? (change > 0 ? "worse" : "better") : null,
          },
          h("th", { scope: "row" }, stageLabel(stageId)),
          h("td", { class: "num" }, fmtInt(now.known)),
          h("td", { class: "num" }, fmtInt(now.dropped)),
          h("td", { class: "num" }, rateText(now)),
          h("td", { class: "num" }, then ? rateText(then) : DASH),
          h(
            "td",
            { class: "num" },
            fmtPoints(change),
          ),
          h(
            "td",
            { class: "num" },
            p === null ? DASH : p < 0.001 ? "< 0.001" : p.toFixed(3),
          ),
          h("td", {}, reading),
        );
      }),
      "No stages to compare.",
    );
  }

  // ---------------------------------------------------------------- attribution

  const MODEL_COLOURS = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00"];

  function modelInfo(model) {
    const attribution = obj(DATA.attribution);
    const halfLife = num(attribution.half_life_days);
    const halfLifeText =
      halfLife === null ? "the configured half-life" : `${fmtOne(halfLife)} days`;
    const info = {
      first_touch: [
        "First touch",
        "All of a conversion's credit goes to the journey's first touchpoint.",
      ],
      last_touch: [
        "Last touch",
        "All of a conversion's credit goes to the last touchpoint before it.",
      ],
      linear: [
        "Linear",
        "The credit is split equally among every touchpoint of the converting journey.",
      ],
      position_based: [
        "Position-based",
        "40% to the first touchpoint, 40% to the last, and the remaining 20% shared by those " +
          "between.",
      ],
      time_decay: [
        "Time decay",
        "Touchpoints nearer the conversion get more: a touchpoint's weight halves every " +
          `${halfLifeText} before it.`,
      ],
      markov: [
        "Markov",
        "Credit in proportion to the removal effect: the share of conversions a Markov " +
          "chain of the converted and dropped journeys loses when the touchpoint is taken out.",
      ],
    };
    return info[model] || [humanise(model), ""];
  }

  /** The measure credited: conversions (one decimal) or revenue (whole units). */
  function attributionMeasure() {
    return state.attributionMeasure === "revenue"
      ? { key: "revenue", unit: "revenue", format: fmtInt }
      : { key: "credits", unit: "conversions", format: fmtOne };
  }

  function renderAttribution() {
    const attribution = obj(DATA.attribution);
    const models = list(attribution.models).map(String);
    const rows = list(attribution[state.attributionLevel]);
    const measure = attributionMeasure();
    const levelName = state.attributionLevel === "channel" ? "Channel" : "Touchpoint";
    byId("attribution-note").textContent =
      (measure.key === "revenue"
        ? `${fmtInt(attribution.revenue)} of revenue (the orders' value, in their currency) ` +
          `from ${fmtInt(attribution.conversions)} conversions`
        : `${fmtInt(attribution.conversions)} conversions`) +
      ` credited to each ${levelName.toLowerCase()} under ${models.length || "no"} models, ` +
      "for all customers. The highest credit of each model is highlighted.";

    const value = (r, m) => num(obj(r[measure.key])[m]);
    // The largest credit per model, to highlight; ties highlight every holder.
    const best = new Map(
      models.map((m) => [m, Math.max(-Infinity, ...rows.map((r) => value(r, m) ?? -Infinity))]),
    );
    const hasRemoval = rows.some((r) => num(r.removal_effect) !== null);
    const headers = [[levelName, false], ...models.map((m) => [modelInfo(m)[0], true])];
    if (hasRemoval) headers.push(["Removal effect", true]);
    table(
      byId("attribution-table"),
      headers,
      rows.map((r) => {
        return h(
          "tr",
          { "data-node": str(r.node) },
          h("td", {}, str(r.label, str(r.node))),
          models.map((m) => {
            const v = value(r, m);
            const top = v !== null && v === best.get(m) && rows.length > 1;
            return h("td", { class: top ? "num best" : "num", "data-model": m }, measure.format(v));
          }),
          hasRemoval ? h("td", { class: "num" }, fmtPct(r.removal_effect)) : null,
        );
      }),
      "No attribution for this level.",
    );

    const notes = clear(byId("model-notes"));
    for (const m of models) {
      const [name, text] = modelInfo(m);
      notes.append(h("dt", {}, name), h("dd", {}, text));
    }
    renderAttributionChart(models, rows, measure);
  }

  /** Grouped bars: one group per channel or touchpoint, one bar per model. */
  function renderAttributionChart(models, rows, measure) {
    const svg = clear(byId("attribution-chart"));
    const legend = clear(byId("attribution-legend"));
    const width = 1100;
    const height = 280;
    if (!rows.length || !models.length) {
      svg.setAttribute("viewBox", `0 0 ${width} 40`);
      svg.append(s("text", { x: 8, y: 24, class: "axis-label" }, "No attribution to chart."));
      return;
    }
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    models.forEach((m, i) =>
      legend.append(
        h(
          "span",
          { class: "legend-item" },
          h("span", {
            class: "swatch",
            style: { background: MODEL_COLOURS[i % MODEL_COLOURS.length] },
          }),
          modelInfo(m)[0],
        ),
      ),
    );
    const m = { left: 56, right: 10, top: 10, bottom: 62 };
    const plotW = width - m.left - m.right;
    const plotH = height - m.top - m.bottom;
    const values = rows.flatMap((r) => models.map((mo) => num(obj(r[measure.key])[mo]) ?? 0));
    const top = Math.max(...values, 0) || 1;
    // A round axis maximum that splits into four round ticks.
    const power = 10 ** Math.floor(Math.log10(top));
    const yMax = [1, 2, 4, 6, 8, 10].map((f) => f * power).find((v) => v >= top) || top;
    const yOf = (v) => m.top + plotH - (Math.max(0, v) / yMax) * plotH;
    yGrid(svg, { ticks: 4, yMax, yOf, x1: m.left, x2: width - m.right, format: fmtCompact });
    const groupW = plotW / rows.length;
    const barW = Math.max(2, Math.min(18, (groupW * 0.8) / models.length));
    rows.forEach((r, gi) => {
      const gx = m.left + gi * groupW + (groupW - barW * models.length) / 2;
      const label = str(r.label, str(r.node));
      const group = s("g", { class: "bar-group", "data-node": str(r.node) });
      models.forEach((mo, bi) => {
        const v = num(obj(r[measure.key])[mo]);
        if (v === null) return;
        group.append(
          s(
            "rect",
            {
              x: gx + bi * barW,
              y: yOf(v),
              width: Math.max(1, barW - 1),
              height: Math.max(0, m.top + plotH - yOf(v)),
              fill: MODEL_COLOURS[bi % MODEL_COLOURS.length],
            },
            s("title", {}, `${label}, ${modelInfo(mo)[0]}: ${measure.format(v)} ${measure.unit}`),
          ),
        );
      });
      group.append(
        s(
          "text",
          {
            class: "tick-label",
            x: m.left + gi * groupW + groupW / 2,
            y: height - m.bottom + 16,
            "text-anchor": "middle",
          },
          // Words wrap onto up to three lines within the group's width.
          wrapWords(label, Math.max(4, Math.floor(groupW / 7)), 3).map((line, li) =>
            s("tspan", { x: m.left + gi * groupW + groupW / 2, dy: li ? 13 : 0 }, line),
          ),
          s("title", {}, label),
        ),
      );
      svg.append(group);
    });
    svg.append(
      s("line", {
        class: "axis-line",
        x1: m.left,
        x2: width - m.right,
        y1: m.top + plotH,
        y2: m.top + plotH,
      }),
    );
  }

  // ---------------------------------------------------------------- ideal path

  const SUMMARY_PARTS = [
    ["followed", "Followed the path", "#009e73"],
    ["on_path", "Still on the path", "#56b4e9"],
    ["deviated", "Deviated", "#e69f00"],
    ["stopped", "Stopped", "#d55e00"],
  ];

  function renderIdealPath() {
    const ideal = obj(DATA.ideal_path);
    const steps = list(ideal.steps)
      .slice()
      .sort((a, b) => (num(a.step) ?? 0) - (num(b.step) ?? 0));
    const chevrons = clear(byId("ideal-steps"));
    if (!steps.length) chevrons.append(h("li", {}, noData("the ideal path")));
    for (const step of steps) {
      const share = num(step.reached_share);
      chevrons.append(
        h(
          "li",
          { class: "chevron", "data-step": str(step.step) },
          h(
            "div",
            { class: "chevron-step" },
            `Step ${str(step.step, "?")} · ${stageLabel(step.stage)}`,
          ),
          h("div", { class: "chevron-label" }, str(step.label, str(step.touchpoint_id, DASH))),
          h(
            "div",
            { class: "chevron-reached" },
            `${fmtInt(step.reached)} reached · ${fmtPct(share)}`,
          ),
          h(
            "div",
            { class: "chevron-bar" },
            h("span", { style: { width: `${Math.min(100, Math.max(0, (share ?? 0) * 100))}%` } }),
          ),
        ),
      );
    }

    const summary = obj(ideal.summary);
    const box = clear(byId("ideal-summary"));
    const total = num(summary.journeys);
    if (total === null) {
      box.append(noData("the path summary"));
    } else {
      // The bar shows the four outcomes as shares of all journeys on the path.
      const bar = h("div", { class: "summary-bar", "aria-hidden": "true" });
      const items = h("dl", { class: "summary-items" });
      for (const [key, label, colour] of SUMMARY_PARTS) {
        const value = num(summary[key]);
        const share = total > 0 && value !== null ? value / total : null;
        if (share)
          bar.append(
            h("span", { style: { width: `${share * 100}%`, background: colour }, title: label }),
          );
        items.append(
          h(
            "div",
            {},
            h("span", { class: "swatch", style: { background: colour } }),
            h("dt", {}, label),
            h(
              "dd",
              { "data-summary": key },
              fmtInt(value),
              h("span", { class: "share" }, ` (${fmtPct(share)})`),
            ),
          ),
        );
      }
      items.append(
        h(
          "div",
          {},
          h("dt", {}, "Journeys"),
          h("dd", { "data-summary": "journeys" }, fmtInt(total)),
        ),
      );
      box.append(bar, items);
    }

    table(
      byId("deviations-table"),
      [
        ["Step", true],
        ["Expected", false],
        ["Went to instead", false],
        ["Kind", false],
        ["Journeys", true],
        ["Share", true],
        ["Converted", true],
      ],
      list(ideal.deviations).map((d) =>
        h(
          "tr",
          {},
          h("td", { class: "num" }, str(d.step, DASH)),
          h("td", {}, str(d.expected, DASH)),
          h("td", {}, str(d.actual, DASH)),
          h("td", {}, h("span", { class: "kind-tag" }, humanise(d.kind))),
          h("td", { class: "num" }, fmtInt(d.journeys)),
          h("td", { class: "num" }, fmtPct(d.share)),
          h("td", { class: "num" }, fmtInt(d.converted)),
        ),
      ),
      "No deviations recorded.",
    );
  }

  // ---------------------------------------------------------------- footer

  function renderFooter() {
    const footer = clear(byId("report-footer"));
    const marts = list(DATA.marts).map((m) => (typeof m === "object" ? str(m.name) : str(m)));
    footer.append(
      h(
        "p",
        {},
        "How these numbers were made: the pipeline built journeys from the web, email, social, " +
          "review and CRM event logs, validated them, and published the marts. This report read " +
          `the served marts of build ${str(DATA.build_id, DASH)} ` +
          `(run date ${str(DATA.run_date, DASH)}) ` +
          `from ${str(DATA.source, "the served warehouse")}`,
        marts.length ? ": " : ".",
        marts.length
          ? marts.flatMap((name, i) => [i ? ", " : "", h("code", {}, name)]).concat(["."])
          : null,
      ),
      h(
        "p",
        {},
        "Rates are computed in the marts; this page only formats them. Sankey, journey variants, " +
          "attribution and the ideal path cover all customers; the persona selector changes the " +
          "journey map, the funnel and drop-off over time.",
      ),
      h("p", {}, `Generated ${fmtDateTime(DATA.generated_at)}.`),
    );
  }

  // ---------------------------------------------------------------- wiring

  /** Everything that depends on the selected persona. */
  function renderPersona() {
    const view = currentView();
    safely("persona description", renderPersonaDescription);
    safely("key figures", () => renderKpis(view));
    safely("journey map", () => renderJourneyMap(view));
    safely("funnel", () => renderFunnel(view));
    safely("drop-off over time", () => renderDropoffOverTime(view));
    safely("periods compared", () => renderPeriodComparison(view));
  }

  function wireToggle(name, key, render) {
    for (const input of document.querySelectorAll(`input[name="${name}"]`)) {
      if (input.checked) state[key] = input.value;
      input.addEventListener("change", () => {
        if (!input.checked) return;
        state[key] = input.value;
        render();
      });
    }
  }

  // Each section draws on its own: a failure in one is logged and leaves the others intact.
  function safely(name, fn) {
    try {
      fn();
    } catch (err) {
      console.error(`cjm: could not draw ${name}`, err);
    }
  }

  safely("header", renderHeader);
  safely("alerts", renderAlerts);
  safely("persona selector", renderPersonaSelect);
  safely("persona views", renderPersona);
  wireToggle("sankey-level", "sankeyLevel", () => {
    safely("transitions", renderSankey);
    safely("variants", renderVariants);
  });
  wireToggle("attribution-level", "attributionLevel", () =>
    safely("attribution", renderAttribution),
  );
  wireToggle("attribution-measure", "attributionMeasure", () =>
    safely("attribution", renderAttribution),
  );
  for (const [id, key] of [
    ["range-from", "rangeFrom"],
    ["range-to", "rangeTo"],
  ]) {
    byId(id).addEventListener("change", (event) => {
      state[key] = event.target.value;
      // A start after the end (or an end before the start) moves the other end with it.
      if (state.rangeFrom > state.rangeTo) {
        if (key === "rangeFrom") state.rangeTo = state.rangeFrom;
        else state.rangeFrom = state.rangeTo;
      }
      const view = currentView();
      safely("drop-off over time", () => renderDropoffOverTime(view));
      safely("periods compared", () => renderPeriodComparison(view));
    });
  }
  safely("transitions", renderSankey);
  safely("variants", renderVariants);
  safely("attribution", renderAttribution);
  safely("ideal path", renderIdealPath);
  safely("footer", renderFooter);
  document.documentElement.dataset.rendered = "true";
})();
