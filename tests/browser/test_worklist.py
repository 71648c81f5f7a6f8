"""The sales rep's worklist in a real browser (Debian Chromium via Playwright) against a live
``nba serve`` with a currency set (``NBA_CURRENCY=EUR``): ranking by the best action's value,
accounts and contacts by name, sorting, filtering by phase and churn band, rows opening the
account widget, and a rep seeing only their own accounts."""

from __future__ import annotations

from collections import Counter
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
WORKLIST_ASSETS = ("common.js", "worklist.js", "widget.css")


@pytest.fixture(scope="module")
def reps(trained_registry: TrainedRegistry) -> tuple[TrainedRegistry, str, str]:
    """The registry and its two reps owning the most accounts (the rep under test, another)."""
    owners = alive_accounts(trained_registry)["owner_rep_id"].value_counts()
    ranked = sorted(owners.index, key=lambda r: (-owners[r], r))
    return trained_registry, str(ranked[0]), str(ranked[1])


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, reps: tuple[TrainedRegistry, str, str]
) -> Iterator[LiveServer]:
    registry, rep, other = reps
    accounts = alive_accounts(registry)
    ids = accounts.loc[accounts["owner_rep_id"].isin([rep, other]), "account_id"].tolist()
    directory = tmp_path_factory.mktemp("worklist")
    with live_server(
        directory, registry, ids, [rep, other], settings={"NBA_CURRENCY": "EUR"}
    ) as live:
        yield live


@pytest.fixture(scope="module")
def rep(reps: tuple[TrainedRegistry, str, str]) -> str:
    return reps[1]


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    p = context.new_page()
    yield p
    context.close()


def open_worklist(page: Page, server: LiveServer, rep: str) -> dict[str, Any]:
    """Open the rep's worklist with their key; returns the worklist the page received."""
    with page.expect_response(lambda r: "/actions" in r.url) as info:
        page.goto(server.url(f"/reps/{rep}", key=f"rep:{rep}"))
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    body: dict[str, Any] = info.value.json()
    return body


def column(page: Page, index: int) -> list[str]:
    """The text of column ``index`` (0-based) of the visible rows, top to bottom."""
    texts: list[str] = page.locator(
        f"#worklist tbody tr td:nth-child({index + 1})"
    ).all_inner_texts()
    return texts


def account_ids(page: Page) -> list[str]:
    """The account ids of the visible rows, top to bottom."""
    rows = page.locator("#worklist tbody tr")
    return [str(rows.nth(i).get_attribute("data-account-id")) for i in range(rows.count())]


def values(page: Page) -> list[float | None]:
    """The values as shown in euros ("€2.74"), None for none."""
    out: list[float | None] = []
    for text in column(page, 4):
        assert text == "–" or text.startswith("€"), text
        out.append(None if text == "–" else float(text.removeprefix("€").replace(",", "")))
    return out


def churn(page: Page) -> list[float | None]:
    """Churn risks as shown (percent), None for no estimate."""
    out: list[float | None] = []
    for text in column(page, 2):
        head = text.split(" %")[0].strip()
        out.append(None if "no estimate" in text else (0.5 if head == "<1" else float(head)))
    return out


def test_the_worklist_ranks_the_reps_accounts_by_best_action_value(
    page: Page, server: LiveServer, rep: str, shots: Path
) -> None:
    worklist = open_worklist(page, server, rep)
    owned = server.data.accounts
    mine = sorted(owned.loc[owned["owner_rep_id"] == rep, "account_id"].astype(str))
    # a rep sees exactly their own accounts
    assert sorted(account_ids(page)) == mine
    assert worklist["accounts"] == len(mine)
    expect(page.locator("#count")).to_have_text(f"{len(mine)} of {len(mine)} accounts shown")
    # ranked by the best action's value, as the API ranks them
    assert account_ids(page) == [item["account_id"] for item in worklist["items"]]
    assert worklist["value_unit"] == "EUR"
    expect(page.locator("#value-unit")).to_have_text("(EUR)")
    shown = [v for v in values(page) if v is not None]
    assert shown == sorted(shown, reverse=True) and len(shown) > 0
    expect(page.locator('th[data-column="value"]')).to_have_attribute("aria-sort", "descending")
    first = worklist["items"][0]
    row = page.locator("#worklist tbody tr").first
    expect(row.locator("td").nth(3)).to_contain_text(first["action"]["title"])
    reasons = [r["text"] for r in first["action"]["reasons"]]
    expect(row.locator("td").nth(5).locator("li")).to_have_text(reasons)
    save_screenshot(page, shots, "worklist", readme="worklist")


