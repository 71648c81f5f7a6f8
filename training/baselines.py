"""Honest baselines the models must beat, each fitted on the training split only.

- phase: the majority class; the last-touchpoint-content rule (the first phase listed by the
  content item of the account's last content touchpoint before as-of, majority class when
  there is none); and, for reference, the CRM's last recorded phase before as-of carried
  forward (what a CRM shows without any model).
- binary outcomes (churn, repurchase, conversion, ...): logistic regression on recency,
  frequency and monetary features (``RFM_COLUMNS``, the gate's default peer), logistic
  regression on the model's own inputs, and the older recency-only logistic regression on
  how long ago the account was last touched and last used the product.
- next content: the hand rule, a two-line rule a marketer would write: the item's fit to the
  contact's role (1 or 0) plus the share of the account's content touchpoints (ever, before
  the decision) that were on the item's topic; ties broken at random.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from features.errors import InvalidInputError
from features.taxonomy import Taxonomy
from models.next_content.catalog import codes, membership

# Recency features of the churn baseline; NaN (never) becomes _NEVER_DAYS plus a flag.
CHURN_RECENCY_COLUMNS = ("days_since_last_touch", "days_since_event_usage")
_NEVER_DAYS = 3650.0
# Rows scored per step: a whole test split's design matrix is GBs at 1M accounts.
PREDICT_ROWS = 65_536


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
class _TrainingRange:
    """Each input column's range on the training rows; later rows are clipped into it. A
    linear model extrapolates a feature that drifts with time (days since the first touch
    grows with every later as-of date) without bound: on the simulated churn test split
    the same-inputs regression's logit moved by +3.6 on average from drift alone (mean
    prediction 0.19 against a positive rate of 0.035) and its ROC-AUC was 0.680; inputs
    clipped to the training range gave 0.746 (20,000 accounts, seed 7). A tree model
    saturates at its last split by construction; the linear yardstick gets the same."""

    low: np.ndarray = field(default_factory=lambda: np.zeros(0))
    high: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def of(cls, x: np.ndarray) -> _TrainingRange:
        """The range of every column of the training matrix ``x``."""
        return cls(x.min(axis=0), x.max(axis=0))

    def clip(self, x: np.ndarray) -> np.ndarray:
        """``x`` clipped into the training range, in place."""
        return np.clip(x, self.low, self.high, out=x)


def _logistic(max_iter: int) -> LogisticRegression:
    """An L2 logistic regression (C = 1) solved to its optimum: Newton steps with a
    Cholesky solve, made for many more rows than columns. L-BFGS stopped on its gradient
    tolerance far from it on the churn set's correlated features (137 iterations, weights
    off by up to 2.3 of 7.6; ROC-AUC 0.8259 on test at 100,000 accounts against 0.8284 from
    the optimum, in 7 Newton steps and no more time): a yardstick fitted short of its
    optimum is weaker than the baseline it stands for."""
    return LogisticRegression(max_iter=max_iter, C=1.0, solver="newton-cholesky")


@dataclass
class RecencyLogistic:
    """Logistic regression on log(1 + days since last touch / last usage) and "never"
    flags: the churn baseline. Fit on training rows, then ``predict_proba``."""

    columns: tuple[str, ...] = CHURN_RECENCY_COLUMNS
    model: LogisticRegression = field(default_factory=lambda: _logistic(max_iter=1000))
    # each input's range on the training rows (see _TrainingRange)
    span: _TrainingRange = field(default_factory=_TrainingRange)

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> RecencyLogistic:
        """Fit on the rows of ``frame`` with 0/1 labels ``y``; returns self."""
        y = np.asarray(y)
        if len(np.unique(y)) < 2:
            raise BaselineError("recency baseline needs both churners and non-churners")
        x = _recency_matrix(frame, self.columns)
        self.span = _TrainingRange.of(x)
        self.model.fit(x, y)
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """P(churn) per row of ``frame``."""
        x = self.span.clip(_recency_matrix(frame, self.columns))
        return np.asarray(self.model.predict_proba(x))[:, 1]


# Recency, frequency and monetary features of the binary outcomes' baseline (those present):
# days since the last touch and the last purchase, purchases ever, touchpoints in the last
# 90 and 365 days, purchases in the last 365 days and the year's purchase amounts.
RFM_COLUMNS = (
    "days_since_last_touch",
    "days_since_event_purchase",
    "n_purchases",
    "n_touchpoints_90d",
    "n_touchpoints_365d",
    "n_event_purchase_365d",
    "revenue_365d",
)


# A column of the design matrix: (feature column, kind, level), kind "value" (the number,
# log-scaled), "missing" (its NaN flag) or "level" (one category level, one-hot).
Piece = tuple[str, str, str]


def _filled(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A number column with 0 where missing, and its NaN flags."""
    x = values.to_numpy(dtype=np.float64)
    missing = np.isnan(x)
    return np.where(missing, 0.0, x), missing


