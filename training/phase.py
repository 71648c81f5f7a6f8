"""Train and evaluate the phase model against its baselines, the CRM and the true phase.

``train_phase`` fits ``models.phase`` on a phase :class:`~training.datasets.TrainingSet`
(labels: the hindsight phase, ``training.hindsight``) and returns a
:class:`~training.result.ModelResult` with metrics on the test split vs the hindsight label
(the primary metric: the best account of the phase at as-of a real company has, read from
its CRM history later), vs the CRM label at as-of (what the CRM showed then) and, with
simulator truth, vs the true phase at as-of. ``score_phase`` is the primary metric promotion
compares; ``backtest_phase`` is the intent-data-vendor view: per predicted phase, the share
of open accounts that purchased in the next 90 days.
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
from models.fitting import model_columns
from training.baselines import (
    majority_phase,
    predict_crm_last,
    predict_last_content,
    predict_majority,
)
from training.datasets import (
    CRM_LABEL_COLUMN,
    LAST_CONTENT_PHASE_COLUMN,
    PURCHASED_COLUMN,
    ModelSplits,
    TrainingSet,
    features_and_labels,
    model_splits,
)
from training.metrics import bootstrap_rows, class_f1, paired_bootstrap, with_intervals
from training.quality_table import metrics_table
from training.result import Evaluation, Gate, ModelResult

PRIMARY_METRIC = "model.macro_f1_hindsight"
BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 11


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


def _fit(
    s: ModelSplits, n_classes: int, *, params: dict[str, Any] | None, client: Any | None
) -> Any:
    """The phase model fitted on the training split, early stopping on the validation split."""
    return phase_model.fit(
        s.x_train,
        s.y_train,
        s.x_valid,
        s.y_valid,
        n_classes=n_classes,
        params=params,
        client=client,
    )


def _true_phase_codes(
    truth: SimulationTruth, rows: pd.DataFrame, class_names: list[str]
) -> np.ndarray:
    """True phase at each row's as-of as class codes (-1 where the simulator has none)."""
    phase = true_phases(truth, rows["account_id"].to_numpy(), rows["as_of"].reset_index(drop=True))
    return pd.Categorical(phase.astype(object), categories=class_names).codes.astype(np.int64)


def feature_importance_csv(estimator: Any, used: list[str]) -> str:
    """CSV text ``feature,gain``: the fitted booster's gain per model column, largest first."""
    importance = pd.DataFrame(
        {
            "feature": used,
            "gain": estimator.booster_.feature_importance(importance_type="gain"),
        }
    ).sort_values("gain", ascending=False)
    return importance.to_csv(index=False)


def _predictions(proba: np.ndarray, s: ModelSplits, names: list[str]) -> dict[str, np.ndarray]:
    """Predicted phase codes on the test rows per predictor: the model (most probable class)
    and each baseline; the CRM-last-record baseline only when the rows carry ``crm_phase``."""
    majority = majority_phase(s.y_train, len(names))
    predictions = {
        "model": np.argmax(proba, axis=1),
        "baseline_majority": predict_majority(len(s.test), majority),
        "baseline_last_content": predict_last_content(
            s.test[LAST_CONTENT_PHASE_COLUMN].to_numpy(), majority
        ),
    }
    if "crm_phase" in s.test.columns:
        predictions["baseline_crm_last"] = predict_crm_last(s.test["crm_phase"], names, majority)
    return predictions


