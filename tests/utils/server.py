"""A real ``nba serve`` for tests: started in a process group of its own (so a test can kill
it whole with SIGKILL), waited on until ready, and traffic that keeps what it was answered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from tests.utils.net import free_port

ROOT = Path(__file__).resolve().parents[2]


def server_env(**variables: str) -> dict[str, str]:
    """This environment with the worktree first on the path (subprocesses run its code)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **variables}


@dataclass(frozen=True)
class Loaded:
    env: dict[str, str]
    accounts: list[str]
    reps: list[str]
    key: str


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.05)


class Server:
    """``nba serve`` in a process group of its own, so a test can kill it whole."""

    def __init__(self, env: dict[str, str], workers: int, log: Path) -> None:
        self.log = log
        self.base = f"http://127.0.0.1:{free_port()}"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "nba", "serve", "--port", self.base.rsplit(":", 1)[1],
                 "--workers", str(workers), "--no-access-log"],
                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                return httpx.get(f"{self.base}/ready", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, "the server becoming ready")

    def workers(self) -> list[int]:
        """The uvicorn worker processes' ids (multiprocessing's spawned children)."""
        children = psutil.Process(self.process.pid).children()
        return [c.pid for c in children if "spawn_main" in " ".join(c.cmdline())]

    def kill(self) -> None:
        """SIGKILL to the supervisor and every worker at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)


def kill_mid_traffic(server: Server, count: Callable[[], int], step: int, what: str) -> None:
    """Once ``step`` more ``what`` are counted, SIGKILL to one worker (uvicorn starts
    another); after ``step`` more, SIGKILL to the whole process group, mid-traffic."""
    wait_for(lambda: count() >= step, f"{step} {what}")
    os.kill(server.workers()[0], signal.SIGKILL)
    at_kill = count()
    wait_for(lambda: count() >= at_kill + step, f"{step} more {what}")
    server.kill()


@contextmanager
def serving(env: dict[str, str], workers: int, log: Path) -> Iterator[Server]:
    server = Server(env, workers, log)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


class Traffic:
    """Threads asking for recommendations until stopped, keeping every recommendation id an
    answer carried; a request the server did not answer (killed) is simply tried again."""

    def __init__(self, base: str, loaded: Loaded, threads: int = 6) -> None:
        self.answered: list[str] = []
        self.statuses: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(base, loaded, i), daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, base: str, loaded: Loaded, offset: int) -> None:
        headers = {"Authorization": f"Bearer {loaded.key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            n = offset
            while not self._stop.is_set():
                account = loaded.accounts[n % len(loaded.accounts)]
                n += 7
                try:
                    r = client.get(f"/v1/accounts/{account}/recommendations", params={"k": 2})
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                with self._lock:
                    self.statuses[r.status_code] += 1
                    if r.status_code == 200:
                        self.answered.extend(a["recommendation_id"] for a in r.json()["actions"])

    def count(self) -> int:
        with self._lock:
            return len(self.answered)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(90)


class EventTraffic:
    """Threads posting batches of new events until stopped, keeping the event ids of every
    batch the server acknowledged (answered 200 with every record accepted); a batch the
    server did not answer (killed) or shed (503) is sent again, as a client would."""

    def __init__(self, base: str, key: str, accounts: list[str], threads: int = 4) -> None:
        self.acknowledged: list[str] = []
        self.statuses: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(base, key, accounts, i), daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, base: str, key: str, accounts: list[str], offset: int) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            n = 0
            while not self._stop.is_set():
                ids = [f"kill-{offset}-{n}-{i}" for i in range(EVENTS_PER_BATCH)]
                events = [
                    {
                        "event_id": eid,
                        "account_id": accounts[(n + i) % len(accounts)],
                        "ts": "2025-06-20T10:00:00Z",
                        "channel": "website",
                        "event_type": "view",
                    }
                    for i, eid in enumerate(ids)
                ]
                try:
                    r = client.post("/v1/events", json={"events": events})
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue  # not acknowledged: sent again under the same ids
                with self._lock:
                    self.statuses[r.status_code] += 1
                if r.status_code == 503:  # shed (the worker's ingest limit): sent again
                    time.sleep(float(r.headers.get("retry-after", "1")))
                    continue
                with self._lock:
                    body = r.json() if r.status_code == 200 else {}
                    if body.get("accepted", 0) + body.get("duplicates", 0) == len(ids):
                        self.acknowledged.extend(ids)
                n += 1

    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(90)


EVENTS_PER_BATCH = 20
