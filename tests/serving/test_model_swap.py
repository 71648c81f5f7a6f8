"""Swapping model sets safely: a loadable but wrong model (the phase model's files registered
as ``nba-churn``) is rejected by the smoke test and the previous set keeps serving, visibly in
``/ready`` and ``/metrics``; the reload error clears after a good reload; a worker that
starts while the champion's files are missing says exactly what is missing, retries and
serves as soon as a loadable set is aliased.

Every test works on a private copy of the session's trained registry database (the model
files stay shared and are never changed; a broken model is a copy under ``tmp_path``)."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.models import Model

from models.contract import CHAMPION, CHURN, NEXT_CONTENT, PHASE, REGISTERED_MODELS
from serving.model_check import ModelSetRejected, check_model_set
from serving.model_holder import ModelHolder, Rejection
from serving.model_set import load_model_set
from serving.routes import Services
from tests.utils.api import Api, open_api, recommendations
from tests.utils.registry import TrainedRegistry

FIRST = {name: "1" for name in REGISTERED_MODELS}
# Generous: a condition normally met within a second or two on a busy machine.
WAIT_S = 60.0


@pytest.fixture
def store(registry: TrainedRegistry, tmp_path: Path) -> Iterator[str]:
    """A private copy of the registry database, so moving aliases disturbs no other test.
    It is also MLflow's current tracking URI while the test runs: registering a version from
    a logged model's URI (``models:/m-...``) looks the model up there, not in the client's
    store, and an earlier test in the same worker may have pointed it elsewhere."""
    shutil.copy(registry.root / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        mlflow.set_tracking_uri(previous)


def _client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _register(uri: str, name: str, *, files_of: str | None = None, source: str = "") -> str:
    """Register a new version of ``name`` with the run of its champion v1 and the model
    files of ``files_of``'s v1 (default: its own) or ``source``; point ``champion`` at it."""
    client = _client(uri)
    own = client.get_model_version(name, "1")
    created = client.create_model_version(
        name,
        source=source or str(client.get_model_version(files_of or name, "1").source),
        run_id=own.run_id,
    )
    client.set_registered_model_alias(name, CHAMPION, str(created.version))
    return str(created.version)


def _alias(uri: str, name: str, version: str) -> None:
    _client(uri).set_registered_model_alias(name, CHAMPION, version)


def _services(api: Api) -> Services:
    services: Services = api.client.app.state.services  # type: ignore[attr-defined]
    return services


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _metric_lines(api: Api, prefix: str) -> list[str]:
    return [
        line for line in api.client.get("/metrics").text.splitlines() if line.startswith(prefix)
    ]


def _broken_copy(uri: str, name: str, directory: Path) -> tuple[Path, Path]:
    """A copy of ``name`` v1's model folder under ``directory`` whose model file is removed
    (returns the folder and the removed file; the original stays untouched)."""
    client = _client(uri)
    original = Path(client.get_model_version_download_uri(name, "1").removeprefix("file://"))
    folder = directory / f"{name}-model"
    shutil.copytree(original, folder)
    data = Model.load(str(folder)).flavors["lightgbm"]["data"]
    (folder / data).rename(directory / f"{name}-{data}.aside")
    return folder, folder / data


# -- H3: a loadable but wrong model is rejected -----------------------------------------------


def test_phase_files_registered_as_churn_are_rejected_and_the_previous_set_serves(
    registry: TrainedRegistry, store: str, tmp_path: Path
) -> None:
    with open_api("sqlite", tmp_path, replace(registry, tracking_uri=store)) as api:
        holder = _services(api).holder
        before = holder.current
        account = api.account_ids[3]
        recommendations(api, account, k=2)
        version = _register(store, CHURN, files_of=PHASE)

        assert holder.reload_if_moved() is False
        assert holder.current is before
        status = holder.status()
        assert status.versions == FIRST
        assert status.rejected == Rejection(CHURN, version, "classes")
        assert (status.rejections, status.failures) == (1, 1)
        assert status.last_error is not None
        assert f"{CHURN} v{version} rejected" in status.last_error
        assert "binary" in status.last_error and "8 classes" in status.last_error

        ready = api.client.get("/ready")
        assert ready.status_code == 200
        body = ready.json()
        assert body["model_versions"] == FIRST and body["missing"] == []
        assert f"{CHURN} v{version} rejected" in body["last_reload_error"]
        assert _metric_lines(api, "nba_model_set_rejected{") == [
            f'nba_model_set_rejected{{check="classes",model="{CHURN}",version="{version}"}} 1.0'
        ]
        assert _metric_lines(api, "nba_model_sets_rejected_total") == [
            "nba_model_sets_rejected_total 1.0"
        ]
        assert _metric_lines(api, "nba_model_reload_failures_total") == [
            "nba_model_reload_failures_total 1.0"
        ]
        # requests keep getting answers from the previous set (new and cached accounts)
        for acc in (account, api.account_ids[4]):
            assert recommendations(api, acc, k=2)["model_versions"] == FIRST

        # the rejected set is not loaded again until the alias moves
        assert holder.reload_if_moved() is False
        assert (holder.status().rejections, holder.status().failures) == (1, 1)

        # a good version afterwards swaps in and clears the error and the rejection
        good = _register(store, CHURN)
        assert holder.reload_if_moved() is True
        assert holder.status().last_error is None and holder.status().rejected is None
        ready = api.client.get("/ready").json()
        assert ready["last_reload_error"] is None
        assert ready["model_versions"] == {**FIRST, CHURN: good}
        assert _metric_lines(api, "nba_model_set_rejected{") == []
        assert _metric_lines(api, "nba_model_last_reload_failed") == [
            "nba_model_last_reload_failed 0.0"
        ]
        assert recommendations(api, account, k=2)["model_versions"][CHURN] == good