def phase_gate(estimator: Any, ts: TrainingSet, y_train: np.ndarray) -> Gate:
    """The phase model's champion gate: its macro-F1 vs the hindsight label on the
    validation split against the strongest baseline's there (the CRM's last record carried
    forward, the last-touchpoint-content rule or the majority class, each as in
    :func:`_predictions`), each with its 95 % interval over resampled accounts."""
    names = list(ts.class_names)
    rows = ts.split.valid
    x_valid, y_valid = features_and_labels(ts, rows)
    proba = phase_model.predict_proba(estimator, x_valid, n_classes=len(names))
    majority = majority_phase(y_train, len(names))
    predictions = {
        "model": np.argmax(proba, axis=1),
        "majority": predict_majority(len(rows), majority),
        "last_content": predict_last_content(rows[LAST_CONTENT_PHASE_COLUMN].to_numpy(), majority),
    }
    if "crm_phase" in rows.columns:
        predictions["crm_last"] = predict_crm_last(rows["crm_phase"], names, majority)

    def macro_f1(y_pred: np.ndarray) -> float:
        return phase_metrics(y_valid, y_pred, names, "hindsight")["macro_f1_hindsight"]

    scores = {who: macro_f1(y_pred) for who, y_pred in predictions.items() if who != "model"}
    strongest = max(scores, key=lambda who: scores[who])
    chosen = {"model": predictions["model"], strongest: predictions[strongest]}
    ci = phase_intervals(
        y_valid, chosen, names, "hindsight", peer=strongest, groups=rows["account_id"]
    )
    key = "macro_f1_hindsight"
    return Gate(
        metric=key,
        model=macro_f1(predictions["model"]),
        baseline=strongest,
        baseline_value=scores[strongest],
        model_ci=(ci[f"model.{key}_ci_low"], ci[f"model.{key}_ci_high"]),
        baseline_ci=(ci[f"{strongest}.{key}_ci_low"], ci[f"{strongest}.{key}_ci_high"]),
        difference_ci=(
            ci[f"model_minus_peer.{key}_ci_low"],
            ci[f"model_minus_peer.{key}_ci_high"],
        ),
    )


def _scored(
    y_true: np.ndarray, predictions: dict[str, np.ndarray], names: list[str], suffix: str
) -> dict[str, float]:
    """``phase_metrics`` of every predictor against ``y_true``, keyed ``<who>.<metric>``."""
    metrics: dict[str, float] = {}
    for who, y_pred in predictions.items():
        found = phase_metrics(y_true, y_pred, names, suffix)
        metrics.update({f"{who}.{k}": v for k, v in found.items()})
    return metrics


