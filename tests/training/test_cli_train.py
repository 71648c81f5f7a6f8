"""`nba train / promote / report` and `mlflow run . -e train`, end to end on a small
simulation with a real SQLite tracking store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from features.simulate import SimulationParams, simulate, write_simulation
from nba.cli import app
from training.registry import load_version
from training.tracking import champion_version, configure_tracking

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("train")
    # The legacy world: these check the commands and MLflow on 700 accounts, where the
    # realistic world has too few churns for every split (a few thousand accounts needed).
    legacy = SimulationParams.profile("legacy")
    write_simulation(simulate(700, seed=11, months=24, params=legacy), path / "data")
    return path


@pytest.fixture(scope="module")
def trained(workdir: Path) -> str:
    """Run the MLproject's train entry point for real; returns the tracking URI."""
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    # In-process MLflow calls elsewhere in the session may have set MLFLOW_EXPERIMENT_ID
    # (mlflow.set_experiment exports it for subprocesses); this run must not inherit it.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env = {
        **inherited,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    done = subprocess.run(
        [
            sys.executable, "-m", "mlflow", "run", str(REPO), "-e", "train",
            "-P", f"data={workdir / 'data'}", "-P", "as_of_dates=10", "--env-manager", "local",
        ],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-6000:]
    assert "nba-next-content v1" in done.stdout
    assert "gate: model " in done.stdout  # the phase model's gate and verdict
    return uri


@pytest.mark.slow
def test_mlflow_run_train_logs_and_registers_three_models(trained: str, workdir: Path) -> None:
    os.chdir(workdir)
    configure_tracking(trained)
    for name in ("nba-phase", "nba-churn", "nba-next-content"):
        version = MlflowClient().get_model_version(name, "1")
        # The first version is champion unless it lost its gate (then nba train said so).
        lost = version.tags.get("gate_passed") == "false"
        assert champion_version(name) == (None if lost else "1")
        run = mlflow.get_run(str(version.run_id))
        # grouped under the `mlflow run` step's run
        assert run.data.tags.get("mlflow.parentRunId")
        assert run.data.params["feature_pipeline_version"]
        assert len(run.data.params["training_set_fingerprint"]) == 64
        primary = run.data.tags["nba.primary_metric"]
        assert 0.5 < run.data.metrics[primary] <= 1.0
        artifacts = {a.path for a in MlflowClient().list_artifacts(str(version.run_id))}
        assert {"quality_report.md", "plots"} <= artifacts
        # MLflow 3 keeps the model as a logged model linked to the version
        assert hasattr(load_version(name, "1"), "predict_proba")


