"""`nba train --engine dask`: Dask features and lightgbm.dask training on a real 2-worker
LocalCluster give a model as good as the local one on the same data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from features.simulate import simulate, write_simulation
from nba.cli import app
from training.tracking import configure_tracking

pytestmark = pytest.mark.dask


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def test_dask_training_matches_local_quality(
    scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_simulation(simulate(3000, seed=5, months=24), tmp_path / "data")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runner = CliRunner()
    common = ["churn", "--data", str(tmp_path / "data"), "--as-of-dates", "10"]
    local = runner.invoke(app, ["train", *common, "--tracking-uri", uri])
    assert local.exit_code == 0, local.output
    distributed = runner.invoke(
        app, ["train", *common, "--engine", "dask", "--scheduler", scheduler, "--tracking-uri", uri]
    )
    assert distributed.exit_code == 0, distributed.output

    configure_tracking(uri)
    client = MlflowClient()
    auc = {}
    for version in ("1", "2"):
        run_id = str(client.get_model_version("nba-churn", version).run_id)
        auc[version] = mlflow.get_run(run_id).data.metrics["model.roc_auc"]
    assert auc["1"] > 0.65
    assert abs(auc["2"] - auc["1"]) < 0.02, auc
    assert os.path.exists(tmp_path / "mlflow.db")