def phase_intervals(
    y_true: np.ndarray,
    predictions: dict[str, np.ndarray],
    names: list[str],
    suffix: str,
    *,
    peer: str,
    groups: pd.Series | np.ndarray,
) -> dict[str, float]:
    """95 % bootstrap intervals (``_ci_low``/``_ci_high``) of every metric of
    :func:`phase_metrics` for each predictor, and of the model's macro-F1 minus ``peer``'s
    (``model_minus_peer.macro_f1_<suffix>``), from the same resampled accounts (``groups``:
    each row's account; an account has a row at each as-of date)."""

    def statistics(rows: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for who, y_pred in predictions.items():
            accuracy, f1, present = class_f1(y_true[rows], y_pred[rows], len(names))
            out[f"{who}.accuracy_{suffix}"] = accuracy
            out[f"{who}.macro_f1_{suffix}"] = float(f1[present].mean())
            for code in np.nonzero(present)[0]:
                out[f"{who}.f1_{names[code]}_{suffix}"] = float(f1[code])
        if peer in predictions:
            out[f"model_minus_peer.macro_f1_{suffix}"] = (
                out[f"model.macro_f1_{suffix}"] - out[f"{peer}.macro_f1_{suffix}"]
            )
        return out

    rng = np.random.default_rng(BOOTSTRAP_SEED)
    found = bootstrap_rows(
        len(y_true),
        statistics,
        rng=rng,
        n_resamples=BOOTSTRAP_RESAMPLES,
        groups=np.asarray(groups).astype(str),
    )
    return with_intervals(found)


def _truth_metrics(
    truth: SimulationTruth, s: ModelSplits, predictions: dict[str, np.ndarray], names: list[str]
) -> tuple[dict[str, float], str]:
    """Metrics vs the true phase at as-of (``<who>.*_true``, with intervals; the oracle is
    the true phase itself, ``hindsight_label`` the training label), the true phase scored
    against the CRM label and the hindsight label (``true_phase.*_crm``,
    ``true_phase.*_hindsight``: references, not ceilings, since those labels lag and err in
    ways a model can learn), on the test rows where the simulator knows the phase; and the
    model's confusion matrix vs the true phase as CSV text."""
    y_true = _true_phase_codes(truth, s.test, names)
    known = y_true >= 0
    kept = {who: y_pred[known] for who, y_pred in predictions.items()}
    kept["hindsight_label"] = s.y_test[known]
    kept["oracle"] = y_true[known]
    metrics = _scored(y_true[known], kept, names, "true")
    groups = s.test["account_id"].to_numpy()[known]
    metrics.update(
        phase_intervals(y_true[known], kept, names, "true", peer=_peer(kept), groups=groups)
    )
    crm = s.test[CRM_LABEL_COLUMN].to_numpy(dtype=np.int64)[known]
    for suffix, label in (("crm", crm), ("hindsight", s.y_test[known])):
        reference = phase_metrics(label, y_true[known], names, suffix)
        metrics.update({f"true_phase.{k}": v for k, v in reference.items()})
    return metrics, confusion_csv(y_true[known], kept["model"], names)


def _peer(predictions: dict[str, np.ndarray]) -> str:
    """The strongest simple baseline the phase model is put beside: the CRM's last record
    carried forward when the rows carry it, else the last-touchpoint-content rule."""
    return "baseline_crm_last" if "baseline_crm_last" in predictions else "baseline_last_content"


def _run_params(
    params: dict[str, Any] | None, estimator: Any, ts: TrainingSet, s: ModelSplits, used: list[str]
) -> dict[str, Any]:
    """The run's params: the model's merged params, then the iteration early stopping kept,
    how far the labels look past as-of (the split's purge) and the row and feature counts."""
    merged = phase_model.merged_params(params)
    return {
        **merged,
        "best_iteration": int(estimator.best_iteration_ or merged["n_estimators"]),
        "label_horizon_days": ts.horizon_days,
        "n_train_rows": len(s.x_train),
        "n_valid_rows": len(s.x_valid),
        "n_test_rows": len(s.x_test),
        "n_features": len(used),
    }


def train_phase(
    ts: TrainingSet,
    *,
    params: dict[str, Any] | None = None,
    truth: SimulationTruth | None = None,
    taxonomy: Taxonomy | None = None,
    client: Any | None = None,
) -> ModelResult:
    """The result of fitting the phase model on ``ts``'s training split (early stopping on
    validation) and evaluating it and its baselines on the test split.

    Metrics ``<who>.<metric>_hindsight`` compare with the hindsight label (the training
    label: the phase at as-of as the CRM history read later tells it), ``<who>.<metric>_crm``
    with the CRM label at as-of; with ``truth``, ``<who>.<metric>_true`` compare with the
    simulator's true phase at as-of (``oracle``: the true phase itself; ``hindsight_label``:
    the training label) and ``true_phase.*_crm`` / ``_hindsight`` score the true phase as a
    predictor of either label (references, not ceilings). Every metric has a 95 % bootstrap
    interval over resampled accounts (``_ci_low``/``_ci_high``), and so has the model's
    macro-F1 minus the CRM's last record's (``model_minus_peer``). Baselines: majority
    class, last-touchpoint-content rule, the CRM's last record carried forward. The primary
    metric is ``model.macro_f1_hindsight`` (promotion needs no truth, and the CRM label at
    as-of would reward copying the CRM). ``taxonomy`` is not needed (class names travel with
    ``ts``) and is accepted for a uniform signature.
    """
    del taxonomy
    names = list(ts.class_names)
    if not names:
        raise PhaseTrainingError(f"training set {ts.name!r} has no class_names; expected phases")
    s = model_splits(ts)
    if len(np.unique(s.y_test)) < 2:
        raise PhaseTrainingError(
            f"the test split of training set {ts.name!r} holds one phase class only "
            f"({names[int(s.y_test[0])]!r}); expected at least 2 to evaluate on"
        )
    estimator = _fit(s, len(names), params=params, client=client)
    # The columns the fitted model takes (fit may select a subset of ts.feature_columns).
    used = model_columns(estimator)
    proba = phase_model.predict_proba(estimator, s.x_test, n_classes=len(names))
    predictions = _predictions(proba, s, names)
    accounts = s.test["account_id"].to_numpy()
    crm = s.test[CRM_LABEL_COLUMN].to_numpy(dtype=np.int64)
    metrics: dict[str, float] = {}
    for suffix, label in (("hindsight", s.y_test), ("crm", crm)):
        metrics.update(_scored(label, predictions, names, suffix))
        metrics.update(
            phase_intervals(
                label, predictions, names, suffix, peer=_peer(predictions), groups=accounts
            )
        )
    artifacts = {
        PHASE_CONFUSION_ARTIFACT: confusion_csv(crm, predictions["model"], names),
        "confusion_matrix_hindsight.csv": confusion_csv(s.y_test, predictions["model"], names),
    }
    if truth is not None:
        found, artifacts["confusion_matrix_true.csv"] = _truth_metrics(truth, s, predictions, names)
        metrics.update(found)
    backtest = backtest_phase(estimator, ts)
    if not backtest.empty:
        artifacts["backtest_phase.csv"] = backtest.to_csv(index=False)
        metrics.update(_backtest_metrics(backtest))
    artifacts["feature_importance.csv"] = feature_importance_csv(estimator, used)
    return ModelResult(
        name="phase",
        estimator=estimator,
        feature_columns=used,
        params=_run_params(params, estimator, ts, s, used),
        metrics=metrics,
        primary_metric=PRIMARY_METRIC,
        report_markdown=_report(metrics, backtest, n_test=len(s.test)),
        evaluation=Evaluation(y_true=s.y_test, y_score=proba, class_names=names),
        input_example=s.x_test[used].head(5).reset_index(drop=True),
        training_set_fingerprint=ts.fingerprint,
        as_of_dates=ts.as_of_dates,
        extra_artifacts=artifacts,
        gate=phase_gate(estimator, ts, s.y_train),
    )


def score_phase(estimator: Any, ts: TrainingSet) -> float:
    """Macro-F1 vs the hindsight label on ``ts``'s test split (the primary metric promotion
    compares; greater is better)."""
    x_test, y_test = features_and_labels(ts, ts.split.test)
    if len(x_test) == 0:
        raise PhaseTrainingError(f"training set {ts.name!r} has no test rows to score")
    proba = phase_model.predict_proba(estimator, x_test, n_classes=len(ts.class_names))
    found = phase_metrics(y_test, np.argmax(proba, axis=1), ts.class_names, "hindsight")
    return found["macro_f1_hindsight"]


def paired_phase(challenger: Any, champion: Any, ts: TrainingSet) -> tuple[float, float, float]:
    """Macro-F1 vs the hindsight label of ``challenger`` minus ``champion``'s on ``ts``'s
    test split, with its 95 % interval over resampled accounts (promotion's bar)."""
    x_test, y_test = features_and_labels(ts, ts.split.test)
    if len(x_test) == 0:
        raise PhaseTrainingError(f"training set {ts.name!r} has no test rows to score")
    names = list(ts.class_names)

    def picks(estimator: Any) -> np.ndarray:
        return np.argmax(phase_model.predict_proba(estimator, x_test, n_classes=len(names)), 1)

    def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
        found = phase_metrics(y.astype(np.int64), pred.astype(np.int64), names, "hindsight")
        return found["macro_f1_hindsight"]

    return paired_bootstrap(
        y_test,
        picks(challenger),
        picks(champion),
        macro_f1,
        groups=ts.split.test["account_id"].astype(str).to_numpy(),
        seed=BOOTSTRAP_SEED,
        n_resamples=BOOTSTRAP_RESAMPLES,
    )


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


def _backtest_metrics(backtest: pd.DataFrame) -> dict[str, float]:
    """The backtest's purchase share per predicted phase, keyed
    ``model.backtest_purchase_rate_<phase>``."""
    return {
        f"model.backtest_purchase_rate_{name}": float(rate)
        for name, rate in zip(
            backtest["predicted_phase"], backtest["purchase_rate"].to_numpy(), strict=True
        )
    }


def _report(metrics: dict[str, float], backtest: pd.DataFrame, *, n_test: int) -> str:
    """The run's Markdown report: the metrics table, then the backtest table when there is
    one."""
    title = f"phase model ({n_test} test rows; hindsight label, CRM label and true phase at as-of)"
    report = metrics_table(metrics, title)
    if not backtest.empty:
        report += "\n" + _backtest_markdown(backtest)
    return report
