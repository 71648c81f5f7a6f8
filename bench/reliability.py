"""Benchmark: the service's promises under failure and overload, from a second process.

    python -m bench.reliability --data out/bench-data-100000-7 --workdir out/serve-bench

Needs champion models in ``WORKDIR/mlflow.db`` (or ``--tracking-uri``) and loads DATA into
``WORKDIR/nba.db`` once (as ``bench.serve``). Measures:

- kill -9: recommendation traffic against 2 workers; at a random moment one worker, or the
  whole process group, is killed with SIGKILL (the group is then started again); feedback on
  every recommendation id an answer carried must succeed. Reports acknowledged ids lost
  (target 0) per kill;
- overload: the sustainable rate of one worker (closed loop), then 3x that rate offered open
  loop with 2 s client timeouts: the share answered within 100 ms, the share shed (503), other
  failures, actions logged as served that no client received, and acknowledged ids lost;
- warm p99 at a fixed rate (default 200/s) on one worker (``bench.serve``'s generator);
- memory: one worker's resident memory before, right after and 10 s after 30 concurrent
  ``POST /v1/events`` batches of 10,000 new events each.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from bench.measure import machine
from bench.serve import (
    create_key,
    ensure_store,
    fixed_rate_result,
    free_port,
    percentiles,
    run_generator,
    server,
    wait_ready,
)
from bench.serve_load import fixed_rate


def start(env: dict[str, str], workers: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``nba serve`` in a process group of its own (so it can be killed whole), ready."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "nba", "serve", "--port", str(port), "--workers",
             str(workers), "--no-access-log", "--log-level", "warning"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, process, log)
    return process, base


def workers_of(process: subprocess.Popen[bytes]) -> list[int]:
    children = psutil.Process(process.pid).children()
    return [c.pid for c in children if "spawn_main" in " ".join(c.cmdline())]


def feedback_all(base: str, key: str, ids: list[str], threads: int = 6) -> Counter[str]:
    """POST shown feedback on every id; counts the answers' status codes (503s retried)."""

    def send(part: list[str]) -> Counter[str]:
        counts: Counter[str] = Counter()
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            for rid in part:
                for _ in range(20):
                    r = client.post(
                        "/v1/feedback", json={"recommendation_id": rid, "outcome": "shown"}
                    )
                    if r.status_code != 503:
                        break
                    time.sleep(float(r.headers.get("retry-after", "1")))
                counts[str(r.status_code)] += 1
        return counts

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(send, [ids[i::threads] for i in range(threads)]), Counter())


class Traffic:
    """Threads asking for recommendations until stopped, keeping the ids answers carried."""

    def __init__(self, base: str, key: str, paths: list[str], threads: int = 6) -> None:
        self.ids: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(base, key, paths[i::threads]), daemon=True)
            for i in range(threads)
        ]
        for t in self._threads:
            t.start()

    def _run(self, base: str, key: str, paths: list[str]) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            i = 0
            while not self._stop.is_set():
                i += 1
                try:
                    r = client.get(paths[i % len(paths)])
                except httpx.HTTPError:  # the worker was killed mid-request: not answered
                    time.sleep(0.02)
                    continue
                if r.status_code == 200:
                    with self._lock:
                        self.ids.extend(a["recommendation_id"] for a in r.json()["actions"])

    def stop(self) -> list[str]:
        self._stop.set()
        for t in self._threads:
            t.join(60)
        return self.ids


def kill_runs(env: dict[str, str], key: str, paths: list[str], runs: int, log: Path) -> Any:
    """``runs`` kills at random moments, alternating one worker and the whole group."""
    rng = random.Random(7)
    results = []
    process, base = start(env, 2, log)
    try:
        for run in range(runs):
            traffic = Traffic(base, key, paths)
            time.sleep(rng.uniform(2.0, 5.0))
            whole = run % 2 == 1
            if whole:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)
            else:
                os.kill(workers_of(process)[0], signal.SIGKILL)
            time.sleep(0.5)  # requests in flight fail; clients retry against the rest
            ids = traffic.stop()
            if whole:
                process, base = start(env, 2, log)
            statuses = feedback_all(base, key, ids)
            results.append(
                {
                    "killed": "process group" if whole else "one worker",
                    "ids_answered": len(ids),
                    "feedback_statuses": dict(statuses),
                    "acknowledged_ids_lost": len(ids) - statuses.get("201", 0),
                }
            )
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(60)
    return {
        "runs": results,
        "acknowledged_ids_lost": sum(r["acknowledged_ids_lost"] for r in results),
    }


def _served_total(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=30).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("nba_recommendations_served_total")
    )


async def _closed_loop(base: str, key: str, paths: list[str], seconds: float) -> float:
    """Answers per second with 8 requests always outstanding."""
    import aiohttp

    done = 0
    async with aiohttp.ClientSession(
        base_url=base, headers={"Authorization": f"Bearer {key}"}
    ) as session:
        deadline = time.perf_counter() + seconds

        async def loop(offset: int) -> None:
            nonlocal done
            i = offset
            while time.perf_counter() < deadline:
                async with session.get(paths[i % len(paths)]) as response:
                    await response.read()
                    done += response.status == 200
                i += 8

        started = time.perf_counter()
        await asyncio.gather(*(loop(j) for j in range(8)))
        return done / (time.perf_counter() - started)


