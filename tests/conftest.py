"""Fixtures shared across the test packages: the session's trained registry (see
:mod:`tests.utils.registry`)."""

from __future__ import annotations

import pytest

from tests.utils.registry import TrainedRegistry, open_trained_registry


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory) -> TrainedRegistry:
    """Simulated data and three registered champion models in a SQLite MLflow store, built
    on first use and shared by the whole session (read it, never change it)."""
    return open_trained_registry(tmp_path_factory)
