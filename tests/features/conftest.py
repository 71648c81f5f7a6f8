"""Shared fixtures for the features tests: the default taxonomy and the tiny hand-built data
set (:func:`tests.utils.data.make_tiny_data`, described there)."""

from __future__ import annotations

import pytest

from features.schema import JourneyData
from features.taxonomy import Taxonomy, load_taxonomy
from tests.utils.data import make_tiny_data


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    """The shipped default taxonomy."""
    return load_taxonomy()


@pytest.fixture
def tiny_data(taxonomy: Taxonomy) -> JourneyData:
    """A fresh copy of the tiny data set (see :mod:`tests.utils.data`) per test."""
    return make_tiny_data(taxonomy)
