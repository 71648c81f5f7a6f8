"""No recommendation id is lost, and an overloaded worker sheds load (findings M1 and M4).

- The served log's journal: a live worker's journal answers for an id its batch has not
  written yet; a process killed with SIGKILL leaves a journal the next process replays.
- A real ``nba serve --workers 2`` over SQLite, its workers killed with SIGKILL in the middle
  of recommendation traffic (one worker, then the whole process group) and started again:
  feedback on every recommendation id it answered with succeeds.
- ``NBA_MAX_INFLIGHT``: concurrent slow requests to a worker allowed one at a time get 503
  with Retry-After, never 500, and the worker answers normally afterwards.
- An answer whose client has gone is not logged as served.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import httpx
import pandas as pd
import pytest
from sqlalchemy import select
from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send

import serving.store.engine as store_engine
from features.pipeline import select_accounts
from features.taxonomy import load_taxonomy
from serving.app import SHED_MIN_WAITING, InflightLimit
from serving.http_protocol import EXTENSION, RECEIVED_AT, REQUESTS
from serving.routes import Metrics, Services
from serving.store import NewRecommendation, ServedLog, Store, StoreBusyError
from serving.store.tables import Touchpoint
from tests.utils.api import Api, event, loaded_accounts, open_api
from tests.utils.registry import TrainedRegistry
from tests.utils.server import (
    ROOT,
    EventTraffic,
    Loaded,
    Server,
    Traffic,
    kill_mid_traffic,
    server_env,
    serving,
    wait_for,
)
from tests.utils.store import BACKENDS, logged_recommendations, open_store

N_ACCOUNTS = 40
# Rows wait this long in a worker's queue: a kill almost always finds some unwritten, so
# without the journal the kill test loses ids.
SLOW_FLUSH_S = "2"
# A request time after every simulated event.
LATER = pd.Timestamp("2030-01-01", tz="UTC")


def _served(i: int, account: str = "A1") -> NewRecommendation:
    return NewRecommendation(
        request_id=f"req-{i}",
        account_id=account,
        contact_id="P1",
        content_id="C007",
        rank=1,
        expected_value=1.0,
        propensity=0.5,
        policy="test",
    )


def _stored(store: Store, account: str = "A1") -> list[str]:
    return [r.id for r in logged_recommendations(store, account)]


# -- the journal, without a server ------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with open_store(request.param, tmp_path, load_taxonomy()) as opened:
        yield opened


def test_a_live_workers_journal_answers_for_an_id_not_written_yet(
    store: Store, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    owner = ServedLog(store, flush_interval_s=30, journal_dir=journal)  # no timed flush
    other = ServedLog(store, flush_interval_s=30, journal_dir=journal)
    owner.start()
    other.start()
    try:
        ids = owner.log([_served(1), _served(2)])
        assert _stored(store) == [] and list(journal.glob("*.jsonl"))
        assert other.recover(ids[1])  # from the owner's journal: the owner is alive
        assert _stored(store) == [ids[1]]
        assert not other.recover("no-such-id")
        owner.flush()  # writes ids[1] a second time: the store keeps the one it has
        assert sorted(_stored(store)) == sorted(ids) and owner.written == 2
        assert not list(journal.glob("*.jsonl"))  # written, so the segment is gone
    finally:
        owner.close()
        other.close()
    assert not list(journal.iterdir())  # a clean shutdown leaves nothing to replay


_KILLED_PROCESS = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from features.taxonomy import load_taxonomy
    from serving.store import NewRecommendation, ServedLog, Store
    url, schema, directory, n = sys.argv[1:]
    store = Store(url, load_taxonomy(), schema=schema or None)
    served_log = ServedLog(store, flush_interval_s=30, journal_dir=Path(directory))
    served_log.start()
    ids = []
    for i in range(int(n)):
        row = NewRecommendation(request_id=f"r{i}", account_id="A1", content_id="C007",
                                rank=1, expected_value=1.0, propensity=0.5, policy="test")
        ids += served_log.log([row])
    print(" ".join(ids), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # before the writer's first batch
    """
)