def _varying_pieces(
    frame: pd.DataFrame, columns: list[str], levels: dict[str, list[str]]
) -> list[Piece]:
    """The design's columns that vary over ``frame``'s rows (the training rows): numbers and
    their "missing" flags, categories one-hot over ``levels``. A column constant there is 0
    once centred, so the L2 penalty holds its weight at 0 and the training range clips it
    to 0 at prediction: leaving it out changes no answer, and saves its memory (on the
    simulated churn set of 3,000 accounts 446 of 776 columns vary: most features are never
    missing) and the Hessian's singular directions."""
    out: list[Piece] = []
    for column in columns:
        if column in levels:
            values = frame[column].astype(object).to_numpy()
            for level in levels[column]:
                hit = values == level
                if hit.any() and not hit.all():
                    out.append((column, "level", level))
        else:
            # the design's sign(x) log(1 + |x|) is one-to-one: it varies where x does
            number, missing = _filled(frame[column])
            if len(number) and number.min() != number.max():
                out.append((column, "value", ""))
            if missing.any() and not missing.all():
                out.append((column, "missing", ""))
    return out


def _design(frame: pd.DataFrame, pieces: list[Piece]) -> np.ndarray:
    """The design matrix of ``frame``'s rows, one column per piece. Float64, filled in
    place: the churn set's training rows give a matrix of GBs at 1M accounts, which Newton
    steps hold twice (the Hessian's weighted copy), and stacking its pieces held it twice
    more. (Float32 would halve it, but at 1M accounts the Hessian was too ill-conditioned
    in float32 for the Cholesky solve, and scikit-learn fell back to L-BFGS: test ROC-AUC
    0.888 against 0.893.)"""
    out = np.empty((len(frame), len(pieces)), dtype=np.float64)
    at = 0
    for column, group in groupby(pieces, key=lambda piece: piece[0]):
        kinds = list(group)
        if kinds[0][1] == "level":
            values = frame[column].astype(object).to_numpy()
            for k, (_, _, level) in enumerate(kinds):
                out[:, at + k] = values == level
        else:
            x, missing = _filled(frame[column])
            for k, (_, kind, _) in enumerate(kinds):
                out[:, at + k] = np.sign(x) * np.log1p(np.abs(x)) if kind == "value" else missing
        at += len(kinds)
    return out


