"""The widget and the worklist in a real browser against a live ``nba serve`` whose registry
holds neither a phase model nor a next-content model: each page shows a note saying what is
not available and why in place of the missing part, and the churn risk it has."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from mlflow import MlflowClient
from playwright.sync_api import Browser, Page, expect

from models.contract import CHAMPION, NEXT_CONTENT, PHASE
from tests.utils.browser import (
    LiveServer,
    alive_accounts,
    live_server,
    pytestmark_browser,
    save_screenshot,
)
from tests.utils.registry import TrainedRegistry

pytestmark = pytestmark_browser


@pytest.fixture(scope="module")
def rep(trained_registry: TrainedRegistry) -> str:
    return str(alive_accounts(trained_registry)["owner_rep_id"].value_counts().index[0])


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, trained_registry: TrainedRegistry, rep: str
) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("partial-pages")
    shutil.copy(trained_registry.root / "mlflow.db", directory / "mlflow.db")
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for name in (PHASE, NEXT_CONTENT):
        client.delete_registered_model_alias(name, CHAMPION)
    registry = replace(trained_registry, tracking_uri=uri)
    accounts = alive_accounts(registry)
    ids = accounts.loc[accounts["owner_rep_id"] == rep, "account_id"].head(8).tolist()
    with live_server(directory, registry, ids, [rep]) as live:
        yield live


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 360, "height": 900})
    p = context.new_page()
    yield p
    context.close()


def test_the_widget_says_what_is_not_available(page: Page, server: LiveServer, shots: Path) -> None:
    account = str(server.data.accounts["account_id"].iloc[0])
    page.goto(server.url(f"/widget/accounts/{account}", key="widget:crm"))
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(page.locator("#phase-missing")).to_have_text(
        "The journey phase is not available: no champion of nba-phase in the registry."
    )
    expect(page.locator("#actions-missing")).to_have_text(
        "Next best actions are not available: no champion of nba-next-content in the registry."
    )
    expect(page.locator("#no-actions")).to_be_hidden()
    expect(page.locator("#churn-value")).to_be_visible()  # the churn model serves
    save_screenshot(page, shots, "widget-partial-models")


def test_the_worklist_says_what_is_not_available(
    page: Page, server: LiveServer, rep: str, shots: Path
) -> None:
    page.goto(server.url(f"/reps/{rep}", key=f"rep:{rep}"))
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    note = page.locator("#missing")
    expect(note).to_contain_text("Phase not available: no champion of nba-phase in the registry.")
    expect(note).to_contain_text("Next best actions not available")
    expect(page.locator("#worklist tbody tr").first.locator("td").nth(1)).to_have_text(
        "not available"
    )
    save_screenshot(page, shots, "worklist-partial-models")
