"""What training one model produces: the contract between model training and MLflow logging.

The model-specific code (``training.phase_churn``, ``training.next_content``) returns a
:class:`ModelResult`; ``training.tracking`` logs it to MLflow and registers it, and
``training.registry`` promotes it. Neither side needs to know the other's internals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from models.contract import CHURN, NEXT_CONTENT, PHASE

ModelName = Literal["phase", "churn", "next-content"]
MODEL_NAMES: tuple[ModelName, ...] = ("phase", "churn", "next-content")
REGISTERED_NAMES: dict[ModelName, str] = {
    "phase": PHASE,
    "churn": CHURN,
    "next-content": NEXT_CONTENT,
}


def registered_name(name: str) -> str:
    """The registered model (and experiment) name of a model or binary outcome: ``nba-<name>``
    (the default churn outcome stays ``nba-churn``)."""
    return REGISTERED_NAMES.get(name, f"nba-{name}")  # type: ignore[call-overload]


@dataclass
class Evaluation:
    """Arrays the plots are drawn from (test split)."""

    y_true: np.ndarray  # class index (phase) or 0/1 (churn, response)
    y_score: np.ndarray  # (n, classes) probabilities for phase; P(positive) otherwise
    class_names: list[str] = field(default_factory=list)  # phase names in class order


@dataclass(frozen=True)
class Gate:
    """The champion gate: the model against its strongest simple baseline on the validation
    split, on one metric where greater is better.

    The model passes only when it beats the baseline beyond noise: the 95 % interval of the
    paired difference (model minus baseline over the same resampled accounts) lies above 0.
    A model within noise of its baseline ties it, and a tie loses (a model that does not
    beat its baseline is not made champion). A gate recorded without that interval (before
    it was kept) falls back to the point values."""

    metric: str
    model: float
    baseline: str
    baseline_value: float
    # 95 % intervals of both values (NaN where a gate was recorded without them).
    model_ci: tuple[float, float] = (float("nan"), float("nan"))
    baseline_ci: tuple[float, float] = (float("nan"), float("nan"))
    # 95 % interval of model minus baseline, paired (NaN where recorded without it).
    difference_ci: tuple[float, float] = (float("nan"), float("nan"))

    @property
    def paired(self) -> bool:
        """Whether the gate holds the paired difference's interval."""
        return all(math.isfinite(v) for v in self.difference_ci)

    @property
    def passed(self) -> bool:
        if self.paired:
            return bool(self.difference_ci[0] > 0.0)
        return bool(self.model > self.baseline_value)

    @property
    def tied(self) -> bool:
        """Not passed, though not shown worse either: the difference's interval holds 0."""
        return bool(self.paired and not self.passed and self.difference_ci[1] >= 0.0)

    @property
    def verdict(self) -> str:
        """``wins``, or ``LOSES`` (said of a tie too, with why)."""
        if self.passed:
            return "wins"
        return "LOSES (a tie: the difference's interval holds 0)" if self.tied else "LOSES"

    @property
    def difference_text(self) -> str:
        """``+0.0123 [+0.0040, +0.0210]``: model minus baseline and its paired interval
        (empty for a gate recorded without it)."""
        if not self.paired:
            return ""
        low, high = self.difference_ci
        return f"{self.model - self.baseline_value:+.4f} [{low:+.4f}, {high:+.4f}]"

    def summary(self) -> dict[str, object]:
        """The gate as JSON output shows it (values to 6 decimals)."""
        return {
            "metric": self.metric,
            "model": round(self.model, 6),
            "baseline": self.baseline,
            "baseline_value": round(self.baseline_value, 6),
            "difference_ci": (
                [round(float(v), 6) for v in self.difference_ci] if self.paired else None
            ),
            "passed": self.passed,
            "tied": self.tied,
        }


@dataclass
class ModelResult:
    """A trained model with everything a run logs.

    ``metrics`` keys are ``"<who>.<metric>"`` where who is ``model``, ``baseline_<name>``,
    ``oracle`` (from the simulator's latent state: a true upper reference), a named
    reference from the simulator that is no bound (``held_hazard``, ``true_phase``) or
    ``model_minus_peer`` (differences), e.g. ``model.macro_f1_true``; ``<metric>_ci_low`` and
    ``<metric>_ci_high`` hold a metric's 95 % interval.
    ``primary_metric`` names the key promotion compares (greater is better).
    """

    name: str  # a ModelName, or a binary outcome's name (``models.outcomes``)
    estimator: Any  # a fitted lightgbm.LGBMClassifier
    feature_columns: list[str]
    params: dict[str, Any]
    metrics: dict[str, float]
    primary_metric: str
    report_markdown: str
    evaluation: Evaluation
    input_example: pd.DataFrame
    training_set_fingerprint: str
    as_of_dates: dict[str, list[str]]  # split -> ISO dates
    extra_artifacts: dict[str, str] = field(default_factory=dict)  # file name -> text
    gate: Gate | None = None

    def __post_init__(self) -> None:
        # Its own rows: a few rows sliced from the test split would keep every column of
        # the training set alive for as long as the result (2 GB at 100,000 accounts).
        self.input_example = self.input_example.copy(deep=True)