def overload(base: str, key: str, paths: list[str], seconds: float) -> dict[str, Any]:
    sustainable = asyncio.run(_closed_loop(base, key, paths, 5))
    rate = 3 * sustainable
    served_before = _served_total(base)
    raw = asyncio.run(fixed_rate(base, key, paths, rate, seconds, timeout_s=2.0, collect_ids=True))
    time.sleep(1)  # requests the server finishes after their clients gave up
    logged = _served_total(base) - served_before
    statuses: Counter[str] = Counter(status for status, _ in raw["outcomes"])
    total = sum(statuses.values())
    fast = sum(1 for s, t in raw["outcomes"] if s == "200" and t <= 0.1)
    answered = statuses.get("200", 0)
    feedback = feedback_all(base, key, raw["ids"])
    return {
        "sustainable_rate_per_s": round(sustainable, 1),
        "offered_rate_per_s": round(rate, 1),
        "requests": total,
        "statuses": dict(statuses),
        "share_answered_within_100ms": round(fast / total, 3),
        "share_shed_503": round(statuses.get("503", 0) / total, 3),
        "share_failed_other": round((total - answered - statuses.get("503", 0)) / total, 3),
        "answered_latency": percentiles([t for s, t in raw["outcomes"] if s == "200"]),
        "shed_latency": percentiles([t for s, t in raw["outcomes"] if s == "503"]),
        "actions_logged_not_received": int(logged - len(raw["ids"])),
        "acknowledged_ids_lost": len(raw["ids"]) - feedback.get("201", 0),
    }


def ingest_memory(
    base: str, key: str, pid: int, account_ids: list[str], batches: int = 30, size: int = 10_000
) -> dict[str, Any]:
    """Resident memory (MB) of worker ``pid`` around ``batches`` concurrent event batches."""
    worker = psutil.Process(pid)

    def rss_mb() -> float:
        return round(worker.memory_info().rss / 2**20, 1)

    def post(batch: int) -> int:
        events = [
            {
                "event_id": f"mem-{batch}-{i}",
                "account_id": account_ids[(batch * size + i) % len(account_ids)],
                "ts": "2025-06-20T10:00:00Z",
                "channel": "website",
                "event_type": "view",
            }
            for i in range(size)
        ]
        headers = {"Authorization": f"Bearer {key}"}
        r = httpx.post(f"{base}/v1/events", json={"events": events}, headers=headers, timeout=600)
        return r.status_code

    before = rss_mb()
    started = time.perf_counter()
    with ThreadPoolExecutor(batches) as pool:
        statuses = Counter(str(code) for code in pool.map(post, range(batches)))
    elapsed = time.perf_counter() - started
    after = rss_mb()
    time.sleep(10)
    return {
        "batches": batches,
        "events_per_batch": size,
        "statuses": dict(statuses),
        "seconds": round(elapsed, 1),
        "rss_mb_before": before,
        "rss_mb_after": after,
        "rss_mb_10s_later": rss_mb(),
    }


def warm_and_overload(
    env: dict[str, str], key: str, paths: list[str], parts: set[str], args: Any, log: Path
) -> dict[str, Any]:
    """Warm p99 at a fixed rate and 3x overload, on one worker whose caches are warm."""
    result: dict[str, Any] = {}
    with server(env, workers=1, log=log) as base:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as c:
            for path in paths:  # warm the worker's cache
                c.get(path, timeout=60)
        if "warm" in parts:
            warm = run_generator(
                {"base": base, "key": key, "paths": paths, "rate": args.rate,
                 "duration_s": args.duration}
            )  # fmt: skip
            result["warm_1_worker"] = fixed_rate_result(warm, args.rate)
            print(json.dumps(result), file=sys.stderr, flush=True)
        if "overload" in parts:
            result["overload_3x_1_worker"] = overload(base, key, paths, args.overload_seconds)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("out/bench-data-100000-7"))
    parser.add_argument("--workdir", type=Path, default=Path("out/serve-bench"))
    parser.add_argument("--tracking-uri", default=None, help="default: WORKDIR/mlflow.db")
    parser.add_argument("--accounts", type=int, default=500, help="accounts to hit")
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--overload-seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument(
        "--only", choices=["kill", "warm", "overload", "memory"], default=None,
        help="run one part only",
    )  # fmt: skip
    args = parser.parse_args()

    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{workdir / 'nba.db'}"
    tracking = args.tracking_uri or f"sqlite:///{workdir / 'mlflow.db'}"
    result: dict[str, Any] = {"benchmark": "reliability", "date": time.strftime("%Y-%m-%d")}
    result["store_load_s"] = round(ensure_store(args.data.resolve(), db_url), 1)
    key = create_key(db_url)
    env = {
        **os.environ,
        "NBA_DATABASE_URL": db_url,
        "MLFLOW_TRACKING_URI": tracking,
        "NBA_RELOAD_INTERVAL_S": "3600",
    }
    import pandas as pd

    accounts = pd.read_parquet(args.data / "accounts.parquet", columns=["account_id"])
    rng = np.random.default_rng(7)
    n = min(args.accounts, len(accounts))
    sample = [str(a) for a in rng.choice(accounts["account_id"], n, replace=False)]
    paths = [f"/v1/accounts/{a}/recommendations?k=3" for a in sample]
    log = workdir / "reliability.log"

    parts = {args.only} if args.only else {"kill", "warm", "overload", "memory"}
    if "kill" in parts:
        result["kill_9"] = kill_runs(env, key, paths, args.kills, log)
        print(json.dumps(result), file=sys.stderr, flush=True)
    if parts & {"warm", "overload"}:
        result.update(warm_and_overload(env, key, paths, parts, args, log))
    if "memory" in parts:
        process, base = start(env, 1, log)
        try:
            # one worker: uvicorn serves in the process itself, no spawned child
            pid = (workers_of(process) or [process.pid])[0]
            result["ingest_memory_1_worker"] = ingest_memory(base, key, pid, sample)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(60)
    result["machine"] = {**machine(), "load_average": os.getloadavg()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
