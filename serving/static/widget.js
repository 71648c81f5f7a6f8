/* The CRM account widget: phase track, churn gauge, next actions with Accept / Dismiss, last
   touchpoints. Reads the widget key from #key=... and the account id from data-account-id. */
"use strict";

(() => {
  const { el, api, problem, percent, label, phaseLabel, config, money, within, person } = NBA;
  const accountId = document.body.dataset.accountId;
  const key = NBA.readKey();
  const path = "/v1/accounts/" + encodeURIComponent(accountId);
  const $ = (id) => document.getElementById(id);

  /* state: loading | ready | cold-start | no-key | bad-key | forbidden | unreachable |
     not-ready | error (data-state on <body>, for CSS hooks and tests). */
  function setState(state, text, options = {}) {
    NBA.setState(state, text, { ...options, onRetry: load, shown: ["ready", "cold-start"] });
  }

  async function load() {
    if (!key) {
      setState("no-key",
        "No widget key. The CRM must open this page as …/widget/accounts/<account>#key=<widget key>.",
        { kind: "problem" });
      return;
    }
    setState("loading", "Loading recommendations…");
    try {
      const [recs, touchpoints] = await Promise.all([
        api(path + "/recommendations?k=5", key),
        // The timeline is secondary: without it the widget still shows the recommendations.
        api(path + "/touchpoints?limit=10", key).catch(() => null),
      ]);
      render(recs, touchpoints);
    } catch (err) {
      const p = problem(err, "widget");
      setState(p.state, p.text, { kind: "problem", retry: p.retry });
    }
  }

  function render(recs, touchpoints) {
    const missing = recs.missing || {};
    renderTitle(recs);
    renderChanges(recs.since_last_visit);
    renderWhyNow(recs.why_now || []);
    renderJourney(recs, missing.phase);
    renderChurn(recs, missing.risk);
    renderOutcomes(recs.outcomes || {}, recs.horizon_days || {});
    renderActions(recs.actions, missing.next_actions, recs.value_unit);
    renderTimeline(touchpoints);
    $("cold-badge").hidden = !recs.cold_start;
    $("cold-badge").textContent = recs.known === false ? "Unknown account" : "New account";
    if (recs.known === false) {
      setState("cold-start",
        "Unknown account: the service holds no data for this id (check it, or load the " +
        "account's data). Shown: the phases of an account with no history and the most " +
        "popular content for the likeliest one.", { kind: "note" });
    } else if (recs.cold_start) {
      setState("cold-start",
        "New account: no history yet. The phase is that of an account with no history and " +
        "the actions are the most popular content for it.", { kind: "note" });
    } else {
      setState("ready", "");
    }
  }

  /* The company's name with its id beside it; the id alone when the store has no name. */
  function renderTitle(recs) {
    const name = recs.account_name;
    $("title").replaceChildren(...(name
      ? [el("span", { id: "account-name" }, name), " ",
        el("span", { class: "mono muted", id: "account-id" }, accountId)]
      : ["Account ", el("span", { class: "mono", id: "account-id" }, accountId)]));
    document.title = "Next best action · " + (name ? name + " (" + accountId + ")"
      : "account " + accountId);
  }

  /* What happened since actions were last recommended for the account. */
  function renderChanges(changes) {
    const box = $("changes");
    box.hidden = !changes;
    if (changes) {
      box.textContent = `Since the last recommendation (${NBA.date(changes.since)}): ` +
        changes.text + ".";
    }
  }

  /* What changed that makes this the moment to act (timing signals, most urgent first). */
  function renderWhyNow(signals) {
    const box = $("why-now");
    box.hidden = signals.length === 0;
    box.querySelector("ul").replaceChildren(...signals.map((s) =>
      el("li", { dataset: { signal: s.signal } }, s.text)));
  }

  /* A part whose model is not served: a note saying so and why, instead of the part. */
  function missingNote(id, what, why) {
    return el("p", { class: "muted missing", id }, `${what} is not available: ${why}.`);
  }

  function renderJourney(recs, missing) {
    if (missing) {
      $("journey").replaceChildren(missingNote("phase-missing", "The journey phase", missing));
      reasons($("phase-reasons"), []);
      return;
    }
    const probabilities = recs.phase_probabilities || {};
    const names = config.phases ? config.phases.map((p) => p.name) : Object.keys(probabilities);
    $("journey").replaceChildren(...names.map((name) => {
      const p = probabilities[name] || 0;
      const current = name === recs.phase;
      const phase = (config.phases || []).find((x) => x.name === name);
      return el("li", {
        class: "phase", "aria-current": current ? "step" : null, dataset: { phase: name },
        title: phase && phase.description ? phase.description : null,
      },
      el("span", { class: "name" }, phaseLabel(name)),
      el("span", { class: "prob" }, percent(p)),
      el("span", { class: "bar", "aria-hidden": "true" },
        el("span", { style: { width: Math.round(p * 100) + "%" } })),
      current ? el("span", { class: "sr-only" }, " (predicted phase)") : null);
    }));
    reasons($("phase-reasons"), recs.phase_reasons);
  }

  function point(p) {
    const angle = Math.PI * (1 - p);
    return [70 + 56 * Math.cos(angle), 70 - 56 * Math.sin(angle)];
  }

  function arc(from, to, cls) {
    const [x0, y0] = point(from);
    const [x1, y1] = point(to);
    return svg("path", { class: "seg " + cls, d: `M${x0} ${y0} A56 56 0 0 1 ${x1} ${y1}` });
  }

  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    return node;
  }

  function renderChurn(recs, missing) {
    const box = $("churn");
    if (missing) {
      box.replaceChildren(missingNote("churn-missing", "Churn risk", missing));
      reasons($("churn-reasons"), []);
      return;
    }
    if (recs.churn_risk === null || recs.churn_risk === undefined) {
      box.replaceChildren(el("p", { class: "muted", id: "churn-none" },
        "Not enough history to estimate churn risk for this account."));
      reasons($("churn-reasons"), []);
      return;
    }
    const risk = recs.churn_risk;
    const band = recs.churn_band;
    const bands = config.bands || { medium: 0.15, high: 0.4 };
    const gauge = svg("svg", { class: "gauge", viewBox: "0 0 140 80", "aria-hidden": "true" });
    gauge.append(arc(0, bands.medium, "low"), arc(bands.medium, bands.high, "medium"),
      arc(bands.high, 1, "high"));
    const [nx, ny] = point(Math.min(Math.max(risk, 0), 1));
    const needle = svg("line", { class: "needle", x1: 70, y1: 70,
      x2: 70 + (nx - 70) * 0.82, y2: 70 + (ny - 70) * 0.82 });
    gauge.append(needle, svg("circle", { class: "hub", cx: 70, cy: 70, r: 5 }));
    box.replaceChildren(
      el("div", { role: "img", "aria-label": `Churn risk ${percent(risk)}, ${band} band` }, gauge),
      el("div", {},
        el("div", { class: "risk-value", id: "churn-value" }, percent(risk)),
        el("span", { class: "band " + band, id: "churn-band" }, band + " risk"),
        el("p", { class: "muted", id: "churn-horizon" },
          ["chance of churning", within((recs.horizon_days || {}).churn)]
            .filter(Boolean).join(" "))));
    reasons($("churn-reasons"), recs.churn_reasons);
  }

  function reasons(list, items) {
    list.replaceChildren(...(items || []).map((r) => el("li", {}, r.text)));
    list.hidden = !(items && items.length);
  }

  /* Every binary outcome model served except churn (the gauge shows that one). */
  function renderOutcomes(outcomes, horizons) {
    const names = Object.keys(outcomes).filter((name) => name !== "churn").sort();
    $("outcomes").replaceChildren(...names.map((name) => el("li", { dataset: { outcome: name } },
      el("span", { class: "name" }, name.replace(/_/g, " ")), " ",
      el("span", { class: "value" }, percent(outcomes[name])),
      horizons[name] ? el("span", { class: "muted" }, " " + within(horizons[name])) : null)));
    $("outcomes-section").hidden = names.length === 0;
  }

  function renderActions(actions, missing, unit) {
    $("actions").replaceChildren(...actions.map((action) => actionCard(action, unit)));
    $("no-actions").hidden = actions.length > 0 || Boolean(missing);
    $("actions-missing").hidden = !missing;
    if (missing) {
      $("actions-missing").textContent = `Next best actions are not available: ${missing}.`;
    }
  }

  function actionCard(action, unit) {
    const titleId = "action-" + action.recommendation_id;
    const who = person(action.contact_name, action.contact_id, action.role);
    const card = el("li", {
      class: "action", "aria-labelledby": titleId,
      dataset: { recommendationId: action.recommendation_id, contentId: action.content_id },
    },
    el("h3", { id: titleId }, action.title),
    el("p", { class: "meta" },
      [label("contentTypes", action.content_type), label("channels", action.channel)]
        .join(" · ")),
    who ? el("p", { class: "meta who" }, "For ", el("strong", {}, who)) : null,
    el("p", { class: "meta" },
      "Expected value ", el("span", { class: "value" }, money(action.expected_value, unit)),
      " · response chance ", percent(action.p_response)),
    action.reasons.length
      ? el("ul", { class: "reasons", "aria-label": "Why this action" },
        action.reasons.map((r) => el("li", {}, r.text)))
      : null);
    const accept = el("button", { type: "button", class: "primary accept",
      "aria-label": "Accept: " + action.title }, "Accept");
    const dismiss = el("button", { type: "button", class: "dismiss",
      "aria-label": "Dismiss: " + action.title }, "Dismiss");
    const buttons = el("div", { class: "buttons" }, accept, dismiss);
    accept.addEventListener("click", () => feedback(card, action, "accepted", buttons));
    dismiss.addEventListener("click", () => feedback(card, action, "dismissed", buttons));
    card.append(buttons);
    return card;
  }

  async function feedback(card, action, outcome, buttons) {
    for (const b of buttons.querySelectorAll("button")) b.disabled = true;
    const old = buttons.querySelector(".error");
    if (old) old.remove();
    try {
      await api("/v1/feedback", key, {
        method: "POST", body: { recommendation_id: action.recommendation_id, outcome },
      });
    } catch (err) {
      for (const b of buttons.querySelectorAll("button")) b.disabled = false;
      buttons.append(el("span", { class: "error", role: "alert" },
        "Not saved: " + problem(err, "widget").text));
      return;
    }
    if (outcome === "accepted") {
      card.classList.add("accepted");
      card.dataset.outcome = "accepted";
      buttons.replaceChildren(el("span", { class: "done" }, "✓ Accepted"));
      announce("Accepted: " + action.title);
      return;
    }
    // Dismissed: the action leaves the list; keyboard focus moves to the next one's Accept.
    const next = card.nextElementSibling || card.previousElementSibling;
    card.remove();
    const remaining = $("actions").children.length;
    $("no-actions").hidden = remaining > 0;
    announce(`Dismissed: ${action.title}. ${remaining} action${remaining === 1 ? "" : "s"} left.`);
    const target = next && next.querySelector("button");
    (target || $("actions-title")).focus();
  }

  function announce(text) {
    $("action-news").textContent = text;
  }

  function renderTimeline(data) {
    const items = data && data.touchpoints ? data.touchpoints : [];
    $("timeline").replaceChildren(...items.map((t) => el("li", { dataset: { eventId: t.event_id } },
      el("time", { datetime: t.ts }, NBA.date(t.ts)),
      el("div", {},
        el("strong", {}, label("channels", t.channel)), " · ", label("eventTypes", t.event_type),
        t.content_title ? " · " + t.content_title : "",
        t.contact_id ? el("span", { class: "muted who" },
          " · " + person(t.contact_name, t.contact_id, t.role)) : null))));
    $("no-touchpoints").hidden = items.length > 0;
    $("no-touchpoints").textContent = data ? "No touchpoints recorded yet."
      : "The touchpoint timeline could not be loaded.";
  }

  load();
})();
