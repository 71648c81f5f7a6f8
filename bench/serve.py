"""Benchmark: the recommendation service under load, from a second process on loopback.

    python -m bench.serve --data out/bench-data-100000-7 --workdir out/serve-bench

Needs champion models in ``WORKDIR/mlflow.db`` (``MLFLOW_TRACKING_URI=sqlite:///WORKDIR/mlflow.db
nba train all --data DATA``). Loads DATA into ``WORKDIR/nba.db`` once, then measures:

- warm GET /v1/accounts/{id}/recommendations at a fixed offered rate (default 200/s for 60 s,
  one worker): p50/p99 latency from the scheduled send time (no coordinated omission), errors;
- the same for accounts whose caches are cold (first request after start);
- maximum sustained throughput with 2 workers (wrk, closed loop), when wrk is installed;
- POST /v1/events throughput in batches of 500 into SQLite;
- one account's churn score from ``mlflow models serve`` against ours (p50 of each).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
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

from bench.measure import machine


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


def ensure_store(data_dir: Path, url: str) -> float:
    """Load DATA into the store once; returns seconds spent (0 when already loaded)."""
    from features.load import read_data_dir
    from features.taxonomy import load_taxonomy
    from serving.store import Store

    taxonomy = load_taxonomy()
    store = Store(url, taxonomy)
    store.migrate()
    if store.counts().get("accounts", 0):
        return 0.0
    started = time.perf_counter()
    store.load_data(read_data_dir(data_dir, taxonomy))
    return time.perf_counter() - started


def create_key(url: str) -> str:
    from features.taxonomy import load_taxonomy
    from serving.store import Store

    store = Store(url, load_taxonomy())
    return store.create_api_key(
        f"bench-{time.time_ns()}", ["recommendations:read", "events:write", "feedback:write"]
    )


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
    return asyncio.run(_fixed_rate(**args))


async def _fixed_rate(
    base: str, key: str, paths: list[str], rate: float, duration_s: float
) -> dict[str, Any]:
    # aiohttp, not httpx: httpx's connection pool spends O(n^2) CPU once hundreds of
    # requests queue, which would make the load generator the bottleneck.
    import aiohttp

    n = int(rate * duration_s)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=30)
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
                    await response.read()
                    if response.status != 200:
                        errors[str(response.status)] = errors.get(str(response.status), 0) + 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            latencies.append(time.perf_counter() - scheduled)

        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - start
    return {"requests": n, "elapsed_s": elapsed, "latencies": latencies, "errors": errors}


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


def _churn_champion_inputs(tracking_uri: str) -> list[str]:
    """The input columns of the champion churn model's signature (from its MLmodel file)."""
    import mlflow
    from mlflow.models import Model

    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = client.get_model_version_by_alias("nba-churn", "champion")
    # MLflow 3 registers logged models by id; source is "models:/<model_id>"
    model_id = version.model_id or str(version.source).removeprefix("models:/")
    location = client.get_logged_model(model_id).artifact_location
    mlmodel = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{location}/MLmodel", dst_path=tempfile.mkdtemp()
    )
    schema = Model.load(mlmodel).get_input_schema()
    assert schema is not None, "the champion churn model has no input signature"
    return list(schema.input_names())


def _log_tail(log: Path, lines: int = 15, width: int = 400) -> str:
    """The last lines of a server log, each cut to ``width`` characters."""
    if not log.exists():
        return f"(no log at {log})"
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return f"last lines of {log}:\n" + "\n".join(line[:width] for line in tail)


