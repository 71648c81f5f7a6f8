"""Stand-in models for tests that need a model known to be worse than a trained one."""

from __future__ import annotations

import numpy as np
import pandas as pd


class Reversed:
    """A binary LightGBM model whose P(positive) is the other's complement: it ranks last
    what its source ranks first (every other attribute is its source's)."""

    def __init__(self, estimator: object) -> None:
        self._estimator = estimator

    def __getattr__(self, name: str) -> object:
        return getattr(self._estimator, name)

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(self._estimator.predict_proba(x))[:, ::-1]  # type: ignore[attr-defined]
