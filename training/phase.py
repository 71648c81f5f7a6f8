"""Train and evaluate the phase model against its baselines, the CRM and the true phase.

``train_phase`` fits ``models.phase`` on a phase :class:`~training.datasets.TrainingSet` and
returns a :class:`~training.result.ModelResult` with metrics on the test split, vs the CRM
label (what a real customer can measure) and, with simulator truth, vs the true phase at
as-of. ``score_phase`` is the primary metric promotion compares; ``backtest_phase`` is the
intent-data-vendor view: per predicted phase, the share of open accounts that purchased in the
next 90 days.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from features.errors import InvalidInputError
from features.simulate.truth import SimulationTruth, true_phases
from features.taxonomy import Taxonomy
from models import phase as phase_model
from models.contract import PHASE_CONFUSION_ARTIFACT
from training.baselines import (
    majority_phase,
    predict_crm_last,
    predict_last_content,
    predict_majority,
)
from training.datasets import LAST_CONTENT_PHASE_COLUMN, PURCHASED_COLUMN, TrainingSet
from training.result import Evaluation, ModelResult

PRIMARY_METRIC = "model.macro_f1_crm"


class PhaseTrainingError(InvalidInputError):
    """The phase model cannot be trained or evaluated on this training set."""


def phase_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str], suffix: str
) -> dict[str, float]:
    """Accuracy, macro-F1 (over the classes present in ``y_true``) and one F1 per phase
    present in ``y_true``, keyed ``accuracy_<suffix>``, ``macro_f1_<suffix>``,
    ``f1_<phase>_<suffix>``."""
    present = np.unique(y_true)
    per_class = f1_score(y_true, y_pred, labels=present, average=None, zero_division=0)
    out = {
        f"accuracy_{suffix}": float(accuracy_score(y_true, y_pred)),
        f"macro_f1_{suffix}": float(np.mean(per_class)),
    }
    for code, f1 in zip(present, per_class, strict=True):
        out[f"f1_{class_names[int(code)]}_{suffix}"] = float(f1)
    return out


def confusion_csv(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> str:
    """The confusion matrix as CSV text: rows = actual phase, columns = predicted phase."""
    matrix = confusion_matrix(y_true, y_pred, labels=np.arange(len(class_names)))
    frame = pd.DataFrame(matrix, index=class_names, columns=class_names)
    frame.index.name = "actual \\ predicted"
    return frame.to_csv()


def metrics_table(metrics: dict[str, float], title: str) -> str:
    """A Markdown table ``metric | model | baseline_... | ceiling`` from ``"<who>.<metric>"``
    keys (blank where a column has no value for a metric), under a ``### title`` heading."""
    whos: list[str] = []
    names: list[str] = []
    for key in metrics:
        who, _, name = key.partition(".")
        if who not in whos:
            whos.append(who)
        if name not in names:
            names.append(name)
    order = sorted(whos, key=lambda w: (w != "model", w == "ceiling", w))
    lines = [
        f"### {title}",
        "",
        "| metric | " + " | ".join(order) + " |",
        "|---|" + "---:|" * len(order),
    ]
    for name in names:
        cells = [f"{metrics[f'{w}.{name}']:.4f}" if f"{w}.{name}" in metrics else "" for w in order]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _xy(ts: TrainingSet, part: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    return part[ts.feature_columns], part[ts.label_column].to_numpy(dtype=np.int64)


def _true_phase_codes(
    truth: SimulationTruth, rows: pd.DataFrame, class_names: list[str]
) -> np.ndarray:
    """True phase at each row's as-of as class codes (-1 where the simulator has none)."""
    phase = true_phases(truth, rows["account_id"].to_numpy(), rows["as_of"].reset_index(drop=True))
    return pd.Categorical(phase.astype(object), categories=class_names).codes.astype(np.int64)


def train_phase(
    ts: TrainingSet,
    *,
    params: dict[str, Any] | None = None,
    truth: SimulationTruth | None = None,
    taxonomy: Taxonomy | None = None,
    client: Any | None = None,
) -> ModelResult:
    """Fit the phase model on ``ts``'s training split (early stopping on validation) and
    evaluate it and its baselines on the test split.

    Metrics ``<who>.<metric>_crm`` compare with the CRM label; with ``truth``,
    ``<who>.<metric>_true`` compare with the simulator's true phase at as-of and
    ``ceiling.*_crm`` scores the true phase as a predictor of the CRM label (what perfect
    knowledge of the journey would reach). Baselines: majority class, last-touchpoint-content
    rule, the CRM's last record carried forward. The primary metric is
    ``model.macro_f1_crm`` (promotion needs no truth). ``taxonomy`` is not needed (class
    names travel with ``ts``) and is accepted for a uniform signature.
    """
    del taxonomy
    names = list(ts.class_names)
    if not names:
        raise PhaseTrainingError(f"training set {ts.name!r} has no class_names; expected phases")
    n_classes = len(names)
    x_train, y_train = _xy(ts, ts.split.train)
    x_valid, y_valid = _xy(ts, ts.split.valid)
    test = ts.split.test
    x_test, y_test = _xy(ts, test)
    if len(x_test) == 0:
        raise PhaseTrainingError(f"training set {ts.name!r} has no test rows")
    merged = phase_model.merged_params(params)
    estimator = phase_model.fit(
        x_train, y_train, x_valid, y_valid, n_classes=n_classes, params=params, client=client
    )
    # The columns the fitted model takes (fit may select a subset of ts.feature_columns).
    used = phase_model.model_columns(estimator)
    proba = phase_model.predict_proba(estimator, x_test, n_classes=n_classes)
    predictions = {
        "model": np.argmax(proba, axis=1),
    }
    majority = majority_phase(y_train, n_classes)
    predictions["baseline_majority"] = predict_majority(len(test), majority)
    predictions["baseline_last_content"] = predict_last_content(
        test[LAST_CONTENT_PHASE_COLUMN].to_numpy(), majority
    )
    if "crm_phase" in test.columns:
        predictions["baseline_crm_last"] = predict_crm_last(test["crm_phase"], names, majority)

    metrics: dict[str, float] = {}
    artifacts: dict[str, str] = {}
    for who, y_pred in predictions.items():
        metrics.update(
            {f"{who}.{k}": v for k, v in phase_metrics(y_test, y_pred, names, "crm").items()}
        )
    artifacts[PHASE_CONFUSION_ARTIFACT] = confusion_csv(y_test, predictions["model"], names)
    if truth is not None:
        y_true = _true_phase_codes(truth, test, names)
        known = y_true >= 0
        for who, y_pred in predictions.items():
            found = phase_metrics(y_true[known], y_pred[known], names, "true")
            metrics.update({f"{who}.{k}": v for k, v in found.items()})
        ceiling = phase_metrics(y_test[known], y_true[known], names, "crm")
        metrics.update({f"ceiling.{k}": v for k, v in ceiling.items()})
        artifacts["confusion_matrix_true.csv"] = confusion_csv(
            y_true[known], predictions["model"][known], names
        )
    backtest = backtest_phase(estimator, ts)
    if not backtest.empty:
        artifacts["backtest_phase.csv"] = backtest.to_csv(index=False)
        for name, rate in zip(
            backtest["predicted_phase"], backtest["purchase_rate"].to_numpy(), strict=True
        ):
            metrics[f"model.backtest_purchase_rate_{name}"] = float(rate)
    importance = pd.DataFrame(
        {
            "feature": used,
            "gain": estimator.booster_.feature_importance(importance_type="gain"),
        }
    ).sort_values("gain", ascending=False)
    artifacts["feature_importance.csv"] = importance.to_csv(index=False)

    title = f"phase model ({len(test)} test rows; CRM label and true phase at as-of)"
    report = metrics_table(metrics, title)
    if not backtest.empty:
        report += "\n" + _backtest_markdown(backtest)
    run_params = {
        **{k: v for k, v in merged.items()},
        "best_iteration": int(estimator.best_iteration_ or merged["n_estimators"]),
        "label_lag_days": ts.horizon_days,
        "n_train_rows": len(x_train),
        "n_valid_rows": len(x_valid),
        "n_test_rows": len(x_test),
        "n_features": len(used),
    }
    return ModelResult(
        name="phase",
        estimator=estimator,
        feature_columns=used,
        params=run_params,
        metrics=metrics,
        primary_metric=PRIMARY_METRIC,
        report_markdown=report,
        evaluation=Evaluation(y_true=y_test, y_score=proba, class_names=names),
        input_example=x_test[used].head(5).reset_index(drop=True),
        training_set_fingerprint=ts.fingerprint,
        as_of_dates=ts.as_of_dates,
        extra_artifacts=artifacts,
    )


def score_phase(estimator: Any, ts: TrainingSet) -> float:
    """Macro-F1 vs the CRM label on ``ts``'s test split (the primary metric promotion
    compares; greater is better)."""
    x_test, y_test = _xy(ts, ts.split.test)
    if len(x_test) == 0:
        raise PhaseTrainingError(f"training set {ts.name!r} has no test rows to score")
    proba = phase_model.predict_proba(estimator, x_test, n_classes=len(ts.class_names))
    found = phase_metrics(y_test, np.argmax(proba, axis=1), ts.class_names, "crm")
    return found["macro_f1_crm"]


def backtest_phase(
    estimator: Any, ts: TrainingSet, *, as_of: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Score every open account (``is_customer == 0``) of ``ts`` as of ``as_of`` (default:
    the latest test as-of date whose purchase window fits in the data) and return, per
    predicted phase in taxonomy order: ``predicted_phase``, ``n_accounts``, ``n_purchased``
    (a purchase event in ``[as_of, as_of + 90 days)``) and ``purchase_rate``.

    Returns an empty frame when no test date has a complete purchase window. Accounts the
    CRM has never recorded are not in the phase set and so not scored.
    """
    frame = ts.frame
    fits = frame[PURCHASED_COLUMN].notna()
    if as_of is None:
        test_dates = pd.DatetimeIndex(ts.split.dates.test)
        usable = pd.DatetimeIndex(frame.loc[fits, "as_of"].unique())
        candidates = test_dates[test_dates.isin(usable)]
        if len(candidates) == 0:
            return pd.DataFrame(
                columns=["predicted_phase", "n_accounts", "n_purchased", "purchase_rate"]
            )
        as_of = candidates.max()
    rows = frame[(frame["as_of"] == as_of) & (frame["is_customer"] == 0) & fits]
    if rows.empty:
        raise PhaseTrainingError(
            f"phase set has no open accounts with a complete purchase window at as-of {as_of}"
        )
    names = ts.class_names
    proba = phase_model.predict_proba(estimator, rows[ts.feature_columns], n_classes=len(names))
    predicted = np.argmax(proba, axis=1)
    purchased = rows[PURCHASED_COLUMN].to_numpy(dtype=np.float64)
    n = np.bincount(predicted, minlength=len(names))
    bought = np.bincount(predicted, weights=purchased, minlength=len(names))
    seen = n > 0
    return pd.DataFrame(
        {
            "predicted_phase": np.asarray(names)[seen],
            "n_accounts": n[seen],
            "n_purchased": bought[seen].astype(np.int64),
            "purchase_rate": bought[seen] / n[seen],
        }
    )


def _backtest_markdown(backtest: pd.DataFrame) -> str:
    lines = [
        "### backtest: open accounts by predicted phase, purchases in the next 90 days",
        "",
        "| predicted phase | accounts | purchased | share purchased |",
        "|---|---:|---:|---:|",
    ]
    for row in backtest.itertuples(index=False):
        lines.append(
            f"| {row.predicted_phase} | {row.n_accounts} | {row.n_purchased} | "
            f"{row.purchase_rate:.3f} |"
        )
    return "\n".join(lines) + "\n"
