"""`nba train --engine dask` on a real 2-worker LocalCluster gives a model as good as the
local one on the same data: on a Parquet directory the sets are built on the workers as
parts (``training.dask_train.train_from_parts``), on CSV tables the Dask feature engine
and lightgbm.dask train in memory."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
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
    # Dask's concatenation of categorical parts made pandas warn of a fragmented frame on
    # every set; the output stays free of it (training.dask_train._gathered). Recorded,
    # not raised: an error raised in one of the client's threads could stall a gather.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.PerformanceWarning)
        distributed = runner.invoke(
            app,
            ["train", *common, "--engine", "dask", "--scheduler", scheduler, "--tracking-uri", uri],
        )
    assert distributed.exit_code == 0, distributed.output
    assert not [w for w in caught if issubclass(w.category, pd.errors.PerformanceWarning)]
    assert "account ranges; worker peak memory (MB)" in distributed.output
    # A CSV table: not readable per account range, so the in-memory Dask path
    csv_dir = tmp_path / "csv"
    shutil.copytree(tmp_path / "data", csv_dir)
    touchpoints = csv_dir / "touchpoints.parquet"
    pd.read_parquet(touchpoints).to_csv(csv_dir / "touchpoints.csv", index=False)
    touchpoints.unlink()
    in_memory = runner.invoke(
        app,
        [
            "train",
            "churn",
            "--data",
            str(csv_dir),
            "--as-of-dates",
            "10",
            "--engine",
            "dask",
            "--scheduler",
            scheduler,
            "--tracking-uri",
            uri,
        ],
    )
    assert in_memory.exit_code == 0, in_memory.output
    assert "worker peak memory" not in in_memory.output

    configure_tracking(uri)
    client = MlflowClient()
    auc, params = {}, {}
    for version in ("1", "2", "3"):
        run = mlflow.get_run(str(client.get_model_version("nba-churn", version).run_id))
        auc[version] = run.data.metrics["model.roc_auc"]
        params[version] = run.data.params
    assert auc["1"] > 0.65
    assert abs(auc["2"] - auc["1"]) < 0.02, auc
    assert abs(auc["3"] - auc["1"]) < 0.02, auc
    # the parts path states its sample: every account of this small world fits the budget
    assert params["2"]["set_sample_share"] == "1.0"
    assert "set_sample_share" not in params["1"] and "set_sample_share" not in params["3"]
    assert os.path.exists(tmp_path / "mlflow.db")


def test_all_models_train_from_parts_and_anchored_outcomes_fall_back(
    scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_simulation(simulate(500, seed=9, months=24), tmp_path / "data")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runner = CliRunner()
    dask = ["--engine", "dask", "--scheduler", scheduler, "--tracking-uri", uri, "--json"]
    result = runner.invoke(
        app,
        ["train", "all", "--data", str(tmp_path / "data"), "--force", "--partitions", "3", *dask],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert [m["model"] for m in summary["models"]] == ["phase", "churn", "next-content"]
    assert summary["partitions"] == 3
    assert summary["worker_peak_mb"] and all(v > 0 for v in summary["worker_peak_mb"].values())
    assert {"sets_s", "phase_train_s", "next-content_train_s", "churn_train_s"} <= set(
        summary["seconds"]
    )
    configure_tracking(uri)
    client = MlflowClient()
    for name in ("nba-phase", "nba-next-content", "nba-churn"):
        run = mlflow.get_run(str(client.get_model_version(name, "1").run_id))
        assert float(run.data.params["set_sample_share"]) == 1.0
        # the attribute levels serving encodes with travel with every run, as in one process
        assert "attributes.json" in {a.path for a in client.list_artifacts(run.info.run_id)}

    # an outcome scored at anchored moments is not built per range: said, then in memory
    (tmp_path / "outcomes.yaml").write_text(
        "outcomes:\n  - name: buys_after_meeting\n    positive: {events: [purchase, renewal]}\n"
        "    population: all\n    horizon_days: 120\n    score_at: {each_event: [meeting]}\n"
    )
    anchored = runner.invoke(
        app,
        [
            "train", "outcome:buys_after_meeting", "--data", str(tmp_path / "data"),
            "--outcomes", str(tmp_path / "outcomes.yaml"), "--param", "n_estimators=20", *dask,
        ],
    )  # fmt: skip
    assert "training sets on the workers:" in anchored.output
    assert "anchored moments" in anchored.output
    assert anchored.exit_code == 0, anchored.output
    trained = json.loads(anchored.stdout.strip().splitlines()[-1])
    assert [m["model"] for m in trained["models"]] == ["buys_after_meeting"]
    assert "worker_peak_mb" not in trained  # built in memory, not from parts