def test_train_promote_report_commands(trained: str, workdir: Path) -> None:
    os.chdir(workdir)
    runner = CliRunner()
    data = str(workdir / "data")
    args = ["--tracking-uri", trained]
    result = runner.invoke(
        app,
        ["train", "churn", "--data", data, "--as-of-dates", "10",
         "--param", "churn.num_leaves=4", "--param", "churn.n_estimators=5", *args],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # not champion until promoted; the gate (model vs its peer on validation) is printed
    assert "nba-churn v2" in result.output and "nba-churn v2 (champion" not in result.output
    assert "gate: " in result.output

    configure_tracking(trained)
    before = champion_version("nba-churn")  # None when v1 lost its gate
    result = runner.invoke(app, ["promote", "churn", "--data", data, "--as-of-dates", "10", *args])
    assert result.exit_code == 0, result.output
    assert "challenger v2 roc_auc=" in result.output and "challenger's gate:" in result.output
    assert ("champion v1 roc_auc=" if before else "champion (none)") in result.output
    configure_tracking(trained)
    promoted = "-> promoted" in result.output
    assert champion_version("nba-churn") == ("2" if promoted else before)

    out = workdir / "quality.md"
    result = runner.invoke(app, ["report", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "| model value | baseline | baseline value | difference, paired | verdict |" in text
    phase_gate = MlflowClient().get_model_version("nba-phase", "1").tags
    verdict = "wins" if phase_gate["gate_passed"] == "true" else "LOSES"
    assert f"| {phase_gate['gate_baseline']} | " in text and f"| {verdict}" in text
    for name in ("nba-phase", "nba-churn", "nba-next-content"):
        if champion_version(name) is not None:
            assert f"## {name} v" in text
    assert "| roc_auc |" in text


def test_promote_reads_the_data_through_a_mapping(workdir: Path, tmp_path: Path) -> None:
    from features.load import read_data_dir
    from features.mapping import load_mapping
    from features.taxonomy import load_taxonomy
    from tests.features.test_mapping import EXAMPLE, write_crm_export

    taxonomy = load_taxonomy()
    data = read_data_dir(workdir / "data", taxonomy)
    export = write_crm_export(data, load_mapping(EXAMPLE), taxonomy, tmp_path / "export")
    runner = CliRunner()
    common = ["--data", str(export), "--as-of-dates", "10", "--mapping", str(EXAMPLE)]
    args = [*common, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    os.chdir(tmp_path)
    fast = ["--param", "churn.n_estimators=5"]
    # five trees lose to the RFM peer: the first version is champion only by --force
    for force in (["--force"], []):
        result = runner.invoke(app, ["train", "churn", *args, *fast, *force])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["promote", "churn", *args])
    assert result.exit_code == 0, result.output
    assert "challenger v2 roc_auc=" in result.output and "champion v1 roc_auc=" in result.output
    # the same data and parameters make the same model: on the same test split the paired
    # difference is exactly 0, a tie, and a tie keeps the champion
    assert "challenger - champion +0.0000 [+0.0000, +0.0000] -> kept" in result.output
    assert "a tie keeps the champion" in result.output
    # without the mapping, the export's files are not the canonical tables
    result = runner.invoke(app, ["promote", "churn", *args[:4], *args[6:]])
    assert result.exit_code == 1 and result.output.startswith("error: ")  # validation
    assert "accounts: missing table file" in result.output


def test_train_all_skips_what_the_data_cannot_support(workdir: Path, tmp_path: Path) -> None:
    import pandas as pd

    data = tmp_path / "data"
    shutil.copytree(workdir / "data", data)
    shutil.rmtree(data / "truth", ignore_errors=True)
    for table in ("stages", "exposures"):
        path = data / f"{table}.parquet"
        pd.read_parquet(path).iloc[:0].to_parquet(path, index=False)
    os.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runner = CliRunner()
    args = ["--data", str(data), "--as-of-dates", "10", "--tracking-uri", uri]
    result = runner.invoke(app, ["train", "all", *args, "--param", "n_estimators=5"])
    assert result.exit_code == 0, result.output
    assert "skipped phase: table 'stages' has no CRM phase record" in result.output
    assert "skipped next-content: table 'exposures' is empty" in result.output
    assert "nba-churn v1" in result.output
    # one model asked for by name: its error, as a message
    result = runner.invoke(app, ["train", "phase", *args])
    assert result.exit_code == 2
    assert "error: table 'stages' has no CRM phase record" in result.output
    assert "Traceback" not in result.output


def test_bad_requests_get_clear_errors(workdir: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["train", "nonsense", "--data", str(workdir / "data")])
    assert result.exit_code == 2 and "unknown model 'nonsense'" in result.output
    result = runner.invoke(app, ["train", "churn", "--data", str(workdir / "data"), "--param", "x"])
    assert result.exit_code == 2 and "expected MODEL.KEY=VALUE" in result.output
    result = runner.invoke(app, ["promote", "all", "--data", str(workdir / "data")])
    assert result.exit_code == 2 and "promote one model at a time" in result.output
    result = runner.invoke(app, ["promote", "nonsense", "--data", str(workdir / "data")])
    assert result.exit_code == 2 and "unknown model 'nonsense'" in result.output
    data = ["--data", str(workdir / "data")]
    result = runner.invoke(app, ["train", "next-content", *data, "--reward", "clicks"])
    assert result.exit_code == 2 and "--reward 'clicks': expected one of response, value" in (
        result.output
    )


@pytest.mark.slow
def test_demo_runs_the_main_job_end_to_end_and_hands_over_a_service(tmp_path: Path) -> None:
    import json

    import httpx
    import pandas as pd

    from tests.utils.server import Server, server_env

    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--accounts", "400", "--end", "2026-01-15", "--force"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    stdout = result.stdout
    printed = stdout[stdout.index('{\n  "data_dir"') :]
    summary, end = json.JSONDecoder().raw_decode(printed)
    after = printed[end:]
    assert summary["tables"]["accounts"] == 400 and summary["features"] > 300
    assert set(summary["models"]) == {"nba-phase", "nba-churn", "nba-next-content"}
    assert all(m["champion"] for m in summary["models"].values())  # --force
    assert (out / "features.parquet").exists() and (out / "mlruns").is_dir()
    assert "## nba-churn v1" in (out / "quality.md").read_text()
    # the data end at --end (default today): the last simulated week ends by then
    last = pd.read_parquet(out / "data" / "touchpoints.parquet")["ts"].max()
    assert summary["data_end"] == "2026-01-15"
    assert pd.Timestamp("2026-01-08", tz="UTC") <= last < pd.Timestamp("2026-01-15", tz="UTC")
    # the service is one command away: its store is loaded, its key made, its command printed
    store = f"sqlite:///{(out / 'nba.db').resolve()}"
    assert summary["store"] == store and (out / "nba.db").exists()
    assert f"NBA_DATABASE_URL={store}" in summary["serve"]
    assert f"MLFLOW_TRACKING_URI={summary['tracking_uri']}" in summary["serve"]
    assert summary["serve"] in after and summary["urls"]["account widget"] in after
    widget = summary["urls"]["account widget"]
    account, key = widget.split("/widget/accounts/")[1].split("#key=")
    env = server_env(NBA_DATABASE_URL=store, MLFLOW_TRACKING_URI=summary["tracking_uri"])
    server = Server(env, workers=1, log=tmp_path / "serve.log")
    try:
        server.wait_ready()
        # nba serve names what it reads
        assert (
            f"store {store}; models: alias 'champion' at tracking URI {summary['tracking_uri']}"
            in (tmp_path / "serve.log").read_text()
        )
        answer = httpx.get(
            f"{server.base}/v1/accounts/{account}/recommendations?k=3",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["known"] is True and answer.json()["actions"]
    finally:
        server.stop()
