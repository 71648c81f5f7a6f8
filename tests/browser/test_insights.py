"""The insights page in a real browser (Debian Chromium via Playwright) against a live
``nba serve``: the KPIs, trend, content gap matrix, journey map and breakdowns the API
answers, a chosen period, and a key that may not read insights."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.utils.browser import (
    LiveServer,
    alive_accounts,
    live_server,
    pytestmark_browser,
    save_screenshot,
)
from tests.utils.registry import TrainedRegistry

pytestmark = pytestmark_browser

MAX_PAGE_BYTES = 100 * 1024
ASSETS = ("common.js", "insights.js", "widget.css", "insights.css")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, trained_registry: TrainedRegistry
) -> Iterator[LiveServer]:
    ids = alive_accounts(trained_registry)["account_id"].astype(str).tolist()[:150]
    with live_server(tmp_path_factory.mktemp("insights"), trained_registry, ids, []) as live:
        yield live


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    p = context.new_page()
    yield p
    context.close()


def open_insights(page: Page, server: LiveServer, key: str = "admin") -> dict[str, Any]:
    with page.expect_response(lambda r: "/v1/insights" in r.url) as info:
        page.goto(server.url("/insights", key=key))
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    body: dict[str, Any] = info.value.json()
    return body


def test_the_page_shows_what_the_api_answers(page: Page, server: LiveServer, shots: Path) -> None:
    report = open_insights(page, server)
    touchpoints = report["kpis"]["engagement"]["touchpoints"]["value"]
    card = page.locator('.kpi[data-kpi="touchpoints"] .value')
    expect(card).to_have_text(f"{touchpoints:,}")
    assert touchpoints > 0
    click = report["kpis"]["engagement"]["click_through"]
    if click["value"] is not None:
        expect(page.locator('.kpi[data-kpi="click_through"] .value')).to_have_text(
            f"{100 * click['value']:.1f} %"
        )
    cells = report["content_gaps"]["cells"]
    expect(page.locator("#gaps tbody tr")).to_have_count(len(cells))
    empty = next((c for c in cells if c["status"] == "empty"), None)
    if empty is not None:
        row = page.locator(
            f'#gaps tbody tr[data-phase="{empty["phase"]}"][data-role="{empty["role"]}"]'
        )
        expect(row.locator("td").last).to_have_text("empty")
        expect(row.locator("td").nth(2)).to_have_text("0")
    expect(page.locator("#journey tbody tr")).to_have_count(len(report["journey"]["phases"]))
    expect(page.locator("#trend tbody tr")).to_have_count(len(report["trend"]))
    expect(page.locator("#by tbody tr")).to_have_count(len(report["by"]["channel"]))
    page.get_by_label("Break down by").select_option("role")
    expect(page.locator("#by tbody tr")).to_have_count(len(report["by"]["role"]))
    save_screenshot(page, shots, "insights", readme="insights")


def test_a_chosen_period_and_weekly_trend(page: Page, server: LiveServer) -> None:
    first = open_insights(page, server)
    end = first["period"]["to"][:10]
    page.get_by_label("From").fill(first["period"]["from"][:10])
    page.get_by_label("Trend per").select_option("week")
    with page.expect_response(lambda r: "every=week" in r.url) as info:
        page.get_by_role("button", name="Show").click()
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    weekly = info.value.json()
    assert weekly["period"]["every"] == "week" and weekly["period"]["to"][:10] == end
    assert len(weekly["trend"]) > len(first["trend"])
    expect(page.locator("#trend tbody tr")).to_have_count(len(weekly["trend"]))


def test_a_key_without_the_scope_and_no_key(page: Page, server: LiveServer) -> None:
    page.goto(server.url("/insights", key="widget:crm"))
    expect(page.locator("body")).to_have_attribute("data-state", "forbidden")
    expect(page.locator("#status-text")).to_contain_text("insights:read")
    page.goto("about:blank")  # a new fragment alone would not load the page again
    page.goto(server.url("/insights"))
    expect(page.locator("body")).to_have_attribute("data-state", "no-key")


def test_the_page_is_small(server: LiveServer) -> None:
    total = len(httpx.get(server.url("/insights")).content)
    total += sum(len(httpx.get(f"{server.base_url}/static/{name}").content) for name in ASSETS)
    assert total < MAX_PAGE_BYTES
