"""Stand-in models for tests that need a model known to be worse than a trained one."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit, logit, ndtri


class Reversed:
    """A binary LightGBM model whose P(positive) is the other's complement: it ranks last
    what its source ranks first (every other attribute is its source's)."""

    def __init__(self, estimator: object) -> None:
        self._estimator = estimator

    def __getattr__(self, name: str) -> object:
        return getattr(self._estimator, name)

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(self._estimator.predict_proba(x))[:, ::-1]  # type: ignore[attr-defined]


class Noisy:
    """A binary LightGBM model whose P(positive) is its source's with normal noise of
    standard deviation ``scale`` on the logit, the same for the same input row (drawn from
    the row's hash): no better than its source anywhere, and sure to rate the rows it ranks
    first too high, as it ranks them first partly for their noise."""

    def __init__(self, estimator: object, scale: float) -> None:
        self._estimator = estimator
        self._scale = scale

    def __getattr__(self, name: str) -> object:
        return getattr(self._estimator, name)

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        p = np.asarray(self._estimator.predict_proba(x))[:, 1]  # type: ignore[attr-defined]
        hashed = pd.util.hash_pandas_object(x, index=False).to_numpy()
        # the hash's top 53 bits as a uniform in (0, 1), then a standard normal
        uniform = ((hashed >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
        noise = self._scale * ndtri(uniform)
        noisy = expit(logit(np.clip(p, 1e-9, 1 - 1e-9)) + noise)
        return np.column_stack([1.0 - noisy, noisy])