@dataclass
class FeatureLogistic:
    """Logistic regression (standardised inputs, L2) on ``columns`` of a training set: the
    binary outcomes' baselines. ``RFM_COLUMNS`` gives the recency-frequency-monetary peer;
    a model's own feature columns give "logistic regression on the same inputs"."""

    columns: tuple[str, ...]
    # the design's columns that vary over the training rows (see _varying_pieces)
    pieces: list[Piece] = field(default_factory=list)
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))
    model: LogisticRegression = field(default_factory=lambda: _logistic(max_iter=2000))
    span: _TrainingRange = field(default_factory=_TrainingRange)
    rate: float = 0.0  # the training rows' positive rate

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> FeatureLogistic:
        """Fit on the rows of ``frame`` (columns absent from it are left out) with 0/1
        labels ``y``; returns self."""
        y = np.asarray(y)
        if len(np.unique(y)) < 2:
            raise BaselineError("logistic baseline needs both outcomes among training rows")
        self.columns = tuple(c for c in self.columns if c in frame.columns)
        if not self.columns:
            raise BaselineError("logistic baseline: the training set has none of its columns")
        levels = {
            c: sorted(frame[c].dropna().astype(str).unique())
            for c in self.columns
            if not pd.api.types.is_numeric_dtype(frame[c])
        }
        self.pieces = _varying_pieces(frame, list(self.columns), levels)
        self.rate = float(y.mean())
        if not self.pieces:
            # nothing varies (e.g. no account of a small real set has bought yet): what a
            # fit on constant inputs gives, the training rows' positive rate for every row
            return self
        x = _design(frame, self.pieces)
        # standardised in place, the spread read from the centred matrix without a
        # temporary: the design matrix of the churn set's training rows is hundreds of MB
        # at 100,000 accounts, and a copy beside it (x.std makes one) raised the churn
        # step's memory peak by as much
        self.mean = x.mean(axis=0)
        x -= self.mean
        std = np.sqrt(np.einsum("ij,ij->j", x, x) / max(len(x), 1))
        self.scale = np.where(std > 0, std, 1.0)
        x /= self.scale
        self.span = _TrainingRange.of(x)
        self.model.fit(x, y)
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """P(positive) per row of ``frame``, ``PREDICT_ROWS`` rows at a time."""
        if not self.pieces:
            return np.full(len(frame), self.rate)
        out = np.empty(len(frame), dtype=np.float64)
        for start in range(0, len(frame), PREDICT_ROWS):
            x = _design(frame.iloc[start : start + PREDICT_ROWS], self.pieces)
            x -= self.mean
            x /= self.scale
            out[start : start + len(x)] = self.model.predict_proba(self.span.clip(x))[:, 1]
        return out


# The seed of the hand rule's tie-breaking draws.
HAND_RULE_SEED = 13


def hand_rule_scores(rows: pd.DataFrame, content: pd.DataFrame, taxonomy: Taxonomy) -> np.ndarray:
    """decisions x items: the hand rule's score of every catalog item (``content`` rows in
    order) for each decision row, role fit + topic share + a tie-breaking draw below 1e-6.

    ``rows`` need ``contact_role`` (NaN: no role fits) and the account's per-topic counts
    ``n_topic_<topic>_ever`` (``models.next_content.topic_engagement``)."""
    topics = taxonomy.topic_names
    needed = ["contact_role", *(f"n_topic_{t}_ever" for t in topics)]
    missing = [c for c in needed if c not in rows.columns]
    if missing:
        raise BaselineError(
            f"hand rule: decision rows lack columns {missing[:5]}; expected the next-content "
            "set's contact_role and per-topic counts"
        )
    role = codes(rows["contact_role"], taxonomy.role_names, "contact_role", strict=False)
    role_fit = membership(content["roles"], taxonomy.role_names, "roles").T  # roles x items
    fits = np.where(role[:, None] >= 0, role_fit[np.maximum(role, 0)], 0.0)
    counts = rows[needed[1:]].to_numpy(dtype=np.float64)
    counts = np.nan_to_num(counts)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    topic = codes(content["topic"], topics, "topic", strict=False)
    on_topic = np.where(topic[None, :] >= 0, share[:, np.maximum(topic, 0)], 0.0)
    ties = np.random.default_rng(HAND_RULE_SEED).random(fits.shape) * 1e-7
    return fits + on_topic + ties
