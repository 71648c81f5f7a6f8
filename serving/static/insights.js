/* Journey insights: KPIs against the previous period, the trend, the content gap matrix,
   the journey map and a breakdown per channel, phase, role or item, from /v1/insights. */
"use strict";

(() => {
  const { el, api, problem, percent, phaseLabel, label } = NBA;
  const key = NBA.readKey();
  const $ = (id) => document.getElementById(id);
  let report = null;
  // A report reads the period's events from the whole store: minutes at 100,000 accounts
  // the first time (a worker then keeps it for 5 minutes).
  const REPORT_TIMEOUT_MS = 10 * 60 * 1000;

  const KPI_NAMES = {
    touchpoints: "Touchpoints", engaged_accounts: "Engaged accounts", downloads: "Downloads",
    registrations: "Registrations", responses: "Responses", exposures: "Exposures",
    click_through: "Click-through", dwell_minutes: "Dwell time (min)", purchases: "Purchases",
    won_revenue: "Won revenue", mean_deal: "Mean deal", renewals: "Renewals",
    renewal_revenue: "Renewal revenue", lead_quality: "Lead quality",
    pipeline_accounts: "Pipeline (accounts)", leads: "Leads", customers_at_start: "Customers at start",
    churns: "Churns", churn_rate: "Churn rate", renewal_rate: "Renewal rate",
  };
  const RATES = new Set(["click_through", "lead_quality", "churn_rate", "renewal_rate"]);
  // KPIs where less is better: a fall is shown as good news.
  const LOWER_IS_BETTER = new Set(["churns", "churn_rate"]);

  function number(v, digits = 0) {
    if (v === null || v === undefined) return "–";
    return Number(v).toLocaleString("en-GB", { maximumFractionDigits: digits });
  }
  function rate(v) {
    if (v === null || v === undefined) return "–";
    return (v * 100).toFixed(1) + " %";
  }
  function interval(low, high) {
    if (low === null || low === undefined) return "";
    return ` [${rate(low)}, ${rate(high)}]`;
  }

  function setState(state, text, options = {}) {
    NBA.setState(state, text, { ...options, onRetry: load, shown: ["ready"] });
  }

  async function load() {
    if (!key) {
      setState("no-key", "No key. Open this page as …/insights#key=<a key with insights:read>.",
        { kind: "problem" });
      return;
    }
    const query = new URLSearchParams({ every: $("every").value });
    if ($("from").value) query.set("from", $("from").value);
    if ($("to").value) query.set("to", $("to").value);
    setState("loading", "Computing insights over the period (a large store takes minutes)…");
    try {
      report = await api("/v1/insights?" + query.toString(), key,
        { timeoutMs: REPORT_TIMEOUT_MS });
      render();
      setState("ready", "");
    } catch (err) {
      const p = problem(err, "insights");
      setState(p.state, p.text, { kind: "problem", retry: p.retry });
    }
  }

  function table(id, headers, rows) {
    const t = $(id);
    t.tHead.replaceChildren(el("tr", {}, headers.map((h, i) =>
      el("th", { scope: "col", class: i === 0 ? "text" : null }, h))));
    t.tBodies[0].replaceChildren(...rows.map((cells) => el("tr", {}, cells.map((c, i) =>
      c instanceof Node ? c : el("td", { class: i === 0 ? "text" : null }, c)))));
  }

  function render() {
    const period = report.period;
    $("summary").textContent = `${period.from.slice(0, 10)} to ${period.to.slice(0, 10)} ` +
      `(exclusive) · against the ${report.previous_period.from.slice(0, 10)} period`;
    if (!$("from").value) $("from").value = period.from.slice(0, 10);
    if (!$("to").value) $("to").value = period.to.slice(0, 10);
    $("notes").replaceChildren(...report.notes.map((n) => el("li", {}, "Note: " + n)));
    renderKpis();
    renderTrend();
    renderGaps();
    renderJourney();
    renderBy();
  }

  function renderKpis() {
    const cards = [];
    for (const [group, kpis] of Object.entries(report.kpis)) {
      for (const [name, k] of Object.entries(kpis)) {
        const isRate = RATES.has(name);
        const show = isRate ? rate : (v) => number(v, name === "dwell_minutes" ? 1 : 0);
        let change = "";
        let direction = null;
        if (k.value !== null && k.previous !== null) {
          const diff = k.value - k.previous;
          const better = LOWER_IS_BETTER.has(name) ? diff < 0 : diff > 0;
          direction = diff === 0 ? null : better ? "up" : "down";
          change = (diff > 0 ? "+" : "") + (isRate ? (diff * 100).toFixed(1) + " points" : number(diff, 1)) +
            " vs " + show(k.previous);
        }
        cards.push(el("div", { class: "kpi", dataset: { kpi: name, group } },
          el("div", { class: "name" }, `${KPI_NAMES[name] || name} (${group})`),
          el("div", { class: "value" }, show(k.value)),
          isRate && k.low !== null ? el("div", { class: "change muted" }, "95 %" + interval(k.low, k.high)) : null,
          el("div", { class: "change " + (direction || "muted") }, change || "no previous value")));
      }
    }
    $("kpis").replaceChildren(...cards);
  }

  function renderTrend() {
    // Bars per day: a bucket cut by the period's start or end is shorter.
    const max = Math.max(1, ...report.trend.map((r) => r.touchpoints / r.days));
    table("trend", ["From", "Days", "Touchpoints", "Responses", "Exposures", "Click-through (95 %)",
      "Purchases", "Won revenue", "Churns", "Renewals"], report.trend.map((r) => [
      r.from.slice(0, 10), number(r.days),
      el("td", {}, number(r.touchpoints), el("span", { class: "bar", "aria-hidden": "true",
        style: { width: Math.round(80 * r.touchpoints / r.days / max) + "px" } })),
      number(r.responses), number(r.exposures),
      rate(r.click_through) + interval(r.click_through_low, r.click_through_high),
      number(r.purchases), number(r.won_revenue), number(r.churns), number(r.renewals),
    ]));
  }

  function renderGaps() {
    const g = report.content_gaps;
    $("gaps-legend").textContent = `empty: no item fits the cell; unshown: items fit, none shown; ` +
      `thin: fewer than ${g.min_exposures} exposures; weak: the response rate's interval lies below ` +
      `${g.weak_share} × the overall rate, or uplift over no action is not above 0; unassigned: ` +
      `no CRM phase or no role known. Uplift "unknown" without control exposures in the cell.`;
    table("gaps", ["Phase", "Role", "Items available", "Items shown", "Exposures",
      "Response rate (95 %)", "Uplift (95 %)", "Status"], g.cells.map((c) => [
      phaseLabel(c.phase), label("roles", c.role), number(c.items_available), number(c.items_shown),
      number(c.exposures),
      c.exposures ? rate(c.response_rate) + interval(c.response_rate_low, c.response_rate_high) : "–",
      c.uplift === null ? "unknown" : `${(c.uplift * 100).toFixed(1)} points [${(c.uplift_low * 100).toFixed(1)}, ${(c.uplift_high * 100).toFixed(1)}]`,
      el("td", { class: "status-" + c.status, dataset: { status: c.status } }, c.status),
    ]));
    $("gaps").tBodies[0].querySelectorAll("tr").forEach((tr, i) => {
      tr.dataset.phase = g.cells[i].phase;
      tr.dataset.role = g.cells[i].role;
    });
  }

  function renderJourney() {
    const j = report.journey.phases;
    table("journey", ["Phase", "Entries", "Moved on", "Drop-off", "Stayed", "Dwell days (median)",
      "Accounts", "Churn rate (95 %)", "Renewal rate (95 %)"], j.map((p) => [
      phaseLabel(p.phase), number(p.entries),
      p.entries ? rate(p.moved_on_share) + interval(p.moved_on_share_low, p.moved_on_share_high) : "–",
      p.entries ? rate(p.drop_off_share) : "–", number(p.stayed),
      p.dwell_days_median === null ? "–" : number(p.dwell_days_median, 1), number(p.accounts),
      rate(p.churn_rate) + interval(p.churn_rate_low, p.churn_rate_high),
      rate(p.renewal_rate) + interval(p.renewal_rate_low, p.renewal_rate_high),
    ]));
  }

  function renderBy() {
    const dimension = $("by-dimension").value;
    const rows = report.by[dimension].slice(0, 50);
    const name = (r) => dimension === "phase" ? phaseLabel(r.phase)
      : dimension === "role" ? label("roles", r.role)
      : dimension === "channel" ? label("channels", r.channel)
      : `${r.content_id} · ${r.title}`;
    table("by", ["Value", "Touchpoints", "Accounts", "Downloads", "Registrations", "Responses",
      "Exposures", "Click-through (95 %)", "Dwell (min)", "Won revenue"], rows.map((r) => [
      name(r), number(r.touchpoints), number(r.engaged_accounts), number(r.downloads),
      number(r.registrations), number(r.responses), number(r.exposures),
      r.exposures ? rate(r.click_through) + interval(r.click_through_low, r.click_through_high) : "–",
      number(r.dwell_minutes, 1), number(r.won_revenue),
    ]));
  }

  $("period").addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  $("by-dimension").addEventListener("change", () => { if (report) renderBy(); });
  load();
})();
