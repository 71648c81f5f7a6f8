"""Fixtures the serving test modules share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.utils.api import Api, open_api
from tests.utils.registry import TrainedRegistry
from tests.utils.store import BACKENDS


@pytest.fixture(scope="module")
def registry(trained_registry: TrainedRegistry) -> Iterator[TrainedRegistry]:
    """The session's trained registry (root ``conftest.py``) under the name the serving
    tests use, and MLflow's default store for the module: a module that ran before in the
    same worker may have pointed it at its own store, and MLflow resolves a registered
    version's ``models:/`` source through the default store."""
    import mlflow

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(trained_registry.tracking_uri)
    mlflow.set_registry_uri(trained_registry.tracking_uri)
    try:
        yield trained_registry
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])


@pytest.fixture(scope="module", params=BACKENDS)
def api(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    registry: TrainedRegistry,
) -> Iterator[Api]:
    """The app over a loaded store, once per backend (SQLite, and PostgreSQL when it is
    reachable) and test module."""
    directory = tmp_path_factory.mktemp(f"api-{request.param}")
    with open_api(request.param, directory, registry) as opened:
        yield opened
