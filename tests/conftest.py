"""Fixtures shared across the test packages: the session's trained registry (see
:mod:`tests.utils.registry`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.utils.registry import TrainedRegistry, open_trained_registry

# Marks of tests that take more than a few seconds each.
_SLOW_MARKS = frozenset({"slow", "dask"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Runs the files holding slow tests first, each file's tests together and in order.
    ``pytest -n 2 --dist loadfile`` hands files to the workers in collection order, so a
    slow file collected last runs alone at the end while the other worker idles: longest
    first keeps both busy until the end (the suite's wall time on two workers)."""
    slow_files = {
        item.path for item in items if any(m.name in _SLOW_MARKS for m in item.iter_markers())
    }
    items.sort(key=lambda item: item.path not in slow_files)  # stable: order within a file kept


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory) -> TrainedRegistry:
    """Simulated data and three registered champion models in a SQLite MLflow store, built
    on first use and shared by the whole session (read it, never change it)."""
    return open_trained_registry(tmp_path_factory)


@pytest.fixture(autouse=True)
def _mlflow_uris_restored() -> Iterator[None]:
    """MLflow's tracking and registry URIs are process-wide: a test that points them at its
    own store (``training.tracking.configure_tracking``) must not leave later tests, in
    whatever order a worker runs them, reading that store."""
    mlflow = sys.modules.get("mlflow")  # not imported: nothing to restore
    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) if mlflow else None
    yield
    if before is not None:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
