"""Helpers for the browser tests of the pages: Playwright (sync API) driving Debian's Chromium
(``/usr/bin/chromium``, installed by apt; Playwright never downloads a browser here) against
a live ``nba serve`` subprocess.

:func:`live_server` loads a small slice of the trained registry's simulation into a temporary
SQLite store — moved in time so that it ends yesterday, since the live server scores at the
wall clock — creates a widget key and rep keys, and runs the server on a free port;
:func:`launch_chromium` starts the browser; :func:`save_screenshot` keeps a PNG of each
test's page as an artifact. The fixtures over them live in ``tests/browser/conftest.py``.

Screenshots go to ``$NBA_SCREENSHOT_DIR`` (default: ``browser-screenshots`` under pytest's
base temp dir). With ``NBA_UPDATE_SCREENSHOTS=1`` the README's pictures
(``tests/browser/screenshots/widget.png`` and ``worklist.png``) are rewritten too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pandas as pd
import pytest

from features.pipeline import select_accounts
from features.schema import JourneyData
from serving.store import Store
from tests.utils.net import free_port
from tests.utils.registry import TrainedRegistry

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")
README_SCREENSHOTS = Path(__file__).parents[1] / "browser" / "screenshots"
WIDGET_SCOPES = ("recommendations:read", "feedback:write")
REP_SCOPES = ("recommendations:read", "worklists:read", "feedback:write")
# A bound, not a measurement: on a 2-core machine shared with other work, importing MLflow
# and loading the models can take minutes.
SERVER_START_TIMEOUT_S = 240

# Every browser test is marked, and skipped with a clear reason where Chromium is missing
# (CI installs it: .ci/run).
pytestmark_browser = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's chromium is not installed (apt-get install chromium)",
    ),
]


@dataclass(frozen=True)
class LiveServer:
    """A running ``nba serve`` over a store holding ``data``; ``keys`` maps key names
    (``widget:crm``, ``rep:<rep_id>`` (a key bound to that rep), ...) to their secrets."""

    base_url: str
    database_url: str
    data: JourneyData
    keys: dict[str, str]

    def url(self, path: str, key: str | None = None) -> str:
        """The absolute URL of ``path`` with ``#key=<the named key>`` when ``key`` is given."""
        return self.base_url + path + (f"#key={self.keys[key]}" if key is not None else "")

    def store(self) -> Store:
        """A second connection to the server's store (dispose it after use)."""
        from features.taxonomy import load_taxonomy

        return Store(self.database_url, load_taxonomy())


def shift_in_time(data: JourneyData, delta: pd.Timedelta) -> JourneyData:
    """``data`` with every datetime column moved by ``delta`` (the journeys unchanged)."""

    def move(frame: pd.DataFrame) -> pd.DataFrame:
        moved = frame.copy()
        for column in moved.columns:
            if isinstance(moved[column].dtype, pd.DatetimeTZDtype):
                moved[column] = moved[column] + delta
        return moved

    return replace(
        data,
        **{f.name: move(getattr(data, f.name)) for f in fields(data) if f.name != "content"},
    )


def alive_accounts(registry: TrainedRegistry) -> pd.DataFrame:
    """The registry's accounts that have a contact before its end (what the serving tests
    load), sorted by id: account_id, owner_rep_id."""
    contacts = registry.data.contacts
    alive = set(contacts.loc[contacts["created_at"] < registry.now, "account_id"].astype(str))
    accounts = registry.data.accounts[["account_id", "owner_rep_id"]].astype(str)
    return accounts[accounts["account_id"].isin(alive)].sort_values("account_id")


@contextmanager
def live_server(
    directory: Path,
    registry: TrainedRegistry,
    account_ids: list[str],
    rep_keys: list[str],
    *,
    settings: Mapping[str, str] | None = None,
) -> Iterator[LiveServer]:
    """``nba serve`` (one worker, no exploration, no reload polling) on a free port over a
    SQLite store in ``directory`` with the accounts ``account_ids`` of the registry's
    simulation, shifted to end yesterday. Keys: ``widget:crm`` (read and feedback, no rep),
    ``admin``, and ``rep:<rep>`` (read, worklists and feedback, bound to ``rep``) for each of
    ``rep_keys``. ``settings`` adds environment variables (e.g. ``NBA_CURRENCY``)."""
    db = directory / "nba.db"
    database_url = f"sqlite:///{db}"
    store = Store(database_url, registry.taxonomy)
    store.migrate()
    data = select_accounts(registry.data, account_ids)
    yesterday = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=1)
    data = shift_in_time(data, (yesterday - registry.now).floor("D"))
    store.load_data(data)
    keys = {"widget:crm": store.create_api_key("widget:crm", WIDGET_SCOPES)}
    keys["admin"] = store.create_api_key("admin", ["admin"])
    for rep in rep_keys:
        keys[f"rep:{rep}"] = store.create_api_key(f"rep:{rep}", REP_SCOPES, rep_id=rep)
    store.dispose()
    env = {
        **os.environ,
        "NBA_DATABASE_URL": database_url,
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "NBA_RELOAD_INTERVAL_S": "0",
        "NBA_EXPLORATION_RATE": "0",
        "NBA_ONLINE_LEARNING": "0",
        "NBA_RANDOM_SEED": "0",
        "NBA_CRM_ORIGINS": "https://crm.example.com",
        **(settings or {}),
    }
    # As in production, `nba score` stores every account's score first, so that a rep's
    # first worklist view reads them instead of computing them all.
    subprocess.run(
        [sys.executable, "-m", "nba", "score", "--out", str(directory / "scores.parquet")],
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = (directory / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "nba", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise AssertionError((directory / "server.log").read_text()[-3000:])
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the server was not ready in {SERVER_START_TIMEOUT_S} s")
            time.sleep(0.2)
        yield LiveServer(base, database_url, data, keys)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        log.close()


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    """Headless Debian Chromium under Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


def _launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)


def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests' screenshots go (created)."""
    configured = os.environ.get("NBA_SCREENSHOT_DIR")
    directory = (
        Path(configured) if configured else tmp_path_factory.getbasetemp() / "browser-screenshots"
    )
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def save_screenshot(page: Page, directory: Path, name: str, *, readme: str | None = None) -> Path:
    """A full-page PNG of ``page`` as ``directory/<name>.png``; with ``readme`` and
    ``NBA_UPDATE_SCREENSHOTS=1`` also the visible part (the viewport: a README picture
    should not be a page long) as ``tests/browser/screenshots/<readme>.png``."""
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    if readme is not None and os.environ.get("NBA_UPDATE_SCREENSHOTS") == "1":
        README_SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(README_SCREENSHOTS / f"{readme}.png"))
    return path
