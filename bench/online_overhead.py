"""What learning between retrains adds to a warm answer:
``python -m bench.online_overhead --store URL --tracking-uri URI [--repeats 20]``.

Scores every account of the store on its warm path (features and predictions cached, no
standing decision, so every answer draws its top slot) with the online posterior and
without, interleaved, and prints JSON: p50 / p99 / mean milliseconds of each and of the
paired difference, and the difference of the p99s with its 95 % interval (paired
bootstrap). The posterior is the store's counts as a worker holds them (read once, off the
request path); the store needs trained models in the registry (e.g. a ``bench.closed_loop``
output directory). ``--challenger-share`` gives a version on trial (``nba challenge``) its
share in both arms: the posterior's cost while a trial runs.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from bench.measure import machine
from models.contract import NEXT_CONTENT
from serving.app import create_app
from serving.model_set import CHALLENGER_KEY
from serving.routes import Services
from serving.settings import Settings


def _percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "p50": round(float(np.percentile(a, 50)), 3),
        "p99": round(float(np.percentile(a, 99)), 3),
        "mean": round(float(a.mean()), 3),
    }


def p99_difference(with_ms: list[float], without_ms: list[float], *, seed: int = 0) -> list[float]:
    """p99(with) - p99(without) in ms with its 95 % interval: a paired bootstrap over the
    answers (each account and repeat answered both ways, one after the other, so machine
    noise at that moment falls on both), 2,000 resamples from ``seed``."""
    a, b = np.asarray(with_ms), np.asarray(without_ms)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(a), size=(2000, len(a)))
    diffs = np.percentile(a[draws], 99, axis=1) - np.percentile(b[draws], 99, axis=1)
    point = float(np.percentile(a, 99) - np.percentile(b, 99))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return [round(point, 3), round(float(low), 3), round(float(high), 3)]


def measure(args: argparse.Namespace) -> dict[str, object]:
    settings = Settings(
        database_url=args.store, tracking_uri=args.tracking_uri, reload_interval_s=0
    )
    now = pd.Timestamp(args.now, tz="UTC") if args.now else pd.Timestamp.now(tz="UTC")
    with TestClient(create_app(settings, clock=lambda: now)) as client:
        svc: Services = client.app.state.services  # type: ignore[attr-defined]
        assert svc.posteriors is not None
        online = svc.posteriors.current(svc.scorer.models.versions.get(NEXT_CONTENT, ""))
        ids = svc.store.account_ids()[: args.accounts]
        accounts = sorted(svc.store.data_versions(ids).items())
        rng = np.random.default_rng(0)

        def once(account: str, version: int, posterior: object) -> float:
            started = time.perf_counter()
            svc.scorer.score_account(
                lambda: svc.store.account_data(account),
                account,
                now,
                k=3,
                rng=rng,
                data_version=version,
                online=posterior,  # type: ignore[arg-type]
                challenger_share=args.challenger_share,
            )
            return (time.perf_counter() - started) * 1000

        for account, version in accounts:  # warm the cache
            once(account, version, None)
        with_ms, without_ms = [], []
        for _ in range(args.repeats):
            for account, version in accounts:
                with_ms.append(once(account, version, online))
                without_ms.append(once(account, version, None))
    return {
        "benchmark": "online_overhead",
        "accounts": len(accounts),
        "answers_each": len(with_ms),
        "posterior_keys": len(online.counts),
        # the version on trial beside the champion, given its share in both arms (None: none)
        "challenger": svc.scorer.models.versions.get(CHALLENGER_KEY),
        "challenger_share": args.challenger_share,
        "with_online_ms": _percentiles(with_ms),
        "without_online_ms": _percentiles(without_ms),
        "difference_ms": _percentiles([a - b for a, b in zip(with_ms, without_ms, strict=True)]),
        "p99_difference_ms": p99_difference(with_ms, without_ms),
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--now", default=None, help="the scoring time (default: now)")
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--challenger-share",
        type=float,
        default=0.0,
        help="with a version on trial in the registry, its share of the decisions in both "
        "arms (NBA_CHALLENGER_SHARE; default 0: the champion alone)",
    )
    args = parser.parse_args()
    print(json.dumps(measure(args), indent=1))


if __name__ == "__main__":
    main()