def test_the_journal_of_a_killed_process_is_replayed_by_the_next(
    store: Store, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_PROCESS, store.url, store.schema or "", str(journal), "25"],
        env=server_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    ids = killed.stdout.split()
    assert len(ids) == 25 and _stored(store) == []
    successor = ServedLog(store, flush_interval_s=30, journal_dir=journal)
    successor.start()  # replays what dead processes left
    try:
        assert successor.replayed == 25
        assert sorted(_stored(store)) == sorted(ids)
        assert successor.replay() == 0  # nothing twice
        [lock] = journal.glob("*.lock")  # the successor's own; the dead one's is gone
        assert lock.name.startswith(f"{os.getpid()}-")
    finally:
        successor.close()


# -- an answer nobody waits for ---------------------------------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, registry: TrainedRegistry) -> Iterator[Api]:
    with open_api("sqlite", tmp_path_factory.mktemp("durability-api"), registry) as opened:
        yield opened


def _call_with_client_gone(api: Api, path: str, query: bytes) -> list[Message]:
    """Runs a GET through the app as a client that disconnected before the answer."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", api.headers()["Authorization"].encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    api.client.portal.call(api.client.app, scope, receive, send)  # type: ignore[attr-defined]
    return sent


def _served_count(api: Api) -> int:
    api.flush()
    return sum(len(logged_recommendations(api.store, a)) for a in api.account_ids)


def test_an_answer_whose_client_has_gone_is_not_logged(api: Api) -> None:
    account = api.account_ids[0]
    reps = api.registry.data.accounts.set_index("account_id")["owner_rep_id"]
    rep = str(reps[account])
    path = f"/v1/accounts/{account}/recommendations"
    # A client that waits gets its answer logged (and warms the caches).
    assert api.client.get(path, params={"k": 3}, headers=api.headers()).status_code == 200
    worklist = api.client.get(f"/v1/reps/{rep}/actions", headers=api.headers())
    assert worklist.status_code == 200 and worklist.json()["items"]
    before = _served_count(api)
    assert before > 0

    for gone_path, query in ((path, b"k=3"), (f"/v1/reps/{rep}/actions", b"")):
        sent = _call_with_client_gone(api, gone_path, query)
        assert sent and sent[0]["status"] == 499, sent[:1]
    services: Services = api.client.app.state.services  # type: ignore[attr-defined]
    assert services.served_log.pending == 0
    assert _served_count(api) == before


# -- a real server, killed and overloaded -----------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    registry: TrainedRegistry,
) -> Iterator[Loaded]:
    """A store on each backend with N_ACCOUNTS simulated accounts and an admin key, and the
    environment of a server over it."""
    directory = tmp_path_factory.mktemp(f"durability-{request.param}")
    with open_store(request.param, directory, registry.taxonomy) as store:
        ids = loaded_accounts(registry, N_ACCOUNTS)
        store.load_data(select_accounts(registry.data, ids))
        key = store.create_api_key("durability", ["admin"])
        owners = registry.data.accounts.set_index("account_id")["owner_rep_id"]
        reps = sorted({str(owners[a]) for a in ids if owners[a] is not None})
        env = server_env(
            NBA_DATABASE_URL=store.url,
            NBA_DATABASE_SCHEMA=store.schema or "",
            MLFLOW_TRACKING_URI=registry.tracking_uri,
            NBA_RELOAD_INTERVAL_S="0",
            # each backend's journals in a directory of their own
            NBA_SERVED_LOG_DIR=str(directory / "journals"),
        )
        yield Loaded(env, ids, reps, key)


@pytest.mark.slow
def test_no_recommendation_id_is_lost_when_workers_are_killed(
    loaded: Loaded, tmp_path: Path
) -> None:
    env = {**loaded.env, "NBA_SERVED_LOG_FLUSH_S": SLOW_FLUSH_S}
    log = tmp_path / "server.log"
    first = Server(env, 2, log)
    try:
        first.wait_ready()
        traffic = Traffic(first.base, loaded)
        try:
            kill_mid_traffic(first, traffic.count, 150, "ids answered")
        finally:
            traffic.stop()
    finally:
        first.stop()
    answered = set(traffic.answered)
    assert len(answered) == len(traffic.answered) >= 300
    assert set(traffic.statuses) == {200}, traffic.statuses

    with serving(env, 2, log) as second:
        headers = {"Authorization": f"Bearer {loaded.key}"}

        def feedback(ids: list[str]) -> Counter[int]:
            with httpx.Client(base_url=second.base, headers=headers, timeout=120) as client:
                return Counter(
                    client.post(
                        "/v1/feedback", json={"recommendation_id": rid, "outcome": "shown"}
                    ).status_code
                    for rid in ids
                )

        ordered = sorted(answered)
        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = sum(pool.map(feedback, [ordered[i::6] for i in range(6)]), Counter())
    assert statuses == Counter({201: len(answered)}), statuses
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
def test_no_acknowledged_event_is_lost_when_workers_are_killed(
    loaded: Loaded, tmp_path: Path, registry: TrainedRegistry
) -> None:
    log = tmp_path / "server.log"
    server = Server(loaded.env, 2, log)
    try:
        server.wait_ready()
        traffic = EventTraffic(server.base, loaded.key, loaded.accounts)
        try:
            kill_mid_traffic(server, traffic.count, 200, "events acknowledged")
        finally:
            traffic.stop()
    finally:
        server.stop()
    acknowledged = set(traffic.acknowledged)
    assert len(acknowledged) == len(traffic.acknowledged) >= 400
    assert set(traffic.statuses) <= {200, 503}, traffic.statuses  # none failed
    store = Store(
        loaded.env["NBA_DATABASE_URL"],
        registry.taxonomy,
        schema=loaded.env["NBA_DATABASE_SCHEMA"] or None,
    )
    try:
        with store.engine.connect() as conn:
            stored = set(
                conn.scalars(select(Touchpoint.event_id).where(Touchpoint.event_id.like("kill-%")))
            )
    finally:
        store.dispose()
    assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged events lost"
    assert "Traceback" not in log.read_text()


def _http_layer_only(loaded: Loaded) -> None:
    """Shedding and connection handling happen before the store: one backend shows them."""
    if loaded.env["NBA_DATABASE_SCHEMA"]:
        pytest.skip("the HTTP layer is the same over either store; run on SQLite")


def test_an_overloaded_worker_sheds_with_503_and_retry_after(
    loaded: Loaded, tmp_path: Path
) -> None:
    _http_layer_only(loaded)
    env = {**loaded.env, "NBA_MAX_INFLIGHT": "1"}
    headers = {"Authorization": f"Bearer {loaded.key}"}
    with serving(env, 1, tmp_path / "server.log") as server:

        def call(i: int) -> tuple[int, str | None, str]:
            # worklists score all a rep's accounts (slow on a fresh worker); mixed with
            # single accounts' recommendations and health checks (never shed)
            with httpx.Client(base_url=server.base, headers=headers, timeout=120) as client:
                if i % 3 == 2:
                    r = client.get("/health")
                elif i % 3:
                    r = client.get(f"/v1/reps/{loaded.reps[i % len(loaded.reps)]}/actions")
                else:
                    account = loaded.accounts[i % len(loaded.accounts)]
                    r = client.get(f"/v1/accounts/{account}/recommendations")
                return r.status_code, r.headers.get("retry-after"), r.text

        with ThreadPoolExecutor(max_workers=24) as pool:
            results = list(pool.map(call, range(72)))
        statuses = Counter(code for code, _, _ in results)
        assert set(statuses) == {200, 503}, statuses  # some shed, none failed
        assert {after for code, after, _ in results if code == 503} == {"1"}
        # shed at the door (nba serve's protocol), before the app: another request was in
        # progress; health checks always reach the app
        assert all(
            "NBA_MAX_INFLIGHT 1 requests received and not answered" in text
            for code, _, text in results
            if code == 503
        )
        assert all(code == 200 for i, (code, _, _) in enumerate(results) if i % 3 == 2)
        # the worker is not stuck: one request at a time is answered. A request sent the
        # moment the previous answer arrives can find that request's task not yet finished
        # (uvicorn drops it a loop step later) and be shed: sent again, as a client must.
        retried = 0
        with httpx.Client(base_url=server.base, headers=headers, timeout=120) as client:
            for account in loaded.accounts[:3]:
                answers: list[httpx.Response] = []

                def answered(
                    path: str = f"/v1/accounts/{account}/recommendations",
                    answers: list[httpx.Response] = answers,
                ) -> bool:
                    answers.append(client.get(path))
                    return answers[-1].status_code != 503

                wait_for(answered, "an answer that is not shed", timeout_s=60)
                assert answers[-1].status_code == 200, answers[-1].text
                retried += sum(r.status_code == 503 for r in answers)
            metrics = client.get("/metrics").text
        shed = next(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("nba_http_requests_shed_total")
        )
        assert shed == statuses[503] + retried


def test_a_request_that_waited_too_long_in_a_standing_queue_is_shed() -> None:
    async def ok(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    limit = InflightLimit(ok, max_inflight=100, metrics=Metrics(), max_queue_s=0.05)

    async def status(waited_s: float, waiting: int, *, stamped: bool = True) -> int:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        scope: Scope = {"type": "http", "method": "GET", "path": "/v1/x", "headers": []}
        if stamped:  # as serving.http_protocol stamps it: received, and the requests waiting
            now = asyncio.get_running_loop().time()
            stamp = {RECEIVED_AT: now - waited_s, REQUESTS: set(range(waiting))}
            scope["extensions"] = {EXTENSION: stamp}
        await limit(scope, receive, send)
        return int(sent[0]["status"])

    async def scenario() -> None:
        assert await status(0.001, 40) == 200  # a queue, but short waits
        assert await status(0.2, 1) == 200  # one late request alone: a pause, no queue
        assert await status(0.2, SHED_MIN_WAITING - 1) == 200
        assert await status(0.2, SHED_MIN_WAITING) == 503  # a standing queue
        assert await status(0.2, 40, stamped=False) == 200  # no receive time: not judged

    anyio.run(scenario)


def _until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a 60 s socket timeout
    fails the test if it never does)."""
    received = b""
    while chunk := connection.recv(4096):
        received += chunk
    return received


