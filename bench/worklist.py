"""Benchmark: a rep's first (cold) worklist view, with and without stored account scores.

    python -m bench.worklist [--accounts 400] [--rep-accounts 50] [--repeats 7]

Simulates a few hundred accounts, trains the three models with few trees (as the tests do)
into a temporary MLflow store, loads the data into a temporary SQLite store with
``--rep-accounts`` of them owned by one rep, and times ``GET /v1/reps/{rep}/actions``
in-process (FastAPI's TestClient; the clock pinned to the end of the simulated data), each
time in a worker whose in-memory cache is empty:

- ``without_stored_scores``: no stored scores, so every account's state is computed (all of
  the rep's accounts together) and stored;
- ``with_stored_scores``: after ``nba score`` stored every account's score;
- ``per_account_compute``: for reference, the pre-change cost: each account's state
  computed on its own (``Scorer.score_account`` with an empty cache), as the worklist did.

Prints one JSON object (seconds: median, min, max over ``--repeats`` views).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.measure import machine, peak_rss_mb

REP = "R-BENCH"


def _train(root: Path, data: Any, taxonomy: Any) -> str:
    """Few-tree models on ``data``, registered as champions in ``root/mlflow.db``."""
    from mlflow import MlflowClient

    from features.pipeline import build_features
    from training.datasets import as_of_grid
    from training.result import MODEL_NAMES
    from training.tracking import configure_tracking, log_result
    from training.train import Prepared, train_models

    uri = configure_tracking(f"sqlite:///{root / 'mlflow.db'}")
    client = MlflowClient()
    for name in ("nba-phase", "nba-churn", "nba-next-content"):
        client.create_experiment(name, artifact_location=(root / "artifacts" / name).as_uri())
    dates = as_of_grid(data, 8)
    prepared = Prepared.from_features(data, dates, build_features(data, dates, taxonomy), taxonomy)
    params = {
        "phase": {"n_estimators": 40, "max_features": 0},
        "churn": {"n_estimators": 40, "max_features": 0},
        "next-content": {"n_estimators": 60, "n_jobs": 1},
    }
    train_models(list(MODEL_NAMES), prepared, taxonomy, params=params, on_result=log_result)
    return uri


def _timed(runs: int, prepare: Callable[[], None], view: Callable[[], None]) -> dict[str, float]:
    seconds = []
    for _ in range(runs):
        prepare()
        started = time.perf_counter()
        view()
        seconds.append(time.perf_counter() - started)
    return {
        "median_s": round(statistics.median(seconds), 4),
        "min_s": round(min(seconds), 4),
        "max_s": round(max(seconds), 4),
    }


def main() -> None:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--rep-accounts", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    from fastapi.testclient import TestClient

    from features.pipeline import select_accounts
    from features.simulate import simulate
    from features.taxonomy import load_taxonomy
    from serving.app import create_app
    from serving.scoring.cache import StateCache
    from serving.settings import Settings
    from serving.store import Store

    taxonomy = load_taxonomy()
    data = simulate(args.accounts, seed=args.seed, months=18, taxonomy=taxonomy).data
    now = pd.Timestamp(data.touchpoints["ts"].max()).ceil("D")
    alive = data.contacts.loc[data.contacts["created_at"] < now, "account_id"].astype(str)
    mine = sorted(alive.unique())[: args.rep_accounts]
    accounts = data.accounts.copy()
    accounts["owner_rep_id"] = accounts["owner_rep_id"].astype(object)
    accounts.loc[accounts["account_id"].astype(str).isin(mine), "owner_rep_id"] = REP
    data = data.__class__(**{**data.__dict__, "accounts": accounts})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        uri = _train(root, data, taxonomy)
        store = Store(f"sqlite:///{root / 'nba.db'}", taxonomy)
        store.migrate()
        store.load_data(data)
        key = store.create_api_key("bench", ["admin"])
        settings = Settings(
            database_url=store.url,
            tracking_uri=uri,
            reload_interval_s=0,
            exploration_rate=0.0,
            random_seed=0,
        )
        app = create_app(settings, clock=lambda: now)
        with TestClient(app) as client:
            svc = app.state.services
            headers = {"Authorization": f"Bearer {key}"}

            def forget() -> None:
                svc.scorer.cache = StateCache(svc.scorer.cache.entries, svc.scorer.cache.ttl_ns)

            def view() -> None:
                response = client.get(f"/v1/reps/{REP}/actions", headers=headers, timeout=120)
                assert response.status_code == 200, response.text
                assert response.json()["accounts"] == len(mine)

            def without() -> None:
                forget()
                store.delete_scores()

            cold = _timed(args.repeats, without, view)
            started = time.perf_counter()  # what `nba score` stores
            ids = store.account_ids()
            versions = store.data_versions(ids)
            stored = svc.scorer.states_for_store(store.accounts_data(ids), versions, now)
            store.save_scores(stored)
            score_s = time.perf_counter() - started
            warm = _timed(args.repeats, forget, view)
            rng = np.random.default_rng(0)
            sub = select_accounts(data, mine)

            def per_account() -> None:
                for account in mine:
                    svc.scorer.score_account(sub, account, now, k=1, rng=rng, explore=False)

            baseline = _timed(max(1, args.repeats // 3), forget, per_account)
        store.dispose()
    print(
        json.dumps(
            {
                "benchmark": "worklist",
                "accounts": args.accounts,
                "rep_accounts": len(mine),
                "without_stored_scores": cold,
                "with_stored_scores": warm,
                "per_account_compute": baseline,
                "store_scores_all_accounts_s": round(score_s, 2),
                "stored_scores": len(stored),
                "target_s": 0.3,
                "peak_rss_mb": round(peak_rss_mb()),
                "machine": machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
