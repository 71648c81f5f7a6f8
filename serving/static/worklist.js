/* The rep's worklist: accounts ranked by the value of their best next action, filterable by
   phase and churn band, sortable by any column; each row opens the account widget. */
"use strict";

(() => {
  const { el, api, problem, percent, phaseLabel, phaseIndex, label, config, money, person } = NBA;
  const repId = document.body.dataset.repId;
  const key = NBA.readKey();
  const $ = (id) => document.getElementById(id);
  let items = [];
  let missing = {};  // answer part -> why no model serves it (from the worklist answer)
  let unit = null;  // the unit of values (from the worklist answer)
  let sort = { column: "value", direction: "descending" };

  function setState(state, text, options = {}) {
    NBA.setState(state, text, { ...options, onRetry: load, shown: ["ready"] });
  }

  async function load() {
    if (!key) {
      setState("no-key", "No key. Open this page as …/reps/<rep>#key=<your rep key>.",
        { kind: "problem" });
      return;
    }
    setState("loading", "Loading your accounts…");
    try {
      const data = await api("/v1/reps/" + encodeURIComponent(repId) + "/actions?limit=500", key);
      // The server's order is the ranking; it breaks ties between equal sort keys.
      items = data.items.map((item, rank) => ({ ...item, rank }));
      $("summary").textContent = `${data.accounts} accounts · as of ${NBA.date(data.as_of)}`;
      missing = data.missing || {};
      unit = data.value_unit || null;
      $("value-unit").textContent = "(" + (unit || "points") + ")";
      // A part no model serves: one note for the page instead of a blank column.
      const notes = Object.entries({ phase: "Phase", risk: "Churn risk",
        next_actions: "Next best actions" })
        .filter(([part]) => missing[part])
        .map(([part, what]) => `${what} not available: ${missing[part]}.`);
      $("missing").textContent = notes.join(" ");
      $("missing").hidden = notes.length === 0;
      setState("ready", "");
      render();
    } catch (err) {
      const p = problem(err, "rep");
      setState(p.state, p.text, { kind: "problem", retry: p.retry });
    }
  }

  /* The value a column sorts by; missing values sort last in either direction. */
  function sortKey(item, column) {
    switch (column) {
      case "account": return (item.account_name || item.account_id).toLowerCase();
      case "phase": return phaseIndex(item.phase);
      case "churn": return item.churn_risk;
      case "action": return item.action ? item.action.title.toLowerCase() : null;
      default: return item.action ? item.action.expected_value : null;
    }
  }

  function compare(a, b) {
    const ka = sortKey(a, sort.column);
    const kb = sortKey(b, sort.column);
    if (ka === null && kb === null) return a.rank - b.rank;
    if (ka === null) return 1;
    if (kb === null) return -1;
    const order = ka < kb ? -1 : ka > kb ? 1 : 0;
    return (sort.direction === "ascending" ? order : -order) || a.rank - b.rank;
  }

  function visible() {
    const phase = $("filter-phase").value;
    const band = $("filter-band").value;
    return items.filter((item) => (!phase || item.phase === phase) &&
      (!band || (item.churn_band || "none") === band)).sort(compare);
  }

  function widgetUrl(accountId) {
    return "/widget/accounts/" + encodeURIComponent(accountId) + "#key=" + encodeURIComponent(key);
  }

  function row(item) {
    const action = item.action;
    // The company's name with its id beside it; the id alone where the store has no name.
    const link = el("a", { href: widgetUrl(item.account_id) },
      item.account_name || item.account_id);
    const tr = el("tr", { dataset: { accountId: item.account_id } },
      el("td", { "data-label": "Account", class: item.account_name ? "account" : "account mono" },
        link, item.account_name
          ? el("span", { class: "muted mono account-id" }, " " + item.account_id) : null,
        (item.why_now || []).length
          ? el("div", { class: "muted why-now" }, "Why now: " +
            item.why_now.map((s) => s.text).join("; "))
          : null),
      el("td", { "data-label": "Phase", dataset: { phase: item.phase || "none" } }, item.phase
        ? [phaseLabel(item.phase),
          el("span", { class: "muted nowrap" }, " " + percent(item.phase_probability))]
        : el("span", { class: "muted" }, missing.phase ? "not available" : "unknown")),
      el("td", { "data-label": "Churn risk", class: "num nowrap", dataset: { band: item.churn_band || "none" } },
        item.churn_band
          ? [percent(item.churn_risk), " ", el("span", { class: "band " + item.churn_band },
            item.churn_band)]
          : el("span", { class: "muted" }, missing.risk ? "not available" : "no estimate")),
      el("td", { "data-label": "Best action" }, action
        ? [action.title, el("span", { class: "muted who" }, " · " +
          [label("channels", action.channel),
            person(action.contact_name, action.contact_id, action.role) || null]
            .filter(Boolean).join(" · "))]
        : el("span", { class: "muted" },
          missing.next_actions ? "not available" : "none passes the rules now")),
      el("td", { "data-label": "Value", class: "num value" },
        action ? money(action.expected_value, unit) : "–"),
      el("td", { "data-label": "Reasons", class: "why" }, action && action.reasons.length
        ? el("ul", { class: "reasons" }, action.reasons.map((r) => el("li", {}, r.text)))
        : ""));
    // The whole row opens the widget; the account link is the keyboard path to it.
    tr.addEventListener("click", (event) => {
      if (!event.target.closest("a")) location.assign(link.href);
    });
    return tr;
  }

  function render() {
    const rows = visible();
    document.querySelector("#worklist tbody").replaceChildren(...rows.map(row));
    $("empty").hidden = rows.length > 0;
    $("count").textContent = `${rows.length} of ${items.length} accounts shown`;
    for (const th of document.querySelectorAll("th[data-column]")) {
      th.setAttribute("aria-sort", th.dataset.column === sort.column ? sort.direction : "none");
    }
    $("sort-by").value = sort.column + ":" + sort.direction;
  }

  function setSort(column, direction) {
    sort = { column, direction };
    render();
  }

  for (const phase of config.phases || []) {
    $("filter-phase").append(el("option", { value: phase.name }, phase.label));
  }
  $("filter-phase").addEventListener("change", render);
  $("filter-band").addEventListener("change", render);
  $("sort-by").addEventListener("change", (event) => {
    const [column, direction] = event.target.value.split(":");
    setSort(column, direction);
  });
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  for (const th of document.querySelectorAll("th[data-column]")) {
    th.querySelector("button").addEventListener("click", () => {
      const column = th.dataset.column;
      // A new column starts in its natural order: names and phases ascending, numbers descending.
      const first = column === "account" || column === "phase" || column === "action"
        ? "ascending" : "descending";
      const direction = sort.column !== column ? first
        : sort.direction === "ascending" ? "descending" : "ascending";
      setSort(column, direction);
    });
  }
  load();
})();
