"""Honest baselines the models must beat, each fitted on the training split only.

- phase: the majority class; the last-touchpoint-content rule (the first phase listed by the
  content item of the account's last content touchpoint before as-of, majority class when
  there is none); and, for reference, the CRM's last recorded phase before as-of carried
  forward (what a CRM shows without any model).
- churn: a recency-only logistic regression on how long ago the account was last touched
  and last used the product.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from features.errors import InvalidInputError

# Recency features of the churn baseline; NaN (never) becomes _NEVER_DAYS plus a flag.
CHURN_RECENCY_COLUMNS = ("days_since_last_touch", "days_since_event_usage")
_NEVER_DAYS = 3650.0


class BaselineError(InvalidInputError):
    """A baseline cannot be fitted or applied; the message names the column."""


def majority_phase(y_train: np.ndarray, n_classes: int) -> int:
    """The most frequent class code among the training labels (lowest code on ties)."""
    if len(y_train) == 0:
        raise BaselineError("no training labels to take the majority class from")
    return int(np.argmax(np.bincount(np.asarray(y_train, dtype=np.int64), minlength=n_classes)))


def class_frequencies(y_train: np.ndarray, n_classes: int) -> np.ndarray:
    """Share of each class code among the training labels (the majority baseline's
    probabilities)."""
    counts = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=n_classes)
    return counts / max(counts.sum(), 1)


def predict_majority(n_rows: int, majority: int) -> np.ndarray:
    """The majority class for every row."""
    return np.full(n_rows, majority, dtype=np.int64)


def predict_last_content(rule_codes: np.ndarray, majority: int) -> np.ndarray:
    """The last-touchpoint-content rule: the rule's phase code where the account had a
    content touchpoint (code >= 0), else the majority class."""
    codes = np.asarray(rule_codes, dtype=np.int64)
    return np.where(codes >= 0, codes, majority)


def predict_crm_last(crm_phase: pd.Series, class_names: list[str], majority: int) -> np.ndarray:
    """The CRM's last recorded phase before as-of (feature ``crm_phase``) as class codes,
    the majority class where the CRM has no record yet."""
    codes = pd.Categorical(crm_phase.astype(object), categories=class_names).codes
    return np.where(codes >= 0, codes, majority).astype(np.int64)


def _recency_matrix(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BaselineError(
            f"churn training set lacks recency columns {missing}; expected {list(columns)}"
        )
    days = frame[list(columns)].to_numpy(dtype=np.float64)
    never = np.isnan(days)
    return np.column_stack([np.log1p(np.where(never, _NEVER_DAYS, days)), never])


@dataclass
class RecencyLogistic:
    """Logistic regression on log(1 + days since last touch / last usage) and "never"
    flags: the churn baseline. Fit on training rows, then ``predict_proba``."""

    columns: tuple[str, ...] = CHURN_RECENCY_COLUMNS
    model: LogisticRegression = field(default_factory=lambda: LogisticRegression(max_iter=1000))

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> RecencyLogistic:
        """Fit on the rows of ``frame`` with 0/1 labels ``y``; returns self."""
        y = np.asarray(y)
        if len(np.unique(y)) < 2:
            raise BaselineError("recency baseline needs both churners and non-churners")
        self.model.fit(_recency_matrix(frame, self.columns), y)
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """P(churn) per row of ``frame``."""
        return np.asarray(self.model.predict_proba(_recency_matrix(frame, self.columns)))[:, 1]