def mlflow_serve_comparison(
    base: str, key: str, account_id: str, tracking_uri: str, repeats: int = 200
) -> dict[str, Any]:
    """p50 of one account's scores from our API against `mlflow models serve` answering
    the churn model for the same account's feature row (the model's signature columns)."""
    import signal

    import httpx
    import pandas as pd

    from features.pipeline import build_account_features
    from features.taxonomy import load_taxonomy
    from serving.store import Store

    taxonomy = load_taxonomy()
    store = Store(os.environ["NBA_DATABASE_URL"], taxonomy)
    data = store.account_data(account_id)
    assert data is not None
    row = build_account_features(data, account_id, pd.Timestamp.now(tz="UTC"), taxonomy)
    # Only the columns the model takes: the scoring server logs a multi-kB warning naming
    # every extra column on every request otherwise.
    frame = row.to_frame().T[_churn_champion_inputs(tracking_uri)]
    payload = {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}
    port = free_port()
    # The server's output goes to a file, never to an unread pipe: once the 64 KiB pipe
    # buffer is full, the server blocks on its next log write and requests time out.
    db = tracking_uri.removeprefix("sqlite:///")
    logdir = Path(db).parent if db != tracking_uri else Path(tempfile.mkdtemp())
    log = logdir / "mlflow-serve.log"
    # mlflow starts its scoring server with a bare `uvicorn`: it must be on PATH
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": path}
    with log.open("wb") as out:
        # own session: stopping the group also stops the uvicorn child mlflow starts
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/nba-churn@champion",
             "-p", str(port), "--env-manager", "local"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    theirs: list[float] = []
    ours: list[float] = []
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited; {_log_tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow models serve not ready after 120 s; {_log_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        headers = {"Authorization": f"Bearer {key}"}
        ours_path = f"{base}/v1/accounts/{account_id}/recommendations"
        with httpx.Client(timeout=30) as client:
            try:
                # one untimed request each: checks the answers and warms both servers up
                r = client.post(f"{url}/invocations", json=payload)
                if r.status_code != 200 or "predictions" not in r.json():
                    raise RuntimeError(f"/invocations answered {r.status_code}: {r.text[:500]}")
                prediction = r.json()["predictions"]
                for _ in range(repeats):
                    t = time.perf_counter()
                    r = client.post(f"{url}/invocations", json=payload)
                    theirs.append(time.perf_counter() - t)
                    r.raise_for_status()
            except (httpx.HTTPError, RuntimeError, ValueError) as exc:
                raise RuntimeError(f"mlflow models serve: {exc!r}; {_log_tail(log)}") from exc
            status = r.status_code
            client.get(ours_path, headers=headers).raise_for_status()
            for _ in range(repeats):
                t = time.perf_counter()
                client.get(ours_path, headers=headers).raise_for_status()
                ours.append(time.perf_counter() - t)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    ours_p50 = percentiles(ours)["p50_ms"]
    theirs_p50 = percentiles(theirs)["p50_ms"]
    return {
        "ours_full_answer_p50_ms": ours_p50,
        "mlflow_models_serve_churn_only_p50_ms": theirs_p50,
        "mlflow_status": status,
        "mlflow_prediction": prediction,
        "ours_over_theirs": round(ours_p50 / theirs_p50, 2) if theirs_p50 else None,
        "mlflow_log": str(log),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("out/bench-data-100000-7"))
    parser.add_argument("--workdir", type=Path, default=Path("out/serve-bench"))
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--accounts", type=int, default=500, help="warm accounts to hit")
    parser.add_argument("--cold-accounts", type=int, default=300)
    parser.add_argument("--cold-rate", type=float, default=10)
    parser.add_argument(
        "--warm-up", type=int, default=60, help="seconds of wrk warming the 2 workers' caches"
    )
    args = parser.parse_args()

    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{workdir / 'nba.db'}"
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    result: dict[str, Any] = {"benchmark": "serve", "date": time.strftime("%Y-%m-%d")}
    result["store_load_s"] = round(ensure_store(args.data.resolve(), db_url), 1)
    key = create_key(db_url)
    env = {
        **os.environ,
        "NBA_DATABASE_URL": db_url,
        "MLFLOW_TRACKING_URI": tracking,
        "NBA_RELOAD_INTERVAL_S": "3600",
    }
    os.environ["NBA_DATABASE_URL"] = db_url

    import pandas as pd

    accounts = pd.read_parquet(args.data / "accounts.parquet", columns=["account_id"])
    rng = np.random.default_rng(7)
    n_sample = args.accounts + args.cold_accounts
    sample = [str(a) for a in rng.choice(accounts["account_id"], n_sample, replace=False)]
    paths = [f"/v1/accounts/{a}/recommendations?k=5" for a in sample]
    warm_paths, cold_paths = paths[: args.accounts], paths[args.accounts :]

    log = workdir / "server.log"
    with server(env, workers=1, log=log) as base:
        import httpx

        # cold: the first request for each account after start
        cold_rate = args.cold_rate
        cold = run_generator(
            {"base": base, "key": key, "paths": cold_paths, "rate": cold_rate,
             "duration_s": len(cold_paths) / cold_rate}
        )  # fmt: skip
        result["cold_cache"] = fixed_rate_result(cold, cold_rate)
        print(json.dumps(result), file=sys.stderr, flush=True)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
            for path in warm_paths:
                client.get(path, timeout=30)
        warm = run_generator(
            {"base": base, "key": key, "paths": warm_paths, "rate": args.rate,
             "duration_s": args.duration}
        )  # fmt: skip
        result["warm_cache_1_worker"] = fixed_rate_result(warm, args.rate)
        print(json.dumps(result), file=sys.stderr, flush=True)
        result["events_batches_of_500"] = events_throughput(base, key, sample, batches=40)
        print(json.dumps(result), file=sys.stderr)  # partial results, in case a later step fails
        try:
            result["mlflow_models_serve"] = mlflow_serve_comparison(base, key, sample[0], tracking)
        except Exception as exc:  # the comparison is a side measurement; keep the rest
            result["mlflow_models_serve"] = {"error": f"{type(exc).__name__}: {exc}"}

    with server(env, workers=2, log=log) as base:
        # Each worker has its own cache, and the events above changed the warm accounts'
        # data: a first wrk run (reported too) computes both workers' caches, the second
        # is measured.
        result["warm_up_2_workers"] = wrk_max_throughput(
            base, key, warm_paths, args.warm_up, connections=8
        )
        result["max_throughput_2_workers"] = wrk_max_throughput(base, key, warm_paths, 20)
    result["machine"] = machine()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
