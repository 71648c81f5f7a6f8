"""The CRM account widget in a real browser (Debian Chromium via Playwright) against a live
``nba serve``: what it shows for a known account, Accept and Dismiss, the cold-start,
wrong-key, missing-key, loading and unreachable states, its size and its framing policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from playwright.sync_api import Browser, Page, Route, expect
from sqlalchemy import select

from serving.store.tables import Feedback
from tests.utils.browser import (
    LiveServer,
    alive_accounts,
    live_server,
    pytestmark_browser,
    save_screenshot,
)
from tests.utils.registry import TrainedRegistry

pytestmark = pytestmark_browser

N_ACCOUNTS = 12
MAX_PAGE_BYTES = 100 * 1024
WIDGET_ASSETS = ("common.js", "widget.js", "widget.css")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, trained_registry: TrainedRegistry
) -> Iterator[LiveServer]:
    accounts = alive_accounts(trained_registry)["account_id"].head(N_ACCOUNTS).tolist()
    with live_server(tmp_path_factory.mktemp("widget"), trained_registry, accounts, []) as live:
        yield live


@pytest.fixture(scope="module")
def known_account(server: LiveServer) -> str:
    """A loaded account with at least three actions and several touchpoints."""
    headers = {"Authorization": f"Bearer {server.keys['admin']}"}
    counts = server.data.touchpoints["account_id"].astype(str).value_counts()
    for account in sorted(counts[counts >= 10].index):
        body = httpx.get(
            f"{server.base_url}/v1/accounts/{account}/recommendations",
            params={"k": 5},
            headers=headers,
            timeout=30,
        ).json()
        if len(body["actions"]) >= 3 and body["churn_risk"] is not None:
            return str(account)
    raise AssertionError("no loaded account has three actions")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 360, "height": 900})
    p = context.new_page()
    yield p
    context.close()


def percent(p: float) -> str:
    """The widget's rounding of a probability."""
    return "<1 %" if 0 < p * 100 < 1 else f"{round(p * 100)} %"


def open_widget(page: Page, server: LiveServer, account: str) -> dict[str, Any]:
    """Open the widget with the widget key; returns the recommendations the page received."""
    with page.expect_response(lambda r: "/recommendations" in r.url) as info:
        page.goto(server.url(f"/widget/accounts/{account}", key="widget:crm"))
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    body: dict[str, Any] = info.value.json()
    return body


def feedback_outcomes(server: LiveServer, recommendation_id: str) -> list[str]:
    store = server.store()
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(Feedback.outcome).where(Feedback.recommendation_id == recommendation_id)
            ).all()
    finally:
        store.dispose()
    return [r[0] for r in rows]


def test_the_widget_shows_phase_churn_actions_and_touchpoints(
    page: Page, server: LiveServer, known_account: str, shots: Path
) -> None:
    recs = open_widget(page, server, known_account)

    phases = page.locator("#journey li.phase")
    expect(phases).to_have_count(len(recs["phase_probabilities"]))
    current = page.locator('#journey li[aria-current="step"]')
    expect(current).to_have_count(1)
    expect(current).to_have_attribute("data-phase", recs["phase"])
    expect(current.locator(".prob")).to_have_text(
        percent(recs["phase_probabilities"][recs["phase"]])
    )
    expect(page.locator("#churn-value")).to_have_text(percent(recs["churn_risk"]))
    expect(page.locator("#churn-band")).to_have_text(f"{recs['churn_band']} risk")
    expect(page.locator("#churn [role=img]")).to_have_attribute(
        "aria-label", f"Churn risk {percent(recs['churn_risk'])}, {recs['churn_band']} band"
    )
    expect(page.locator("#churn-reasons li")).to_have_count(len(recs["churn_reasons"]))

    cards = page.locator("#actions li.action")
    expect(cards).to_have_count(len(recs["actions"]))
    assert recs["value_unit"] == "points"  # no NBA_CURRENCY
    for i, action in enumerate(recs["actions"]):
        card = cards.nth(i)
        expect(card).to_have_attribute("data-recommendation-id", action["recommendation_id"])
        expect(card.locator("h3")).to_have_text(action["title"])
        expect(card.locator(".value")).to_have_text(f"{action['expected_value']:.2f} points")
        expect(card.locator(".reasons li")).to_have_text([r["text"] for r in action["reasons"]])
        expect(card.get_by_role("button", name=f"Accept: {action['title']}")).to_be_visible()
        expect(card.get_by_role("button", name=f"Dismiss: {action['title']}")).to_be_visible()

    touchpoints = server.data.touchpoints
    mine = touchpoints[touchpoints["account_id"] == known_account].sort_values("ts")
    items = page.locator("#timeline li")
    expect(items).to_have_count(min(10, len(mine)))
    latest = mine.iloc[-1]
    expect(items.first).to_have_attribute("data-event-id", str(latest["event_id"]))
    expect(items.first.locator("time")).to_have_text(
        f"{latest['ts'].day} {latest['ts'].strftime('%b %Y')}"
    )

    # readable at 360 px: nothing wider than the frame
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    first_paint_ms = page.evaluate(
        "performance.getEntriesByName('first-contentful-paint')[0].startTime"
    )
    assert first_paint_ms < 1000
    save_screenshot(page, shots, "widget-known-account", readme="widget")


