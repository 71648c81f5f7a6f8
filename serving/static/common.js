/* Shared by the pages (widget, worklist, insights): the key from the URL fragment, calls to the /v1 API
   with it, labels from the taxonomy the server put into data-config, and safe DOM building
   (text only, never innerHTML, so ids and titles from the data cannot inject markup). */
"use strict";

const NBA = (() => {
  const config = JSON.parse(document.body.dataset.config || "{}");
  const TIMEOUT_MS = 15000;

  /* The API key travels in the fragment (#key=...): browsers never send fragments to servers,
     so it is in no access log and no Referer header. */
  function readKey() {
    return new URLSearchParams(location.hash.slice(1)).get("key") || "";
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /* JSON from the API, or an ApiError: status 0 when the service cannot be reached. */
  async function api(path, key, options = {}) {
    const headers = { Accept: "application/json", Authorization: "Bearer " + key };
    if (options.body) headers["Content-Type"] = "application/json";
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), options.timeoutMs || TIMEOUT_MS);
    let response;
    try {
      response = await fetch(path, {
        method: options.method || "GET",
        body: options.body ? JSON.stringify(options.body) : undefined,
        headers,
        cache: "no-store",
        credentials: "omit",
        signal: abort.signal,
      });
    } catch (err) {
      throw new ApiError(0, "The recommendation service cannot be reached.");
    } finally {
      clearTimeout(timer);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) {
      const detail = body && typeof body.detail === "string" ? body.detail : response.statusText;
      throw new ApiError(response.status, detail);
    }
    return body;
  }

  /* The page state for an API error: what to show and whether a retry can help. */
  function problem(err, what) {
    const status = err instanceof ApiError ? err.status : -1;
    if (status === 0) {
      return { state: "unreachable", retry: true,
        text: "The recommendation service cannot be reached. Check the connection and retry." };
    }
    if (status === 401) {
      return { state: "bad-key", retry: false,
        text: "The key in this page's address is wrong or was revoked. Ask your CRM admin for a " +
          "new " + what + " key." };
    }
    if (status === 403) {
      return { state: "forbidden", retry: false, text: "This key may not do that: " + err.message };
    }
    if (status === 503) {
      return { state: "not-ready", retry: true,
        text: "The service is starting and has no models loaded yet. Retry in a moment." };
    }
    return { state: "error", retry: true,
      text: "Something went wrong" + (err.message ? ": " + err.message : ".") };
  }

  function humanize(name) {
    const text = String(name || "").replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function label(kind, name) {
    const labels = config[kind] || {};
    return labels[name] || humanize(name);
  }

  function phaseLabel(name) {
    const phase = (config.phases || []).find((p) => p.name === name);
    return phase ? phase.label : humanize(name);
  }

  function phaseIndex(name) {
    const i = (config.phases || []).findIndex((p) => p.name === name);
    return i < 0 ? 999 : i;
  }

  function percent(p) {
    if (p === null || p === undefined) return "–";
    const value = p * 100;
    return (value > 0 && value < 1 ? "<1" : String(Math.round(value))) + " %";
  }

  /* A value in the service's unit: "€2.74" for a currency Intl knows, "2.74 XYZ" for
     another code, "2.74 points" without a currency (NBA_CURRENCY unset). */
  function money(value, unit) {
    if (value === null || value === undefined) return "–";
    const u = unit || config.valueUnit || "points";
    if (u !== "points") {
      try {
        return new Intl.NumberFormat("en-GB", { style: "currency", currency: u,
          minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(value);
      } catch (err) {
        return value.toFixed(2) + " " + u;
      }
    }
    return value.toFixed(2) + " points";
  }

  /* "within 90 days" from a model's declared horizon; "" when it declared none. */
  function within(days) {
    if (!days) return "";
    return "within " + days + (days === 1 ? " day" : " days");
  }

  /* Who an action or touchpoint is for: "Jane Doe, IT" (the id where the name is
     missing; the role alone, "IT", for a contact the store knows only by role). */
  function person(name, id, roleName) {
    const role = roleName ? label("roles", roleName) : null;
    return [name || id || null, role].filter(Boolean).join(", ");
  }

  const dateFormat = new Intl.DateTimeFormat("en-GB", {
    day: "numeric", month: "short", year: "numeric", timeZone: "UTC",
  });

  function date(iso) {
    return dateFormat.format(new Date(iso));
  }

  /* el("li", {class: "x", dataset: {id: 1}}, "text", child) */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "dataset") Object.assign(node.dataset, value);
      // Through the CSSOM: style="" attributes are inline styles, which the CSP blocks.
      else if (name === "style") Object.assign(node.style, value);
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /* The page's state: data-state on <body> (for CSS hooks and tests), the status line with
     a spinner while loading and a Retry button calling `retry` where it helps; the content
     shows in the states `shown` lists. */
  function setState(state, text, options = {}) {
    document.body.dataset.state = state;
    const status = document.getElementById("status");
    status.className = "status" + (options.kind ? " " + options.kind : "");
    status.replaceChildren();
    if (state === "loading") status.append(el("span", { class: "spinner", "aria-hidden": "true" }));
    if (text) status.append(el("span", { id: "status-text" }, text));
    if (options.retry && options.onRetry) {
      status.append(el("button", { type: "button", id: "retry", onclick: options.onRetry }, "Retry"));
    }
    document.getElementById("content").hidden = !(options.shown || ["ready"]).includes(state);
  }

  return { config, readKey, api, ApiError, problem, label, phaseLabel, phaseIndex, percent,
    date, el, humanize, money, within, person, setState };
})();
