"""Fixtures the serving test modules share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.utils.api import Api, open_api
from tests.utils.registry import TrainedRegistry
from tests.utils.store import BACKENDS


@pytest.fixture(scope="module")
def registry(trained_registry: TrainedRegistry) -> TrainedRegistry:
    """The session's trained registry (root ``conftest.py``) under the name the serving
    tests use."""
    return trained_registry


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