def test_accept_by_keyboard_posts_feedback_that_is_stored(
    page: Page, server: LiveServer, known_account: str, shots: Path
) -> None:
    recs = open_widget(page, server, known_account)
    action = recs["actions"][0]
    accept = page.get_by_role("button", name=f"Accept: {action['title']}")
    accept.focus()
    with page.expect_response(lambda r: r.url.endswith("/v1/feedback")) as posted:
        page.keyboard.press("Enter")
    assert posted.value.status == 201
    card = page.locator(f'li[data-recommendation-id="{action["recommendation_id"]}"]')
    expect(card).to_have_attribute("data-outcome", "accepted")
    expect(card.locator(".done")).to_have_text("✓ Accepted")
    expect(page.locator("#action-news")).to_have_text(f"Accepted: {action['title']}")
    assert feedback_outcomes(server, action["recommendation_id"]) == ["accepted"]
    save_screenshot(page, shots, "widget-accepted")


def test_dismiss_removes_the_action_and_it_is_not_offered_again(
    page: Page, server: LiveServer, known_account: str, shots: Path
) -> None:
    recs = open_widget(page, server, known_account)
    cards = page.locator("#actions li.action")
    action = recs["actions"][1]
    page.get_by_role("button", name=f"Dismiss: {action['title']}").click()

    expect(cards).to_have_count(len(recs["actions"]) - 1)
    expect(
        page.locator(f'li[data-recommendation-id="{action["recommendation_id"]}"]')
    ).to_have_count(0)
    # keyboard focus moved on to the next action instead of getting lost
    next_title = recs["actions"][2]["title"]
    expect(page.get_by_role("button", name=f"Accept: {next_title}")).to_be_focused()
    assert feedback_outcomes(server, action["recommendation_id"]) == ["dismissed"]
    save_screenshot(page, shots, "widget-dismissed")

    with page.expect_response(lambda r: "/recommendations" in r.url) as info:
        page.reload()  # (a goto to the same URL and fragment would not load it again)
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    again = info.value.json()
    assert action["content_id"] not in [a["content_id"] for a in again["actions"]]
    expect(page.locator(f'li[data-content-id="{action["content_id"]}"]')).to_have_count(0)


def test_an_unknown_account_is_shown_as_unknown(
    page: Page, server: LiveServer, shots: Path
) -> None:
    with page.expect_response(lambda r: "/recommendations" in r.url) as info:
        page.goto(server.url("/widget/accounts/A-not-in-the-crm-yet", key="widget:crm"))
    expect(page.locator("body")).to_have_attribute("data-state", "cold-start")
    recs = info.value.json()
    assert recs["cold_start"] is True and recs["known"] is False
    expect(page.locator("#cold-badge")).to_have_text("Unknown account")
    # no name: the id stands for it
    assert recs["account_name"] is None and recs["since_last_visit"] is None
    expect(page.locator("h1")).to_have_text("Account A-not-in-the-crm-yet")
    expect(page.locator("#status-text")).to_contain_text(
        "Unknown account: the service holds no data for this id"
    )
    expect(page.locator('#journey li[aria-current="step"]')).to_have_attribute(
        "data-phase", recs["phase"]
    )
    expect(page.locator("#churn-none")).to_have_text(
        "Not enough history to estimate churn risk for this account."
    )
    expect(page.locator("#actions li.action")).to_have_count(len(recs["actions"]))
    assert len(recs["actions"]) > 0
    expect(page.locator("#no-touchpoints")).to_have_text("No touchpoints recorded yet.")
    save_screenshot(page, shots, "widget-cold-start")