def test_columns_sort_both_ways(page: Page, server: LiveServer, rep: str, shots: Path) -> None:
    open_worklist(page, server, rep)
    churn_header = page.locator('th[data-column="churn"]')
    churn_header.get_by_role("button").click()
    expect(churn_header).to_have_attribute("aria-sort", "descending")
    expect(page.locator('th[data-column="value"]')).to_have_attribute("aria-sort", "none")
    risks = [r for r in churn(page) if r is not None]
    assert risks == sorted(risks, reverse=True)
    churn_header.get_by_role("button").click()
    expect(churn_header).to_have_attribute("aria-sort", "ascending")
    risks = [r for r in churn(page) if r is not None]
    assert risks == sorted(risks)

    page.locator('th[data-column="account"]').get_by_role("button").click()
    accounts = [a.lower() for a in page.locator("#worklist tbody td a").all_inner_texts()]
    assert accounts == sorted(accounts)  # by name
    page.locator('th[data-column="account"]').get_by_role("button").press("Enter")
    shown = [a.lower() for a in page.locator("#worklist tbody td a").all_inner_texts()]
    assert shown == sorted(accounts, reverse=True)

    page.get_by_label("Sort by", exact=True).select_option("value:ascending")
    expect(page.locator('th[data-column="value"]')).to_have_attribute("aria-sort", "ascending")
    shown = [v for v in values(page) if v is not None]
    assert shown == sorted(shown)
    save_screenshot(page, shots, "worklist-sorted")


def test_filters_by_phase_and_churn_band(
    page: Page, server: LiveServer, rep: str, shots: Path
) -> None:
    worklist = open_worklist(page, server, rep)
    items = worklist["items"]
    phase, n_phase = Counter(item["phase"] for item in items).most_common(1)[0]
    page.get_by_label("Phase", exact=True).select_option(phase)
    rows = page.locator("#worklist tbody tr")
    expect(rows).to_have_count(n_phase)
    phases = page.locator("#worklist tbody td[data-phase]")
    assert {phases.nth(i).get_attribute("data-phase") for i in range(n_phase)} == {phase}
    expect(page.locator("#count")).to_have_text(f"{n_phase} of {len(items)} accounts shown")

    band = Counter(item["churn_band"] or "none" for item in items).most_common(1)[0][0]
    page.get_by_label("Churn risk", exact=True).select_option(band)
    both = [i for i in items if i["phase"] == phase and (i["churn_band"] or "none") == band]
    expect(rows).to_have_count(len(both))
    assert sorted(account_ids(page)) == sorted(i["account_id"] for i in both)
    save_screenshot(page, shots, "worklist-filtered")

    page.get_by_label("Phase", exact=True).select_option("")
    only_band = [i for i in items if (i["churn_band"] or "none") == band]
    expect(rows).to_have_count(len(only_band))

    missing = {"low", "medium", "high", "none"} - {i["churn_band"] or "none" for i in items}
    if missing:  # a band nobody is in shows the empty state
        page.get_by_label("Churn risk", exact=True).select_option(sorted(missing)[0])
        expect(rows).to_have_count(0)
        expect(page.locator("#empty")).to_be_visible()


def test_a_row_opens_the_account_widget(page: Page, server: LiveServer, rep: str) -> None:
    worklist = open_worklist(page, server, rep)
    account = worklist["items"][1]["account_id"]
    page.locator(f'#worklist tbody tr[data-account-id="{account}"] td').nth(1).click()
    page.wait_for_url(f"**/widget/accounts/{account}#key=*")
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    name = worklist["items"][1]["account_name"]
    expect(page.locator("h1")).to_have_text(f"{name} {account}")
    expect(page.locator("#actions li.action").first).to_be_visible()


