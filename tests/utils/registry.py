"""A small trained registry shared by the serving and browser tests; the session-scoped
``trained_registry`` fixture in ``tests/conftest.py`` hands it out (:func:`open_trained_registry`).

Simulates ~800 accounts, trains the three models with few trees and registers them in a
temporary SQLite MLflow store. Building it takes tens of seconds, so it is built once per
pytest session and kept on disk under the session's base temp dir; a later call (under a
file lock) reuses a completely built directory.

Tests may import ``training`` (to make models); serving code never does.
"""

from __future__ import annotations

import fcntl
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.schema import JourneyData
from features.simulate import SimulationParams, simulate, write_simulation
from features.taxonomy import Taxonomy, load_taxonomy
from models.arbitration import load_arbitration_config
from serving.model_holder import ModelHolder
from serving.scoring import Scorer, content_popularity

N_ACCOUNTS = 800
SEED = 5
MONTHS = 24
AS_OF_DATES = 10
# Few trees: the serving tests need real, registered models, not good ones.
TRAIN_PARAMS: dict[str, dict[str, Any]] = {
    "phase": {"n_estimators": 40, "max_features": 0},
    "churn": {"n_estimators": 40, "max_features": 0},
    "next-content": {"n_estimators": 60, "n_jobs": 1},
}
REGISTERED = ("nba-phase", "nba-churn", "nba-next-content")
_DONE = "done.txt"


@dataclass(frozen=True)
class TrainedRegistry:
    """A directory with the simulated data (``data/``) and an MLflow SQLite store whose
    three registered models have version 1 as ``champion``."""

    root: Path
    tracking_uri: str
    data: JourneyData
    taxonomy: Taxonomy

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def now(self) -> pd.Timestamp:
        """A scoring time inside the simulated period, after most accounts exist."""
        return pd.Timestamp(self.data.touchpoints["ts"].max()).ceil("D")


def registry_scorer(registry: TrainedRegistry) -> Scorer:
    """A scorer over the registry's champions, its catalog and its content popularity, as
    the service builds one."""
    holder = ModelHolder(registry.tracking_uri)
    assert holder.load(), holder.status().last_error
    return Scorer(
        holder,
        registry.taxonomy,
        load_arbitration_config(),
        registry.data.content,
        popularity=content_popularity(registry.data.touchpoints),
    )


def tracking_uri_for(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def configure(root: Path) -> str:
    """Point MLflow at the store under ``root`` with artifacts under ``root/artifacts``
    (experiments are created with that location, so nothing lands in the working dir)."""
    from mlflow import MlflowClient

    from training.tracking import configure_tracking

    uri = configure_tracking(tracking_uri_for(root))
    client = MlflowClient()
    for name in REGISTERED:
        if client.get_experiment_by_name(name) is None:
            client.create_experiment(name, artifact_location=(root / "artifacts" / name).as_uri())
    return uri


def train_and_register(
    root: Path, data: JourneyData, taxonomy: Taxonomy, *, seed_offset: int = 0
) -> list[str]:
    """Train the three models on ``data`` and log/register them in the store under ``root``;
    returns the registered versions (phase, churn, next-content). ``seed_offset`` changes
    the LightGBM seeds (a second, different version)."""
    from features.pipeline import build_features
    from training.datasets import as_of_grid
    from training.result import MODEL_NAMES
    from training.tracking import log_result
    from training.train import Prepared, train_models

    configure(root)
    dates = as_of_grid(data, AS_OF_DATES)
    features = build_features(data, dates, taxonomy)
    prepared = Prepared.from_features(data, dates, features, taxonomy)
    params: dict[str, dict[str, Any]] = {
        m: {**TRAIN_PARAMS[m], "random_state": 7 + seed_offset} for m in MODEL_NAMES
    }
    versions: list[str] = []
    train_models(
        list(MODEL_NAMES),
        prepared,
        taxonomy,
        params=params,
        # Forced: these few-tree models may lose their gates; serving needs champions.
        on_result=lambda r: versions.append(log_result(r, force=True).version),
    )
    return versions


def build_registry(root: Path) -> None:
    """Simulate, train and register into ``root`` (which must not exist yet)."""
    taxonomy = load_taxonomy()
    # The legacy world: serving mechanics need every model trained on 800 accounts, where
    # the realistic world has too few churns for the churn model's splits.
    sim = simulate(
        N_ACCOUNTS,
        seed=SEED,
        months=MONTHS,
        taxonomy=taxonomy,
        params=SimulationParams.profile("legacy"),
    )
    write_simulation(sim, root / "data")
    train_and_register(root, sim.data, taxonomy)
    (root / _DONE).write_text("ok\n")


def open_trained_registry(tmp_path_factory: pytest.TempPathFactory) -> TrainedRegistry:
    """The session's trained registry, built on first use. The store records absolute
    artifact paths, so it is built in place under a file lock (a half-built directory,
    without the done marker, is rebuilt)."""
    from features.load import read_data_dir

    base = tmp_path_factory.getbasetemp()
    root = base / "serving-trained"
    with (base / "serving-trained.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (root / _DONE).exists():
                shutil.rmtree(root, ignore_errors=True)
                build_registry(root)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    configure(root)
    taxonomy = load_taxonomy()
    data = read_data_dir(root / "data", taxonomy)
    return TrainedRegistry(root, tracking_uri_for(root), data, taxonomy)