def test_a_wrong_or_missing_key_says_so(
    page: Page, server: LiveServer, known_account: str, shots: Path
) -> None:
    page.goto(f"{server.base_url}/widget/accounts/{known_account}#key=nba_not-a-real-key")
    expect(page.locator("body")).to_have_attribute("data-state", "bad-key")
    expect(page.locator("#status-text")).to_contain_text("wrong or was revoked")
    expect(page.locator("#content")).to_be_hidden()
    save_screenshot(page, shots, "widget-wrong-key")

    page.goto(f"{server.base_url}/widget/accounts/{known_account}")
    expect(page.locator("body")).to_have_attribute("data-state", "no-key")
    expect(page.locator("#status-text")).to_contain_text("No widget key")
    save_screenshot(page, shots, "widget-missing-key")


def test_loading_and_an_unreachable_service_are_shown(
    page: Page, server: LiveServer, known_account: str, shots: Path
) -> None:
    held: list[Route] = []
    page.route("**/v1/**", lambda route: held.append(route))
    page.goto(server.url(f"/widget/accounts/{known_account}", key="widget:crm"))
    expect(page.locator("body")).to_have_attribute("data-state", "loading")
    expect(page.locator("#status-text")).to_have_text("Loading recommendations…")
    save_screenshot(page, shots, "widget-loading")
    page.wait_for_function("1", polling=100)  # let the held requests arrive
    for route in held:
        route.abort("connectionrefused")
    page.unroute("**/v1/**")
    expect(page.locator("body")).to_have_attribute("data-state", "unreachable")
    expect(page.locator("#status-text")).to_contain_text("cannot be reached")
    save_screenshot(page, shots, "widget-unreachable")

    page.get_by_role("button", name="Retry").click()
    expect(page.locator("body")).to_have_attribute("data-state", "ready")


def test_the_page_is_small_and_only_the_crm_may_frame_it(
    server: LiveServer, known_account: str
) -> None:
    html = httpx.get(f"{server.base_url}/widget/accounts/{known_account}")
    assert html.status_code == 200
    policy = html.headers["content-security-policy"]
    assert "frame-ancestors 'self' https://crm.example.com" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert known_account in html.text and "{{" not in html.text
    sizes = [len(html.content)] + [
        len(httpx.get(f"{server.base_url}/static/{name}").content) for name in WIDGET_ASSETS
    ]
    assert sum(sizes) <= MAX_PAGE_BYTES, sizes
    assert httpx.get(f"{server.base_url}/static/../app.py").status_code == 404
    # the widget's key reads touchpoints and recommendations, but no worklist (it has no
    # worklists:read scope; its name grants nothing)
    headers = {"Authorization": f"Bearer {server.keys['widget:crm']}"}
    rep = str(server.data.accounts["owner_rep_id"].iloc[0])
    denied = httpx.get(f"{server.base_url}/v1/reps/{rep}/actions", headers=headers)
    assert denied.status_code == 403 and "lacks scope 'worklists:read'" in denied.json()["detail"]
    touchpoints = httpx.get(
        f"{server.base_url}/v1/accounts/{known_account}/touchpoints",
        params={"limit": 3},
        headers=headers,
    )
    assert touchpoints.status_code == 200
    assert len(touchpoints.json()["touchpoints"]) == 3


# The contrast ratio (WCAG 2) of each matching element's text colour against the first
# opaque background behind it; the lowest per selector.
CONTRAST_JS = """
(selectors) => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (node) => {
    for (let n = node; n; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.length === 3 || c[3] === 1) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = {};
  for (const s of selectors) {
    const ratios = [...document.querySelectorAll(s)].map((n) => {
      const a = lum(rgb(getComputedStyle(n).color).slice(0, 3));
      const b = lum(background(n));
      return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    });
    out[s] = ratios.length ? Math.min(...ratios) : null;
  }
  return out;
}
"""
TEXT_SELECTORS = [
    "h1",
    "h2",
    ".phase .name",
    '.phase[aria-current="step"] .name',
    ".reasons li",
    ".band",
    ".action .meta",
    "button.accept",
    "button.dismiss",
    ".timeline time",
]


