"""`nba train --outcomes` and `nba report --outcome`: declared outcomes train on a short span
with a dense grid, report beside their peer with intervals, and every mistake is a one-line
message with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from features.simulate import simulate, write_simulation
from nba.cli import app
from training.tracking import configure_tracking

OUTCOMES = """
outcomes:
  - name: buy_again
    positive: {events: [purchase, renewal]}
    population: customers
    horizon_days: 30
    score_at: weekly
  - name: churn_soon
    positive: {events: [churn]}
    population: customers
    horizon_days: 240
    score_at: monthly
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight months of a small simulation (and its accounts' year of history before): too
    short for a 240-day monthly split."""
    path = tmp_path_factory.mktemp("outcomes")
    write_simulation(simulate(300, seed=5, months=8), path / "data")
    (path / "outcomes.yaml").write_text(OUTCOMES)
    return path


def invoke(workdir: Path, *args: str) -> tuple[int, str]:
    """Exit code and output: stdout where it succeeded (MLflow logs on stderr), else both."""
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    result = CliRunner().invoke(app, [*args, "--tracking-uri", uri])
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_a_weekly_outcome_trains_on_a_short_span_and_reports_beside_its_peer(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    code, output = invoke(
        workdir,
        "train", "outcome:buy_again", "--data", str(workdir / "data"),
        "--outcomes", str(workdir / "outcomes.yaml"), "--json",
        "--param", "n_estimators=30",
    )  # fmt: skip
    assert code == 0, output
    trained = json.loads(output.strip().splitlines()[-1])
    assert [f"{m['registered']} v{m['version']}" for m in trained["models"]] == ["nba-buy_again v1"]
    assert trained["peak_mb"] > 0 and "buy_again_train_s" in trained["seconds"]

    configure_tracking(f"sqlite:///{workdir / 'mlflow.db'}")
    version = MlflowClient().get_model_version("nba-buy_again", "1")
    assert version.tags["nba.kind"] == "outcome" and version.tags["nba.outcome"] == "buy_again"
    logged = mlflow.artifacts.load_text(f"runs:/{version.run_id}/outcome.json")
    assert json.loads(logged)["score_at"]["grid"] == "weekly"

    code, output = invoke(workdir, "report", "--outcome", "buy_again", "--json")
    assert code == 0, output
    report = json.loads(output)
    assert report["peer"] == "baseline_rfm_logistic" and report["score_at"] == "weekly grid"
    split = report["split"]
    assert split["horizon_days"] == 30 and split["valid"]["dates"] == 1
    assert split["train"]["as_of"][1] < split["valid"]["as_of"][0] < split["test"]["as_of"][0]
    for metric in ("roc_auc", "pr_auc"):
        m = report["metrics"][metric]
        assert m["model_ci"][0] <= m["model"] <= m["model_ci"][1]
        assert m["peer_ci"][0] <= m["peer"] <= m["peer_ci"][1]
        assert m["verdict"] in ("model ahead", "peer ahead", "no clear difference")
    # passed only when the paired difference's interval is above 0 (a tie loses)
    low, high = report["gate"]["difference_ci"]
    assert low <= report["gate"]["model"] - report["gate"]["peer"] <= high
    assert report["gate"]["passed"] == (low > 0)
    # the first version is champion only if it passed its gate
    assert trained["models"][0]["champion"] == report["gate"]["passed"]
    code, output = invoke(workdir, "report")
    assert code == 0
    gate = report["gate"]
    verb = "beats" if gate["passed"] else "ties, so LOSES to" if high >= 0 else "LOSES to"
    if gate["passed"]:
        assert "## nba-buy_again v1 (champion)" in output
    else:
        assert "## nba-buy_again v1 (not champion)" in output
        assert "not served (no champion; `nba promote buy_again --data DIR --force`" in output
    # every model gets a verdict against its strongest baseline
    assert f"**Verdict:** {verb} its strongest baseline, {gate['baseline']}," in output
    assert "Not trained: nba-phase, nba-churn, nba-next-content (run `nba train`)." in output


def test_a_span_too_short_for_the_horizon_is_a_message(workdir: Path) -> None:
    code, output = invoke(
        workdir,
        "train", "churn_soon", "--data", str(workdir / "data"),
        "--outcomes", str(workdir / "outcomes.yaml"),
    )  # fmt: skip
    assert code == 2
    assert output.startswith("error: outcome 'churn_soon': ")
    assert "cannot hold train, validation and test dates 240 days apart" in output
    assert "expected as-of dates spanning more than 480 days" in output
    assert "Traceback" not in output


def test_mistakes_are_one_line_messages(workdir: Path) -> None:
    data = str(workdir / "data")
    outcomes = str(workdir / "outcomes.yaml")
    code, output = invoke(workdir, "train", "outcome:nope", "--data", data, "--outcomes", outcomes)
    assert code == 2 and "unknown model 'outcome:nope'" in output
    assert "buy_again, churn_soon" in output
    broken = workdir / "broken.yaml"
    broken.write_text("outcomes:\n  - {name: x, positive: {events: [won]}, population: all}\n")
    code, output = invoke(workdir, "train", "x", "--data", data, "--outcomes", str(broken))
    assert code == 2 and f"outcomes file {broken}: key outcomes.0.horizon_days (x)" in output
    broken.write_text(
        "outcomes:\n  - {name: x, positive: {events: [won]}, population: all, horizon_days: 9}\n"
    )
    code, output = invoke(workdir, "train", "x", "--data", data, "--outcomes", str(broken))
    assert code == 2 and "event types ['won'] are not in the taxonomy" in output
    code, output = invoke(workdir, "report", "--json")
    assert code == 2 and "--json and --version need --outcome NAME" in output
    code, output = invoke(workdir, "report", "--outcome", "never_trained")
    assert code == 2 and "no model 'nba-never_trained' in the registry" in output
