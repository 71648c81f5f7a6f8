"""Fixtures the serving test modules share."""

from __future__ import annotations

import pytest

from tests.utils.registry import TrainedRegistry


@pytest.fixture(scope="module")
def registry(trained_registry: TrainedRegistry) -> TrainedRegistry:
    """The session's trained registry (root ``conftest.py``) under the name the serving
    tests use."""
    return trained_registry