def test_a_rep_sees_only_their_own_worklist(
    page: Page, server: LiveServer, reps: tuple[TrainedRegistry, str, str], shots: Path
) -> None:
    _, rep, other = reps
    page.goto(server.url(f"/reps/{other}", key=f"rep:{rep}"))
    expect(page.locator("body")).to_have_attribute("data-state", "forbidden")
    expect(page.locator("#status-text")).to_contain_text(f"is bound to rep '{rep}'")
    expect(page.locator("#worklist")).to_be_hidden()
    save_screenshot(page, shots, "worklist-other-rep")
    # the same over the API, and for the other rep's account timelines
    headers = {"Authorization": f"Bearer {server.keys[f'rep:{rep}']}"}
    accounts = server.data.accounts
    theirs = str(accounts.loc[accounts["owner_rep_id"] == other, "account_id"].iloc[0])
    assert (
        httpx.get(f"{server.base_url}/v1/reps/{other}/actions", headers=headers).status_code == 403
    )
    timeline = httpx.get(f"{server.base_url}/v1/accounts/{theirs}/touchpoints", headers=headers)
    assert timeline.status_code == 403
    answer = httpx.get(f"{server.base_url}/v1/accounts/{theirs}/recommendations", headers=headers)
    assert answer.status_code == 403 and "belongs to another rep" in answer.json()["detail"]
    admin = {"Authorization": f"Bearer {server.keys['admin']}"}
    assert httpx.get(f"{server.base_url}/v1/reps/{other}/actions", headers=admin).status_code == 200


def test_the_worklist_is_small_and_readable_at_360_px(
    browser: Browser, server: LiveServer, rep: str, shots: Path
) -> None:
    html = httpx.get(f"{server.base_url}/reps/{rep}")
    assert (
        "frame-ancestors 'self' https://crm.example.com" in html.headers["content-security-policy"]
    )
    sizes = [len(html.content)] + [
        len(httpx.get(f"{server.base_url}/static/{name}").content) for name in WORKLIST_ASSETS
    ]
    assert sum(sizes) <= MAX_PAGE_BYTES, sizes

    context = browser.new_context(viewport={"width": 360, "height": 800})
    narrow = context.new_page()
    try:
        open_worklist(narrow, server, rep)
        assert narrow.evaluate("document.documentElement.scrollWidth") <= 360
        expect(narrow.get_by_label("Sort by", exact=True)).to_be_visible()
        save_screenshot(narrow, shots, "worklist-360px")
    finally:
        context.close()


def test_accounts_and_contacts_are_shown_by_name_with_their_ids(
    page: Page, server: LiveServer, rep: str
) -> None:
    worklist = open_worklist(page, server, rep)
    accounts = server.data.accounts.set_index("account_id")["name"]
    contacts = server.data.contacts.set_index("contact_id")["name"]
    assert all(item["account_name"] == accounts[item["account_id"]] for item in worklist["items"])
    labels = page.evaluate("NBA.config.roles")  # role labels, from the taxonomy
    checked = 0
    for item in worklist["items"][:10]:
        row = page.locator(f'#worklist tbody tr[data-account-id="{item["account_id"]}"]')
        cell = row.locator("td").first
        expect(cell.locator("a")).to_have_text(item["account_name"])
        expect(cell.locator(".account-id")).to_have_text(item["account_id"])
        action = item["action"]
        if action and action["contact_id"]:
            name = contacts[action["contact_id"]]
            assert action["contact_name"] == name
            who = f"{name}, {labels[action['role']]}" if action["role"] else name
            expect(row.locator("td").nth(3).locator(".who")).to_contain_text(who)
            checked += 1
    assert checked > 0


def test_each_row_says_why_now(page: Page, server: LiveServer, rep: str) -> None:
    """An account's timing signals are under its name; an account without any shows none."""
    worklist = open_worklist(page, server, rep)
    with_signals = 0
    for item in worklist["items"]:
        cell = page.locator(f'#worklist tbody tr[data-account-id="{item["account_id"]}"] td').first
        texts = [s["text"] for s in item["why_now"]]
        if texts:
            expect(cell.locator(".why-now")).to_have_text("Why now: " + "; ".join(texts))
            with_signals += 1
        else:
            expect(cell.locator(".why-now")).to_have_count(0)
    assert with_signals > 0, "no account of the worklist has a timing signal"
