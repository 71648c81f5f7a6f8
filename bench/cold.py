"""Benchmark: a cold account's recommendations, from its feature state vs from all its rows.

    python -m bench.cold --data out/bench-data-20000-7 --tracking-uri sqlite:///.../mlflow.db \\
        --workdir out/cold-bench [--accounts 300] [--now 2026-01-01]

Loads DATA into ``WORKDIR/nba.db`` once (``nba load``: the rows, then every account's
feature state), then answers ``--accounts`` accounts (drawn with ``--seed``, 7), each the first
request for its account in two fresh services, in process (no HTTP): one reads the
account's feature state and decisions (what the service does now), the other all its rows
(what it did before). The two run alternately, account by account, so that other work on
the machine weighs on both alike. Then the same accounts again, warm (cache hits). Prints
one JSON object: per path the wall-clock and CPU milliseconds per answer (p50, p99), and the
features alone (from the state as values, what the cold path computes, vs from the rows as
the batch pipeline's frame).

``--now`` pins the service's clock (default: the wall clock). Simulated data end at their
last month: a clock a year later leaves most events folded into the states, so the
default-data figure at the wall clock flatters the state path; ``--now`` at the data's end
keeps a full year of events in every state.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.measure import machine


def _ensure_store(data_dir: Path, url: str, now: pd.Timestamp) -> dict[str, float]:
    """Load DATA and build the feature states once; seconds of each (0 when loaded)."""
    from features.load import read_data_dir
    from features.taxonomy import load_taxonomy
    from serving.store import Store

    store = Store(url, load_taxonomy())
    store.migrate()
    if store.counts().get("accounts", 0):
        return {"load_s": 0.0, "feature_states_s": 0.0}
    started = time.perf_counter()
    store.load_data(read_data_dir(data_dir, store.taxonomy))
    loaded = time.perf_counter()
    store.build_feature_states(now)
    return {
        "load_s": round(loaded - started, 1),
        "feature_states_s": round(time.perf_counter() - loaded, 1),
    }


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def _summary(values: list[float]) -> dict[str, float]:
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": round(float(p50), 2), "p99": round(float(p99), 2), "n": len(values)}


def _from_rows(svc: Any, account_id: str, now: pd.Timestamp) -> Any:
    """The answer as the service computed it before feature states: all the rows."""
    from serving.routes.recommendations import account_activity, dismissed_recent, served_recent

    activity = account_activity(svc, account_id, now)
    assert activity is not None, f"{account_id} is not in the store"
    return svc.scorer.score_account(
        partial(svc.store.account_data, account_id),
        account_id,
        now,
        k=5,
        rng=svc.rng,
        served=served_recent(activity),
        dismissed=dismissed_recent(activity),
        data_version=activity.data_version,
    )


def _measure(
    state_svc: Any, rows_svc: Any, first: str, sample: list[str], now: pd.Timestamp
) -> dict[str, Any]:
    """Cold answers by both paths (alternately), warm answers, features alone."""
    from serving.routes.recommendations import score
    from serving.scoring.incremental import account_source, state_values

    # one untimed account each: first-call costs (imports, LightGBM buffers)
    score(state_svc, first, now, k=5)
    _from_rows(rows_svc, first, now)
    timings: dict[str, list[float]] = {
        k: [] for k in ("state_wall", "state_cpu", "rows_wall", "rows_cpu")
    }
    for account in sample:
        a, wall, cpu = _timed(partial(score, state_svc, account, now, k=5))
        timings["state_wall"].append(wall)
        timings["state_cpu"].append(cpu)
        b, wall, cpu = _timed(partial(_from_rows, rows_svc, account, now))
        timings["rows_wall"].append(wall)
        timings["rows_cpu"].append(cpu)
        assert not a.cache_hit and not b.cache_hit
    warm_wall, warm_cpu = [], []
    for account in sample:
        a, wall, cpu = _timed(partial(score, state_svc, account, now, k=5))
        assert a.cache_hit
        warm_wall.append(wall)
        warm_cpu.append(cpu)
    setup, models = state_svc.scorer.setup, state_svc.scorer.models
    feature_timings: dict[str, list[float]] = {"state": [], "rows": []}
    for account in sample[:100]:
        source = account_source(state_svc.store, account, now, state_svc.taxonomy)
        assert source is not None
        _, _, cpu = _timed(partial(state_values, setup, models, source.state, now))
        feature_timings["state"].append(cpu)
        rows = state_svc.store.account_data(account)
        _, _, cpu = _timed(partial(setup.features, rows, now, models.attributes))
        feature_timings["rows"].append(cpu)
    out: dict[str, Any] = {}
    out["cold_ms"] = {
        "from_feature_state": {
            "wall": _summary(timings["state_wall"]),
            "cpu": _summary(timings["state_cpu"]),
        },
        "from_all_rows": {
            "wall": _summary(timings["rows_wall"]),
            "cpu": _summary(timings["rows_cpu"]),
        },
    }
    out["warm_ms"] = {"wall": _summary(warm_wall), "cpu": _summary(warm_cpu)}
    out["features_only_cpu_ms"] = {k: _summary(v) for k, v in feature_timings.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--workdir", type=Path, default=Path("out/cold-bench"))
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7, help="draws the accounts asked for")
    parser.add_argument("--now", default=None, help="the service's clock (default: now)")
    args = parser.parse_args()

    from serving.app import build_services
    from serving.routes import Metrics
    from serving.settings import Settings

    now = pd.Timestamp(args.now, tz="UTC") if args.now else pd.Timestamp.now(tz="UTC")
    args.workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{(args.workdir / 'nba.db').resolve()}"
    result: dict[str, Any] = {"benchmark": "cold", "date": time.strftime("%Y-%m-%d")}
    result["now"] = str(now)
    result["seed"] = args.seed
    result.update(_ensure_store(args.data, url, now))
    env = {
        **os.environ,
        "NBA_DATABASE_URL": url,
        "MLFLOW_TRACKING_URI": args.tracking_uri,
        "NBA_RELOAD_INTERVAL_S": "0",
    }
    settings = Settings.from_env(env)
    state_svc = build_services(settings, Metrics(), lambda: now)
    rows_svc = build_services(settings, Metrics(), lambda: now)
    ids = state_svc.store.account_ids()
    sample = [
        str(a) for a in np.random.default_rng(args.seed).choice(ids, args.accounts, replace=False)
    ]
    result["accounts_in_store"] = len(ids)
    result["versions"] = dict(state_svc.scorer.models.versions)
    result.update(_measure(state_svc, rows_svc, ids[0], sample, now))
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    result["machine"] = machine()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
