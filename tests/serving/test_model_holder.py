"""Loading the models from a real SQLite MLflow registry, swapping them when the alias moves
and keeping the old set when a new one fails to load."""

from __future__ import annotations

import shutil
import time
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from models.contract import (
    CALIBRATION_A,
    CALIBRATION_B,
    CHAMPION,
    CHURN,
    NEXT_CONTENT,
    PHASE,
    PHASE_CONFUSION_ARTIFACT,
    REGISTERED_MODELS,
)
from serving.model_holder import ModelHolder
from serving.model_set import ModelLoadError, load_model_set
from tests.utils.registry import TrainedRegistry


@pytest.fixture
def store(registry: TrainedRegistry, tmp_path: Path) -> str:
    """A private copy of the registry database (the artifacts stay shared and read-only),
    so tests that move aliases do not disturb the other modules."""
    shutil.copy(registry.root / "mlflow.db", tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _new_version(
    uri: str, name: str, source: str | None = None, *, run_id: str | None = None
) -> str:
    """Register another version of ``name`` (by default the champion's model and run
    again) and point ``champion`` at it."""
    client = _client(uri)
    champion = client.get_model_version_by_alias(name, CHAMPION)
    created = client.create_model_version(
        name, source=source or str(champion.source), run_id=run_id or champion.run_id
    )
    client.set_registered_model_alias(name, CHAMPION, str(created.version))
    return str(created.version)


def _run_without_artifacts(uri: str, artifacts: Path, params: dict[str, str]) -> str:
    """A new run holding ``params`` and no artifacts (in its own experiment, whose
    artifacts live under ``artifacts``)."""
    client = _client(uri)
    experiment = client.create_experiment("bare-runs", artifact_location=artifacts.as_uri())
    run = client.create_run(experiment)
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def test_training_registers_what_serving_loads_through_the_contract(
    registry: TrainedRegistry,
) -> None:
    """The registry was written by training (``training.tracking.log_result``); serving's
    holder loads it by the names in ``models.contract`` and reads what the runs hold."""
    from mlflow.artifacts import load_text

    from training.result import REGISTERED_NAMES
    from training.tracking import champion_version

    assert tuple(REGISTERED_NAMES.values()) == REGISTERED_MODELS
    holder = ModelHolder(registry.tracking_uri, CHAMPION)
    assert holder.load(), holder.status().last_error
    models = holder.current
    assert dict(models.versions) == {n: champion_version(n) for n in REGISTERED_MODELS}
    client = _client(registry.tracking_uri)
    churn_run = client.get_model_version(CHURN, models.versions[CHURN]).run_id
    logged = client.get_run(str(churn_run)).data.params
    for param in (CALIBRATION_A, CALIBRATION_B):
        assert models.calibration[param] == logged[param]
    phase_run = client.get_run(str(client.get_model_version(PHASE, models.versions[PHASE]).run_id))
    table = load_text(f"{phase_run.info.artifact_uri}/{PHASE_CONFUSION_ARTIFACT}")
    recorded = pd.read_csv(StringIO(table), index_col=0).index
    assert models.phase_classes == tuple(str(p) for p in recorded)


def test_a_run_without_the_confusion_matrix_is_refused_naming_it(
    store: str, tmp_path: Path
) -> None:
    client = _client(store)
    champion = client.get_model_version_by_alias(PHASE, CHAMPION)
    params = dict(client.get_run(str(champion.run_id)).data.params)
    bare = _run_without_artifacts(store, tmp_path / "bare", params)
    serving = ModelHolder(store)
    assert serving.load()
    before = serving.current
    version = _new_version(store, PHASE, run_id=bare)

    # a holder serving a set keeps it and reports why the new one is refused
    assert serving.reload_if_moved() is False
    assert serving.current is before
    error = serving.status().last_error or ""
    assert f"{PHASE} v{version}" in error and PHASE_CONFUSION_ARTIFACT in error

    # a fresh holder (a starting worker) is not ready and says why (what /ready shows)
    fresh = ModelHolder(store)
    assert fresh.load() is False
    status = fresh.status()
    assert not status.ready
    assert status.last_error is not None and PHASE_CONFUSION_ARTIFACT in status.last_error
    with pytest.raises(ModelLoadError, match=PHASE_CONFUSION_ARTIFACT):
        load_model_set(store)


def test_a_churn_run_without_its_calibration_is_refused_naming_it(
    store: str, tmp_path: Path
) -> None:
    client = _client(store)
    champion = client.get_model_version_by_alias(CHURN, CHAMPION)
    params = dict(client.get_run(str(champion.run_id)).data.params)
    del params[CALIBRATION_B]
    version = _new_version(
        store, CHURN, run_id=_run_without_artifacts(store, tmp_path / "bare", params)
    )
    with pytest.raises(ModelLoadError, match=f"{CHURN} v{version}.*no param {CALIBRATION_B}"):
        load_model_set(store)


def test_model_set_loads_champions_with_versions_calibration_and_columns(
    registry: TrainedRegistry,
) -> None:
    models = load_model_set(registry.tracking_uri)
    assert dict(models.versions) == {PHASE: "1", CHURN: "1", NEXT_CONTENT: "1"}
    assert models.key == ("1", "1", "1")
    assert models.phase.classes_.tolist() == list(range(len(registry.taxonomy.phases)))
    # the churn calibration comes from the run's params, as text
    assert {"calibration_a", "calibration_b"} <= set(models.calibration)
    float(models.calibration["calibration_a"])
    # every estimator predicts single-threaded (OpenMP after fork can hang)
    for est in (models.phase, models.churn, models.next_content):
        assert est.get_params()["n_jobs"] == 1
    assert list(models.feature_columns[NEXT_CONTENT]) == list(models.next_content.feature_name_)
    assert set(models.inputs[NEXT_CONTENT].categories) >= {"contact_role", "content_type"}


def test_encoded_input_predicts_like_the_dataframe(registry: TrainedRegistry) -> None:
    from features.pipeline import build_features
    from models.fitting import model_frame

    models = load_model_set(registry.tracking_uri)
    frame = build_features(registry.data, [registry.now], registry.taxonomy).head(20)
    x = models.inputs[PHASE].encode(frame)
    # training's encoding of the same rows (models.fitting), categories as text
    expected = models.phase.predict_proba(model_frame(models.phase, frame))
    np.testing.assert_allclose(models.phase.booster_.predict(x), expected, rtol=0, atol=1e-12)


def test_reload_swaps_when_the_alias_moves_and_only_then(store: str) -> None:
    holder = ModelHolder(store)
    assert not holder.ready
    with pytest.raises(ModelLoadError, match="no models loaded"):
        _ = holder.current
    assert holder.reload_if_moved() is True
    first = holder.current
    assert holder.reload_if_moved() is False  # nothing moved: same object keeps serving
    assert holder.current is first

    version = _new_version(store, PHASE)
    assert version == "2"
    assert holder.reload_if_moved() is True
    second = holder.current
    assert second is not first
    assert dict(second.versions) == {PHASE: "2", CHURN: "1", NEXT_CONTENT: "1"}
    # the old snapshot a request still holds is untouched
    assert dict(first.versions)[PHASE] == "1"
    status = holder.status()
    assert status.ready and status.last_error is None and status.reloads == 2
    assert status.versions == {PHASE: "2", CHURN: "1", NEXT_CONTENT: "1"}


def test_broken_model_keeps_the_previous_set_and_reports_the_error(
    store: str, tmp_path: Path
) -> None:
    holder = ModelHolder(store)
    assert holder.load()
    before = holder.current
    _new_version(store, CHURN, source=str(tmp_path / "no-such-model"))
    assert holder.reload_if_moved() is False
    assert holder.current is before
    status = holder.status()
    assert status.ready and status.failures == 1
    assert status.versions == {name: "1" for name in REGISTERED_MODELS}
    assert status.last_error is not None and "nba-churn v2" in status.last_error
    assert status.last_check is not None and status.last_error_at == status.last_check

    # a deleted alias is not an error: the models left serve, saying what is missing
    client = _client(store)
    client.set_registered_model_alias(CHURN, CHAMPION, "1")
    client.delete_registered_model_alias(NEXT_CONTENT, CHAMPION)
    assert holder.reload_if_moved() is True
    partial = holder.current
    assert partial.next_content is None and partial.phase is not None
    assert dict(partial.versions) == {PHASE: "1", CHURN: "1"}
    why = "no champion of nba-next-content in the registry"
    assert dict(partial.missing) == {"next_actions": why}
    assert holder.status().parts_missing == partial.missing

    # no alias at all is an error, and the set still serves
    for name in (PHASE, CHURN):
        client.delete_registered_model_alias(name, CHAMPION)
    assert holder.reload_if_moved() is False
    assert "no registered model has the alias 'champion'" in (holder.status().last_error or "")
    assert holder.current is partial


def test_polling_thread_picks_up_a_moved_alias(store: str) -> None:
    holder = ModelHolder(store)
    holder.load()
    holder.start_polling(0.05)
    try:
        _new_version(store, NEXT_CONTENT)
        deadline = time.monotonic() + 20
        while holder.current.versions[NEXT_CONTENT] != "2" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holder.current.versions[NEXT_CONTENT] == "2"
    finally:
        holder.stop()
    assert holder._thread is None
    with pytest.raises(ValueError, match="interval_s"):
        holder.start_polling(0)
