"""A next-content version on trial beside the champion (``nba challenge``, the ``challenger``
alias): the service gives its own pick a share of the decisions, logs them with the
mixture's propensities, and stops when the trial ends."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import lightgbm as lgb
import mlflow
import mlflow.lightgbm
import pytest
import skops.io
from mlflow import MlflowClient
from mlflow.models import Model
from typer.testing import CliRunner

from models.contract import CHALLENGER, NEXT_CONTENT
from nba.cli import app as cli
from serving.model_set import CHALLENGER_KEY
from serving.routes import Services
from serving.scoring.online import CHALLENGER_PICK
from tests.utils.api import open_api, recommendations
from tests.utils.registry import TrainedRegistry
from training.tracking import FORCED_TAG

SHARE = 0.5


@pytest.fixture
def store(registry: TrainedRegistry, tmp_path: Path) -> Iterator[str]:
    """A private copy of the registry database (the session's must not change), MLflow's
    current tracking URI while the test runs, with a second next-content version whose
    predictions are the champion's reversed (the leaves of its trees negated: it ranks
    first what the champion ranks last), so its picks differ from the champion's."""
    shutil.copy(registry.root / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        v1 = client.get_model_version(NEXT_CONTENT, "1")
        folder = _reversed_copy(client, tmp_path)
        client.create_model_version(NEXT_CONTENT, source=str(folder), run_id=v1.run_id)
        yield uri
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


def _reversed_copy(client: MlflowClient, directory: Path) -> Path:
    """A copy of next-content v1's model folder whose trees' leaf values are negated."""
    original = Path(
        client.get_model_version_download_uri(NEXT_CONTENT, "1").removeprefix("file://")
    )
    folder = directory / "reversed-model"
    shutil.copytree(original, folder)
    data = folder / Model.load(str(folder)).flavors["lightgbm"]["data"]
    estimator = mlflow.lightgbm.load_model(str(folder))
    text = estimator.booster_.model_to_string()
    negated = re.sub(
        r"^leaf_value=(.*)$",
        lambda m: "leaf_value=" + " ".join(repr(-float(v)) for v in m.group(1).split()),
        text,
        flags=re.MULTILINE,
    )
    # the trees' byte sizes no longer hold: without them LightGBM parses tree by tree
    negated = re.sub(r"^tree_sizes=.*\n", "", negated, flags=re.MULTILINE)
    estimator._Booster = lgb.Booster(model_str=negated)
    skops.io.dump(estimator, data)  # as MLflow saved it (the flavor's serialization_format)
    return folder


def _services(api: object) -> Services:
    services: Services = api.client.app.state.services  # type: ignore[attr-defined]
    return services


def test_a_version_on_trial_gets_its_share_of_decisions_until_the_trial_ends(
    registry: TrainedRegistry, store: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    refused = runner.invoke(cli, ["challenge", "next-content", "--version", "1"])
    assert refused.exit_code != 0 and "is the champion" in refused.output
    other = runner.invoke(cli, ["challenge", "churn"])
    assert other.exit_code != 0 and "only next-content" in other.output
    # a version its baseline beat on validation is not tried, unless forced (then tagged);
    # one that tied it may be (the trial settles the tie)
    client = MlflowClient()
    lost = {
        "gate_metric": "policy_value_dr",
        "gate_model": "0.1",
        "gate_baseline": "best single action",
        "gate_baseline_value": "0.2",
        "gate_passed": "false",
        "gate_model_ci": "0.05,0.15",
        "gate_baseline_ci": "0.15,0.25",
        "gate_difference_ci": "-0.15,-0.05",
    }
    for key, value in lost.items():
        client.set_model_version_tag(NEXT_CONTENT, "2", key, value)
    refused = runner.invoke(cli, ["challenge", "next-content"])
    assert refused.exit_code != 0 and "v2 lost its gate" in refused.output, refused.output
    started = runner.invoke(cli, ["challenge", "next-content", "--force"])
    assert started.exit_code == 0, started.output
    assert "v2 is on trial (its gate lost: --force" in started.output
    assert client.get_model_version(NEXT_CONTENT, "2").tags[FORCED_TAG] == "true"
    client.set_model_version_tag(NEXT_CONTENT, "2", "gate_difference_ci", "-0.15,0.05")
    tied = runner.invoke(cli, ["challenge", "next-content"])
    assert tied.exit_code == 0 and "it tied its baseline on validation" in tied.output
    assert str(MlflowClient().get_model_version_by_alias(NEXT_CONTENT, CHALLENGER).version) == "2"

    overrides = {"exploration_rate": 0.1, "challenger_share": SHARE}
    with open_api("sqlite", tmp_path, replace(registry, tracking_uri=store), **overrides) as api:
        svc = _services(api)
        assert svc.holder.current.versions[CHALLENGER_KEY] == "2"
        tried = decided = 0
        for account in api.account_ids[:60]:
            body = recommendations(api, account, k=2)
            assert body["model_versions"][CHALLENGER_KEY] == "2"
            actions = body["actions"]
            if not actions or actions[0]["kind"] != "decision":
                continue
            decided += 1
            assert body["policy"].endswith(f"+challenger-v2-{SHARE:g}")
            top = actions[0]
            features = {r["feature"] for r in top["reasons"]}
            if CHALLENGER_PICK in features:
                tried += 1
                # the challenger's pick is served in at least its share of the decisions
                assert top["propensity"] >= SHARE * (1 - 0.1) - 1e-9
        assert decided >= 40
        # about half the decisions (less where the two pick alike or the coin explores)
        assert 0.2 * decided <= tried <= 0.7 * decided, (tried, decided)

        stopped = runner.invoke(cli, ["challenge", "next-content", "--stop"])
        assert stopped.exit_code == 0 and "the trial of v2 ends" in stopped.output, stopped.output
        assert svc.holder.reload_if_moved() is True
        assert CHALLENGER_KEY not in svc.holder.current.versions
        later = [recommendations(api, a, k=1) for a in api.account_ids[60:80]]
        assert all("+challenger" not in b["policy"] for b in later)
        assert all(CHALLENGER_KEY not in b["model_versions"] for b in later)


def test_a_version_on_trial_that_cannot_load_leaves_the_champion_serving(
    registry: TrainedRegistry, store: str, tmp_path: Path
) -> None:
    """A trial whose files are missing must not keep the champion from serving: the worker
    starts ready with the champion alone, and /ready names the version not tried."""
    client = MlflowClient()
    v1 = client.get_model_version(NEXT_CONTENT, "1")
    broken = client.create_model_version(
        NEXT_CONTENT, source=str(tmp_path / "no-such-model"), run_id=v1.run_id
    )
    client.set_registered_model_alias(NEXT_CONTENT, CHALLENGER, str(broken.version))
    overrides = {"challenger_share": SHARE}
    with open_api("sqlite", tmp_path, replace(registry, tracking_uri=store), **overrides) as api:
        holder = _services(api).holder
        assert holder.ready and CHALLENGER_KEY not in holder.current.versions
        error = holder.status().last_error or ""
        assert f"{NEXT_CONTENT} v{broken.version} ({CHALLENGER}) is not tried" in error, error
        body = recommendations(api, api.account_ids[0], k=1)
        assert "+challenger" not in body["policy"]
        # not loaded again until an alias moves
        assert holder.reload_if_moved() is False