def test_a_connection_that_does_not_send_its_request_head_in_time_is_closed(
    loaded: Loaded, tmp_path: Path
) -> None:
    _http_layer_only(loaded)
    env = {**loaded.env, "NBA_HEADER_TIMEOUT_S": "1"}
    with serving(env, 1, tmp_path / "server.log") as server:
        address = ("127.0.0.1", int(server.base.rsplit(":", 1)[1]))
        silent = socket.create_connection(address, timeout=60)  # sends nothing at all
        trickling = socket.create_connection(address, timeout=60)
        trickling.sendall(b"GET /health HTTP/1.1\r\n")
        trickling.sendall(b"Host: x\r\n")  # ... and the rest of its head never comes
        for connection in (silent, trickling):
            with connection:
                assert _until_closed(connection).startswith(b"HTTP/1.1 408 "), connection
        # a client that sends its requests promptly keeps its connection across requests
        with httpx.Client(base_url=server.base, timeout=60) as client:
            for _ in range(3):
                assert client.get("/health").status_code == 200


def test_event_batches_beyond_the_ingest_limit_are_shed_with_retry_after() -> None:
    started = [anyio.Event(), anyio.Event()]  # set as the first and the second call enters
    release = anyio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        next(e for e in started if not e.is_set()).set()
        await release.wait()
        await PlainTextResponse("ok")(scope, receive, send)

    limit = InflightLimit(slow, max_inflight=100, metrics=Metrics(), max_ingest=1)

    async def call(method: str, path: str) -> tuple[int, str | None]:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        scope: Scope = {"type": "http", "method": method, "path": path, "headers": []}
        await limit(scope, receive, send)
        headers = dict(sent[0].get("headers", []))
        return int(sent[0]["status"]), (headers.get(b"retry-after") or b"").decode() or None

    async def scenario() -> None:
        results: list[tuple[int, str | None]] = []

        async def first() -> None:
            results.append(await call("POST", "/v1/events"))

        async with anyio.create_task_group() as group:
            group.start_soon(first)
            await started[0].wait()  # one batch in progress
            assert await call("POST", "/v1/events") == (503, "1")  # a second is shed at once
            group.start_soon(call, "GET", "/v1/accounts/A1/recommendations")
            await started[1].wait()  # other requests are still taken
            release.set()
        assert results == [(200, None)]

    anyio.run(scenario)


def test_a_write_that_waits_out_the_sqlite_busy_timeout_is_a_retryable_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_engine, "SQLITE_BUSY_TIMEOUT_MS", 200)
    with open_store("sqlite", tmp_path, load_taxonomy()) as store:
        holder = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(StoreBusyError) as busy:
            store.ingest_events([event("busy-1", "A-busy", content_id=None)], now=LATER)
        assert busy.value.http_status == 503
        assert busy.value.retry_after_s is not None
        assert "nothing was stored" in str(busy.value)
        holder.execute("ROLLBACK")
        holder.close()
        result = store.ingest_events([event("busy-1", "A-busy", content_id=None)], now=LATER)
        assert result.accepted == 1  # the lock gone, the same batch is stored