def test_text_contrast_meets_wcag_aa(page: Page, server: LiveServer, known_account: str) -> None:
    open_widget(page, server, known_account)
    ratios = page.evaluate(CONTRAST_JS, TEXT_SELECTORS)
    assert all(ratios[s] is not None for s in TEXT_SELECTORS), ratios
    assert min(ratios.values()) >= 4.5, ratios


def test_the_api_docs_render_offline_under_the_csp(browser: Browser, server: LiveServer) -> None:
    """Swagger UI at /docs with every request to another host refused (no internet): it
    renders the API from the service's own files, and the CSP blocks nothing."""
    context = browser.new_context()
    page = context.new_page()
    outside: list[str] = []
    problems: list[str] = []

    def only_local(route: Route) -> None:
        if route.request.url.startswith(server.base_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        page.goto(f"{server.base_url}/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("journey-nba")
        expect(page.locator(".opblock-summary-path").first).to_be_visible()
        assert outside == [] and problems == []
    finally:
        context.close()


def test_the_account_its_contacts_and_the_horizon_are_named(
    page: Page, server: LiveServer, known_account: str
) -> None:
    recs = open_widget(page, server, known_account)
    names = server.data.accounts.set_index("account_id")["name"]
    contacts = server.data.contacts.set_index("contact_id")["name"]
    assert recs["account_name"] == names[known_account]
    expect(page.locator("h1")).to_have_text(f"{names[known_account]} {known_account}")
    expect(page.locator("#account-id")).to_have_text(known_account)
    roles = page.evaluate("NBA.config.roles")
    with_contact = [a for a in recs["actions"] if a["contact_id"]]
    assert with_contact, "no action for a contact"
    for action in with_contact:
        name = contacts[action["contact_id"]]
        assert action["contact_name"] == name
        card = page.locator(f'li.action[data-recommendation-id="{action["recommendation_id"]}"]')
        who = f"{name}, {roles[action['role']]}" if action["role"] else name
        expect(card.locator(".who")).to_have_text(f"For {who}")
    # the churn model's declared horizon, not "the horizon"
    assert recs["horizon_days"]["churn"] == 90
    expect(page.locator("#churn-horizon")).to_have_text("chance of churning within 90 days")
    expect(page.locator("body")).not_to_contain_text("within the horizon")
    # the timeline names who: "Jane Doe, IT"
    touchpoints = server.data.touchpoints
    mine = touchpoints[touchpoints["account_id"] == known_account].sort_values("ts")
    latest = mine.iloc[-1]
    if isinstance(latest["contact_id"], str):
        item = page.locator(f'#timeline li[data-event-id="{latest["event_id"]}"]')
        expect(item.locator(".who")).to_contain_text(str(contacts[latest["contact_id"]]))


def test_what_changed_since_the_last_recommendation_is_shown(
    page: Page, server: LiveServer, known_account: str
) -> None:
    open_widget(page, server, known_account)  # actions decided now: the last visit
    event = {
        "event_id": f"since-visit-{known_account}",
        "account_id": known_account,
        "ts": pd.Timestamp.now(tz="UTC").isoformat(),
        "channel": "website",
        "event_type": "download",
    }
    headers = {"Authorization": f"Bearer {server.keys['admin']}"}
    stored = httpx.post(f"{server.base_url}/v1/events", json={"events": [event]}, headers=headers)
    assert stored.status_code == 200 and stored.json()["accepted"] == 1
    # the same address again: a reload (a fragment-only navigation would load nothing)
    with page.expect_response(lambda r: "/recommendations" in r.url) as info:
        page.reload()
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    recs = info.value.json()
    changes = recs["since_last_visit"]
    assert changes is not None and changes["touchpoints"] >= 1
    assert "download" in changes["text"]
    expect(page.locator("#changes")).to_contain_text("Since the last recommendation (")
    expect(page.locator("#changes")).to_contain_text(changes["text"])


def test_why_now_is_shown_as_the_service_says(page: Page, server: LiveServer) -> None:
    """Each loaded account's timing signals appear under "Why now", in the service's order;
    the box is hidden for an account without any."""
    shown = 0
    for account in sorted(server.data.accounts["account_id"].astype(str)):
        recs = open_widget(page, server, account)
        signals = [s["text"] for s in recs["why_now"]]
        box = page.locator("#why-now")
        if signals:
            expect(box).to_be_visible()
            expect(box.locator("li")).to_have_text(signals)
            shown += 1
        else:
            expect(box).to_be_hidden()
    assert shown > 0, "no loaded account has a timing signal"