def test_the_alias_back_on_the_serving_set_clears_the_reload_error(store: str) -> None:
    holder = ModelHolder(store)
    assert holder.load()
    version = _register(store, CHURN, files_of=PHASE)
    assert holder.reload_if_moved() is False
    assert f"{CHURN} v{version}" in (holder.status().last_error or "")

    _alias(store, CHURN, "1")  # nothing to swap: the serving set is the alias's again
    assert holder.reload_if_moved() is False
    status = holder.status()
    assert status.last_error is None and status.last_error_at is None
    assert status.rejected is None and status.versions == FIRST


def test_the_smoke_test_checks_classes_output_phases_and_columns(store: str) -> None:
    models = load_model_set(store)
    check_model_set(models, models.phase_classes)  # the trained set passes

    # the churn model's files registered as the phase model: two classes, one output
    version = _register(store, PHASE, files_of=CHURN)
    with pytest.raises(ModelSetRejected, match=rf"{PHASE} v{version} .*\(output\).*shape") as hit:
        check_model_set(load_model_set(store))
    assert (hit.value.model, hit.value.check) == (PHASE, "output")
    _alias(store, PHASE, "1")

    # the phase model's files as next content
    _register(store, NEXT_CONTENT, files_of=PHASE)
    with pytest.raises(ModelSetRejected, match=rf"{NEXT_CONTENT} v2 .*\(classes\)"):
        check_model_set(load_model_set(store))

    # a phase model trained on other phases than the service's taxonomy
    with pytest.raises(ModelSetRejected, match=r"\(classes\).*taxonomy"):
        check_model_set(models, tuple(reversed(models.phase_classes)))

    # an input example without the model's columns
    example = models.examples[CHURN].drop(columns=list(models.feature_columns[CHURN][:2]))
    broken = replace(models, examples={**models.examples, CHURN: example})
    with pytest.raises(ModelSetRejected, match=r"\(feature_columns\).*2 of them"):
        check_model_set(broken)


# -- M6: a worker started while the champion's files are missing -------------------------------


def test_a_worker_started_without_the_champions_files_says_what_is_missing_and_recovers(
    registry: TrainedRegistry, store: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, removed = _broken_copy(store, CHURN, tmp_path)
    version = _register(store, CHURN, source=str(folder))
    caplog.set_level(logging.ERROR)
    with open_api("sqlite", tmp_path, replace(registry, tracking_uri=store)) as api:
        expected = [f"{CHURN} v{version} ({CHAMPION})", "missing", removed.name]
        logged = [r.getMessage() for r in caplog.records if "no models loaded" in r.getMessage()]
        assert len(logged) == 1 and all(part in logged[0] for part in expected), logged

        ready = api.client.get("/ready")
        assert ready.status_code == 503
        [message] = ready.json()["missing"]
        assert all(part in message for part in expected), message
        assert message.endswith("restart to retry")  # this app does not poll (interval 0)
        answer = api.client.get(
            f"/v1/accounts/{api.account_ids[0]}/recommendations", headers=api.headers()
        )
        assert answer.status_code == 503 and removed.name in answer.json()["detail"]

        holder = _services(api).holder
        holder.start_polling(0.2)
        _wait_for(lambda: holder.status().failures >= 2, "a failed retry")
        assert "retrying every 0.2 s" in api.client.get("/ready").json()["missing"][0]
        retried = [r.getMessage() for r in caplog.records if "retrying every" in r.getMessage()]
        assert retried and all(part in retried[0] for part in expected), retried

        _alias(store, CHURN, "1")  # a loadable set is aliased: the worker serves it
        _wait_for(lambda: holder.ready, "the worker to load the aliased set")
        ready = api.client.get("/ready")
        assert ready.status_code == 200 and ready.json()["last_reload_error"] is None
        assert recommendations(api, api.account_ids[0], k=2)["model_versions"] == FIRST


def test_a_holder_serves_as_soon_as_the_missing_files_are_back(store: str, tmp_path: Path) -> None:
    folder, removed = _broken_copy(store, CHURN, tmp_path)
    version = _register(store, CHURN, source=str(folder))
    holder = ModelHolder(store)
    assert holder.load() is False
    assert removed.name in (holder.status().last_error or "")
    holder.start_polling(0.2)
    try:
        _wait_for(lambda: holder.status().failures >= 2, "a failed retry of the same versions")
        (tmp_path / f"{CHURN}-{removed.name}.aside").rename(removed)
        _wait_for(lambda: holder.ready, "the worker to load the restored files")
    finally:
        holder.stop()
    assert holder.current.versions[CHURN] == version
    assert holder.status().last_error is None
