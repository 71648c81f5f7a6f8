"""Load against the service: an ``nba serve`` process, fixed-rate GETs from a second process
(latency from the scheduled send time), wrk's closed-loop maximum, and event batches."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentiles(latencies_s: list[float]) -> dict[str, float]:
    if not latencies_s:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    ms = np.asarray(latencies_s) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p90_ms": round(float(np.percentile(ms, 90)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
    }


@contextlib.contextmanager
def server(env: dict[str, str], workers: int, log: Path) -> Iterator[str]:
    """``nba serve`` on a free port, without access logs (as a production deployment behind
    a proxy that logs would run), its output in ``log``."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "nba", "serve", "--port", str(port), "--workers",
             str(workers), "--no-access-log", "--log-level", "warning"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process, log)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_ready(
    base: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 180
) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"server at {base} not ready after {timeout_s} s")


def load_generator(args: dict[str, Any]) -> dict[str, Any]:
    """Run in a separate process: fixed-rate GETs; returns latencies and errors."""
    return asyncio.run(fixed_rate(**args))


async def fixed_rate(
    base: str,
    key: str,
    paths: list[str],
    rate: float,
    duration_s: float,
    *,
    timeout_s: float = 30,
    collect_ids: bool = False,
) -> dict[str, Any]:
    """Open-loop GETs at ``rate`` for ``duration_s``: each latency from its scheduled send
    (no coordinated omission), the non-200 outcomes counted in ``errors``, every outcome with
    its latency in ``outcomes`` and, with ``collect_ids``, the recommendation ids answered."""
    # aiohttp, not httpx: httpx's connection pool spends O(n^2) CPU once hundreds of
    # requests queue, which would make the load generator the bottleneck.
    import aiohttp

    n = int(rate * duration_s)
    latencies: list[float] = []
    outcomes: list[tuple[str, float]] = []
    errors: dict[str, int] = {}
    ids: list[str] = []
    connector = aiohttp.TCPConnector(limit=1024)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(
        base_url=base,
        headers={"Authorization": f"Bearer {key}"},
        connector=connector,
        timeout=timeout,
    ) as session:
        start = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            try:
                async with session.get(paths[i % len(paths)]) as response:
                    body = await response.read()
                    status = str(response.status)
                    if response.status == 200 and collect_ids:
                        ids.extend(a["recommendation_id"] for a in json.loads(body)["actions"])
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            if status != "200":
                errors[status] = errors.get(status, 0) + 1
            latency = time.perf_counter() - scheduled
            latencies.append(latency)
            outcomes.append((status, latency))

        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - start
    return {
        "requests": n,
        "elapsed_s": elapsed,
        "latencies": latencies,
        "outcomes": outcomes,
        "errors": errors,
        "ids": ids,
    }


def run_generator(args: dict[str, Any]) -> dict[str, Any]:
    """The load generator in a second process (spawned, so it shares nothing with us)."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(load_generator, (args,))


def fixed_rate_result(raw: dict[str, Any], rate: float) -> dict[str, Any]:
    return {
        "offered_rate_per_s": rate,
        "requests": raw["requests"],
        "achieved_rate_per_s": round(raw["requests"] / raw["elapsed_s"], 1),
        "errors": raw["errors"],
        **percentiles(raw["latencies"]),
    }


def wrk_max_throughput(
    base: str, key: str, paths: list[str], seconds: int, connections: int = 32
) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (apt-get install -y wrk)"}
    script = Path(tempfile.mkdtemp()) / "paths.lua"
    quoted = ",".join(json.dumps(p) for p in paths)
    script.write_text(
        f"local paths = {{{quoted}}}\n"
        "local i = 0\n"
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        "request = function()\n  i = i + 1\n"
        "  return wrk.format('GET', paths[(i % #paths) + 1])\nend\n"
    )
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
         base],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = done.stdout
    rps = float(out.split("Requests/sec:")[1].split()[0])
    non2xx = int(out.split("Non-2xx or 3xx responses:")[1].split()[0]) if "Non-2xx" in out else 0
    latency = {
        line.split()[0]: line.split()[1]
        for line in out.splitlines()
        if line.strip().startswith(("50%", "99%"))
    }
    return {
        "seconds": seconds,
        "requests_per_s": rps,
        "non_2xx": non2xx,
        "latency": latency,
        "connections": connections,
    }


def events_throughput(base: str, key: str, account_ids: list[str], batches: int) -> dict[str, Any]:
    import httpx

    now = time.time()
    sent = 0
    started = time.perf_counter()
    accepted = 0
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        for b in range(batches):
            events = [
                {
                    "event_id": f"bench-{os.getpid()}-{b}-{i}",
                    "account_id": account_ids[(b * 500 + i) % len(account_ids)],
                    "ts": time.strftime(
                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600 - (b * 500 + i) % 3000)
                    ),
                    "channel": "website",
                    "event_type": "view",
                    "value": 2.5,
                }
                for i in range(500)
            ]
            response = client.post("/v1/events", json={"events": events}, timeout=300)
            response.raise_for_status()
            accepted += int(response.json()["accepted"])
            sent += len(events)
    elapsed = time.perf_counter() - started
    return {
        "batches": batches,
        "batch_size": 500,
        "events": sent,
        "accepted": accepted,
        "events_per_s": round(sent / elapsed),
    }
