"""Loading the models from a real SQLite MLflow registry, swapping them when the alias moves
and keeping the old set when a new one fails to load."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from serving.models import (
    CHURN,
    NEXT_CONTENT,
    PHASE,
    REGISTERED_NAMES,
    ModelHolder,
    ModelLoadError,
    load_model_set,
)
from tests.serving.trained import TrainedRegistry, trained_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> TrainedRegistry:
    return trained_registry(tmp_path_factory)


@pytest.fixture
def store(registry: TrainedRegistry, tmp_path: Path) -> str:
    """A private copy of the registry database (the artifacts stay shared and read-only),
    so tests that move aliases do not disturb the other modules."""
    shutil.copy(registry.root / "mlflow.db", tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _new_version(uri: str, name: str, source: str | None = None) -> str:
    """Register another version of ``name`` (by default the champion's model again) and
    point ``champion`` at it."""
    client = _client(uri)
    champion = client.get_model_version_by_alias(name, "champion")
    created = client.create_model_version(
        name, source=source or str(champion.source), run_id=champion.run_id
    )
    client.set_registered_model_alias(name, "champion", str(created.version))
    return str(created.version)


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
    # the cold-start prior: a distribution over the phases
    assert models.phase_prior.shape == (len(registry.taxonomy.phases),)
    assert models.phase_prior.sum() == pytest.approx(1.0)
    assert (models.phase_prior > 0).any()


def test_encoded_input_predicts_like_the_dataframe(registry: TrainedRegistry) -> None:
    from features.pipeline import build_features

    models = load_model_set(registry.tracking_uri)
    frame = build_features(registry.data, [registry.now], registry.taxonomy).head(20)
    x = models.inputs[PHASE].encode(frame)
    expected = models.phase.predict_proba(frame[list(models.feature_columns[PHASE])])
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
    assert status.versions == {name: "1" for name in REGISTERED_NAMES}
    assert status.last_error is not None and "nba-churn v2" in status.last_error
    assert status.last_check is not None and status.last_error_at == status.last_check

    # a deleted alias is an error too, and the set still serves
    _client(store).delete_registered_model_alias(NEXT_CONTENT, "champion")
    assert holder.reload_if_moved() is False
    assert "nba-next-content" in (holder.status().last_error or "")
    assert holder.current is before


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
