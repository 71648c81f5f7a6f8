"""The three models training registers are usable outside this project: each predicts on
its own logged input example through MLflow's pyfunc loader and LightGBM's, and the MLmodel
metadata names the levels of its categorical inputs (given as codes)."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow.models import Model

from models.contract import CATEGORIES_METADATA, CHAMPION
from tests.utils.registry import REGISTERED, TrainedRegistry


@pytest.mark.parametrize("name", REGISTERED)
def test_a_registered_model_predicts_on_its_own_example_through_mlflow(
    trained_registry: TrainedRegistry, name: str
) -> None:
    mlflow.set_tracking_uri(trained_registry.tracking_uri)
    mlflow.set_registry_uri(trained_registry.tracking_uri)
    uri = f"models:/{name}@{CHAMPION}"
    info = Model.load(uri)
    example = info.load_input_example(mlflow.artifacts.download_artifacts(uri))
    assert len(example) == 5 and all(dt == np.float64 for dt in example.dtypes)

    labels = np.asarray(mlflow.pyfunc.load_model(uri).predict(example))
    assert labels.shape[0] == 5
    proba = mlflow.lightgbm.load_model(uri).predict_proba(example)
    assert proba.shape[0] == 5
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)

    categories = (info.metadata or {})[CATEGORIES_METADATA]
    if name != "nba-churn":  # the phase (CRM phase) and next-content models take categories
        assert categories
    for column, levels in categories.items():
        codes = example[column].dropna()
        assert ((codes >= 0) & (codes < len(levels)) & (codes == codes.round())).all()
