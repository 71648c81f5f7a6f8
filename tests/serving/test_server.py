"""The real server: ``nba serve --workers 2`` as a subprocess on a free port over a SQLite
store and the trained registry, hit concurrently, then stopped cleanly; and the serving CLI
commands (``nba keys``, ``nba score``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.pipeline import select_accounts
from features.taxonomy import load_taxonomy
from nba.cli import app as cli
from serving.store import Store
from tests.utils.api import loaded_accounts
from tests.utils.net import free_port
from tests.utils.registry import TrainedRegistry
from tests.utils.store import logged_recommendations

N_ACCOUNTS = 60
N_REQUESTS = 200
FAR_PAST = pd.Timestamp("2000-01-01", tz="UTC")


@dataclass(frozen=True)
class Loaded:
    env: dict[str, str]
    accounts: list[str]
    reps: list[str]
    db: Path
    touchpoints: int


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, registry: TrainedRegistry) -> Loaded:
    """A SQLite store with a small simulation slice, and the environment pointing at it."""
    directory = tmp_path_factory.mktemp("server")
    db = directory / "nba.db"
    store = Store(f"sqlite:///{db}", registry.taxonomy)
    store.migrate()
    ids = loaded_accounts(registry, N_ACCOUNTS)
    data = select_accounts(registry.data, ids)
    store.load_data(data)
    store.dispose()
    env = {
        **os.environ,
        "NBA_DATABASE_URL": f"sqlite:///{db}",
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "NBA_RELOAD_INTERVAL_S": "5",
    }
    reps = sorted(data.accounts["owner_rep_id"].astype(str).unique())
    return Loaded(env, ids, reps, db, len(data.touchpoints))


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nba", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def server(loaded: Loaded) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    created = _cli(loaded.env, "keys", "create", "--name", "load-test", "--scopes", "admin")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("nba_")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "nba", "serve", "--port", str(port), "--workers", "2"],
        env=loaded.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            assert process.poll() is None, process.communicate()[1][-3000:]
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready in 90 s"
            time.sleep(0.25)
        yield base, key, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:  # pragma: no cover - reported by the test
                process.kill()
                process.wait(10)


class _RetryShed(httpx.HTTPTransport):
    """A client that does what the API asks of one: a 503 (a worker shedding load on a busy
    machine, or a busy SQLite store) is retried after its Retry-After, here shortened to
    0.2 s. Shedding itself is tested in ``test_durability``; this test is about correct
    answers from two workers."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(50):
            response = super().handle_request(request)
            if response.status_code != 503 or "retry-after" not in response.headers:
                return response
            response.read()
            response.close()
            time.sleep(0.2)
        return response


def test_two_workers_answer_concurrent_requests_without_errors(
    server: tuple[str, str, subprocess.Popen[str]], loaded: Loaded
) -> None:
    base, key, process = server
    headers = {"Authorization": f"Bearer {key}"}
    handed_out: list[str] = []  # recommendation ids the answers carried

    def call(i: int) -> tuple[str, int]:
        account = loaded.accounts[i % len(loaded.accounts)]
        with httpx.Client(
            base_url=base, headers=headers, timeout=60, transport=_RetryShed()
        ) as client:
            kind = i % 10
            if kind < 6:
                r = client.get(f"/v1/accounts/{account}/recommendations", params={"k": 3})
                if r.status_code == 200:
                    handed_out.extend(a["recommendation_id"] for a in r.json()["actions"])
                if r.status_code == 200 and r.json()["actions"] and kind == 0:
                    rec = r.json()["actions"][0]["recommendation_id"]
                    f = client.post(
                        "/v1/feedback", json={"recommendation_id": rec, "outcome": "shown"}
                    )
                    return "feedback", f.status_code
                return "recommendations", r.status_code
            if kind < 8:
                event = {
                    "event_id": f"E-server-{i}",
                    "account_id": account,
                    "ts": "2025-06-01T00:00:00Z",
                    "channel": "website",
                    "event_type": "view",
                }
                r = client.post("/v1/events", json={"events": [event]})
                return "events", r.status_code
            if kind == 8:
                r = client.post("/v1/recommendations", json={"account_id": f"new-{i}", "k": 2})
                return "cold start", r.status_code
            rep = loaded.reps[i % len(loaded.reps)]
            return "reps", client.get(f"/v1/reps/{rep}/actions", params={"limit": 5}).status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(N_REQUESTS)))
    seconds = time.perf_counter() - started
    bad = [(kind, code) for kind, code in results if code not in (200, 201)]
    assert not bad, Counter(bad)
    assert Counter(kind for kind, _ in results)["recommendations"] >= 100
    print(f"{N_REQUESTS} requests in {seconds:.1f} s")

    # every event was stored exactly once across both workers, and every recommendation id
    # handed out reaches the store (the served log writes in batches, within moments)
    store = Store(loaded.env["NBA_DATABASE_URL"], load_taxonomy())
    deadline = time.monotonic() + 10
    while True:
        stored = {r.id for a in loaded.accounts for r in logged_recommendations(store, a, FAR_PAST)}
        if set(handed_out) <= stored or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert handed_out and set(handed_out) <= stored
    counts = store.counts()
    store.dispose()
    assert counts["feedback"] == Counter(kind for kind, _ in results)["feedback"] > 0
    assert counts["touchpoints"] == loaded.touchpoints + N_REQUESTS // 10 * 2
    assert process.poll() is None


def test_the_server_stops_cleanly(server: tuple[str, str, subprocess.Popen[str]]) -> None:
    _, _, process = server
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    assert stderr.count("Application startup complete.") == 2  # one per worker
    assert "Finished server process" in stderr


def test_keys_and_score_commands(loaded: Loaded, tmp_path: Path, registry: TrainedRegistry) -> None:
    runner = CliRunner()
    env = {k: v for k, v in loaded.env.items() if k.startswith(("NBA_", "MLFLOW_"))}
    created = runner.invoke(
        cli,
        ["keys", "create", "--name", "widget", "--scopes", "recommendations:read,feedback:write"],
        env=env,
    )
    assert created.exit_code == 0, created.output
    listed = runner.invoke(cli, ["keys", "list"], env=env)
    assert "widget\tfeedback:write,recommendations:read\tcreated" in listed.output
    bad = runner.invoke(cli, ["keys", "create", "--name", "x", "--scopes", "root"], env=env)
    assert bad.exit_code == 2 and "expected one or more of" in bad.output
    revoked = runner.invoke(cli, ["keys", "revoke", "--name", "widget"], env=env)
    assert revoked.exit_code == 0 and "revoked widget" in revoked.output

    out = tmp_path / "scores.parquet"
    as_of = registry.now.strftime("%Y-%m-%d")
    result = runner.invoke(cli, ["score", "--out", str(out), "--as-of", as_of], env=env)
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(out)
    assert len(scores) == N_ACCOUNTS and scores["account_id"].is_unique
    assert set(scores["account_id"]) == set(loaded.accounts)
    assert scores["churn_band"].isin(["low", "medium", "high"]).all()
    assert scores["action_1_content_id"].notna().all()
    assert {"phase", "churn_risk", "action_3_expected_value", "as_of"} <= set(scores.columns)
