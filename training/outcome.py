"""Train and evaluate a binary outcome model (churn, repurchase, conversion, dropout, ...)
against its baselines, and gate it on its peer.

``train_outcome`` fits ``models.churn`` (the binary LightGBM model every outcome uses) on an
outcome's :class:`~training.datasets.TrainingSet`, calibrates it on the validation split
(Platt scaling, kept only when it lowers the validation calibration error) and returns a
:class:`~training.result.ModelResult` with ROC-AUC, PR-AUC, Brier score, expected
calibration error and top-decile lift on the test split, 95 % bootstrap intervals of the
AUCs, beside three logistic regressions fitted on the training split (recency-frequency-
monetary, the model's own inputs, recency only) and, for the simulator's churn, two
references from its truth: ``oracle``, the Monte Carlo probability of churning within the
horizon given the latent state (``features.simulate.oracle``; a true upper reference, present
when the simulation computed it for the test dates), and ``held_hazard``, the weekly hazard
of the as-of week held for the horizon (not a bound: the hazard changes predictably and it
under-predicts). The gate compares the model with the outcome's peer on the validation split.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from features.errors import InvalidInputError
from features.simulate.truth import (
    SimulationTruth,
    oracle_churn_probability,
    true_churn_probability,
)
from models import churn as binary_model
from models.contract import HORIZON_DAYS_PARAM, OUTCOME_ARTIFACT
from models.fitting import model_columns
from models.outcomes import Outcome
from training.baselines import RFM_COLUMNS, FeatureLogistic, RecencyLogistic
from training.datasets import ModelSplits, TrainingSet, features_and_labels, model_splits
from training.metrics import (
    binary_scores,
    bootstrap_interval,
    bootstrap_rows,
    expected_calibration_error,
    lift_at,
    paired_bootstrap,
    roc_auc,
    with_intervals,
)
from training.phase import feature_importance_csv
from training.plots import calibration_table
from training.quality_table import metrics_table
from training.result import Evaluation, Gate, ModelResult

PRIMARY_METRIC = "model.roc_auc"
GATE_METRIC = "roc_auc"
BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 11


class OutcomeTrainingError(InvalidInputError):
    """A binary outcome model cannot be trained or evaluated on this training set."""


# The name the churn model's callers know it by.
ChurnTrainingError = OutcomeTrainingError


def churn_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), Brier score, expected calibration error (10
    equal-count bins) and lift in the top decile of ``p`` for 0/1 outcomes ``y``. AUCs are
    NaN when ``y`` has one class only."""
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "lift_top_decile": lift_at(y, p, share=0.1),
        "positive_rate": float(y.mean()),
        "mean_predicted": float(p.mean()),
    }


def true_churn_for_rows(
    truth: SimulationTruth, rows: pd.DataFrame, horizon_days: int
) -> np.ndarray:
    """The simulator's weekly churn hazard of the as-of week held for the horizon, for each
    (account_id, as_of) row; 0 where the simulator has no customer hazard for the account at
    that date (it could not churn)."""
    dates = list(pd.DatetimeIndex(rows["as_of"].unique()))
    p = true_churn_probability(truth, dates, horizon_days=horizon_days)
    p = p.assign(account_id=p["account_id"].astype(str))
    p["as_of"] = pd.to_datetime(p["as_of"], utc=True).dt.as_unit("ns")
    keys = pd.DataFrame(
        {
            "account_id": rows["account_id"].astype(str).to_numpy(),
            "as_of": pd.to_datetime(rows["as_of"], utc=True).dt.as_unit("ns").to_numpy(),
        }
    )
    merged = keys.merge(p, on=["account_id", "as_of"], how="left", validate="many_to_one")
    return merged["p_churn"].fillna(0.0).to_numpy(dtype=np.float64)


def check_both_classes(ts: TrainingSet, s: ModelSplits) -> None:
    """Raise :class:`OutcomeTrainingError` when a split has no rows or one class only: early
    stopping, calibration and the AUCs need positives and negatives in each."""
    d = ts.split.dates
    for part, y, dates in (
        ("train", s.y_train, d.train),
        ("validation", s.y_valid, d.valid),
        ("test", s.y_test, d.test),
    ):
        if len(np.unique(y)) < 2:
            shown = f"{dates[0].date()} .. {dates[-1].date()}" if dates else "no dates"
            what = f"all {int(y[0])}" if len(y) else "empty"
            raise OutcomeTrainingError(
                f"outcome {ts.name!r}: the {part} split ({len(y)} rows, as-of {shown}) has "
                f"labels {what}; expected positives and negatives in every split (a longer "
                "span, a longer horizon_days or a wider population)"
            )


def _validation_calibration(estimator: Any, s: ModelSplits) -> dict[str, float]:
    """Platt-scaling params fitted on the validation split, or the identity when they do
    not lower the validation calibration error."""
    return validation_calibration(binary_model.predict_proba(estimator, s.x_valid), s.y_valid)


def validation_calibration(p_valid_raw: np.ndarray, y_valid: np.ndarray) -> dict[str, float]:
    """Platt-scaling params fitted on the validation rows' raw probabilities and labels, or
    the identity when they do not lower the validation calibration error."""
    # Kept only if it helps on validation: test is where it is judged.
    calibration = binary_model.fit_calibration(p_valid_raw, y_valid)
    if expected_calibration_error(
        y_valid, binary_model.calibrate(p_valid_raw, calibration)
    ) >= expected_calibration_error(y_valid, p_valid_raw):
        calibration = dict(binary_model.IDENTITY_CALIBRATION)
    return calibration


def fit_baselines(ts: TrainingSet, s: ModelSplits) -> dict[str, Any]:
    """The baselines fitted on the training split, by their metric prefix."""
    train = ts.split.train
    return {
        "baseline_rfm_logistic": FeatureLogistic(RFM_COLUMNS).fit(train, s.y_train),
        "baseline_logistic": FeatureLogistic(tuple(ts.feature_columns)).fit(train, s.y_train),
        "baseline_recency_logistic": RecencyLogistic().fit(train, s.y_train),
    }


def _scores(
    estimator: Any,
    calibration: dict[str, float],
    baselines: dict[str, Any],
    ts: TrainingSet,
    s: ModelSplits,
    truth: SimulationTruth | None,
) -> dict[str, np.ndarray]:
    """Probabilities of the test rows per scorer: the calibrated and the raw model, each
    baseline and, with ``truth``, the held hazard and (when the simulation computed it for
    the test dates) the churn oracle."""
    p_raw = binary_model.predict_proba(estimator, s.x_test)
    scores = {
        "model": binary_model.calibrate(p_raw, calibration),
        "model_uncalibrated": p_raw,
        **{who: b.predict_proba(s.test) for who, b in baselines.items()},
    }
    if truth is not None:
        oracle = oracle_churn_probability(truth, s.test, ts.horizon_days)
        if oracle is not None:
            scores["oracle"] = oracle
        scores["held_hazard"] = true_churn_for_rows(truth, s.test, ts.horizon_days)
    return scores


# The test metrics that get 95 % bootstrap intervals (training.metrics.binary_scores).
INTERVAL_METRICS = ("roc_auc", "pr_auc", "brier", "ece", "lift_top_decile")


def interval_metrics(
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    *,
    peer: str,
    strongest: str,
    groups: np.ndarray,
) -> dict[str, float]:
    """95 % bootstrap intervals (``<who>.<metric>_ci_low``/``_ci_high``) of every metric of
    ``INTERVAL_METRICS`` for every scorer of ``scores`` (the uncalibrated model included), and
    of the model's difference to ``peer`` (``model_minus_peer.<metric>_ci_*``) and to
    ``strongest`` (the gate's strongest baseline on validation, ``model_minus_strongest``),
    from the same resampled test rows: whole accounts (``groups``, one per row), since an
    account has a row at each test date. Resamples holding one class only are skipped."""
    chosen = {"model": scores["model"]}
    chosen.update({w: p for w, p in scores.items() if w != "model"})
    labels = np.asarray(y)

    def statistics(rows: np.ndarray) -> dict[str, float] | None:
        y_rows = labels[rows]
        if np.unique(y_rows).size < 2:
            return None
        point = {who: binary_scores(y_rows, p[rows]) for who, p in chosen.items()}
        out = {f"{who}.{m}": v for who, found in point.items() for m, v in found.items()}
        for who in list(chosen)[1:]:
            for m in INTERVAL_METRICS:
                # who minus the model; turned round below
                out[f"{who}-model.{m}"] = point[who][m] - point["model"][m]
        return out

    rng = np.random.default_rng(BOOTSTRAP_SEED)
    ci = bootstrap_rows(
        len(labels), statistics, rng=rng, n_resamples=BOOTSTRAP_RESAMPLES, groups=groups
    )
    nan = (float("nan"), float("nan"))
    out: dict[str, float] = {}
    for metric in INTERVAL_METRICS:
        for who in chosen:
            low, high = ci.get(f"{who}.{metric}", nan)
            out[f"{who}.{metric}_ci_low"], out[f"{who}.{metric}_ci_high"] = low, high
        for name, who in (("peer", peer), ("strongest", strongest)):
            low, high = ci.get(f"{who}-model.{metric}", nan)
            out[f"model_minus_{name}.{metric}_ci_low"] = -high
            out[f"model_minus_{name}.{metric}_ci_high"] = -low
    return out


def oracle_share(
    y: np.ndarray, scores: dict[str, np.ndarray], *, groups: np.ndarray
) -> dict[str, float]:
    """The model's ROC-AUC above chance as a share of the oracle's,
    ``model.oracle_auc_share`` = (model - 0.5) / (oracle - 0.5), with its 95 % bootstrap
    interval (both AUCs from the same resampled accounts, ``groups``); empty without an
    ``oracle`` score."""
    if "oracle" not in scores:
        return {}

    def statistics(rows: np.ndarray) -> dict[str, float] | None:
        if np.unique(y[rows]).size < 2:
            return None
        oracle = roc_auc(y[rows], scores["oracle"][rows]) - 0.5
        model = roc_auc(y[rows], scores["model"][rows]) - 0.5
        return {"model.oracle_auc_share": float(model / oracle) if oracle > 0 else float("nan")}

    out = statistics(np.arange(len(y))) or {}
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    found = bootstrap_rows(
        len(y), statistics, rng=rng, n_resamples=BOOTSTRAP_RESAMPLES, groups=groups
    )
    return {**out, **with_intervals(found)}


def outcome_gate(
    estimator: Any, baselines: dict[str, Any], ts: TrainingSet, s: ModelSplits
) -> Gate:
    """The model against its strongest baseline on the validation split, by ROC-AUC: every
    fitted baseline (the outcome's peer among them) is scored there and the best one is the
    bar, so a model never passes by beating only a weak one."""
    x_valid = ts.split.valid
    model = roc_auc_score(s.y_valid, binary_model.predict_proba(estimator, s.x_valid))
    values = {
        who: float(roc_auc_score(s.y_valid, baseline.predict_proba(x_valid)))
        for who, baseline in baselines.items()
    }
    strongest = max(values, key=lambda who: values[who])
    ci = bootstrap_interval(
        s.y_valid,
        {
            "model": binary_model.predict_proba(estimator, s.x_valid),
            strongest: baselines[strongest].predict_proba(x_valid),
        },
        roc_auc,
        rng=np.random.default_rng(BOOTSTRAP_SEED),
        n_resamples=BOOTSTRAP_RESAMPLES,
        groups=x_valid["account_id"].astype(str).to_numpy(),
    )
    return Gate(
        metric=GATE_METRIC,
        model=float(model),
        baseline=strongest,
        baseline_value=values[strongest],
        model_ci=ci["model"],
        baseline_ci=ci[strongest],
        # bootstrap_interval gives each scorer minus the first (the model): turned around
        difference_ci=(-ci[f"{strongest}-model"][1], -ci[f"{strongest}-model"][0]),
    )


def _artifacts(
    y_test: np.ndarray, p_model: np.ndarray, calibration: dict[str, float], importance: str
) -> dict[str, str]:
    """The run's extra artifacts: the model's calibration curve on test, the calibration
    params as JSON and the feature importance CSV."""
    curve = calibration_table(y_test, p_model, n_bins=10, strategy="quantile")
    return {
        "calibration_curve.csv": curve.to_csv(index=False),
        "calibration.json": json.dumps(calibration),
        "feature_importance.csv": importance,
    }


def _run_params(
    params: dict[str, Any] | None,
    calibration: dict[str, float],
    estimator: Any,
    ts: TrainingSet,
    s: ModelSplits,
) -> dict[str, Any]:
    """The run's params: the model's merged params, the calibration params, then the
    iteration early stopping kept, the horizon and the row and feature counts."""
    merged = binary_model.merged_params(params)
    return {
        **merged,
        **calibration,
        "best_iteration": int(estimator.best_iteration_ or merged["n_estimators"]),
        HORIZON_DAYS_PARAM: ts.horizon_days,
        "n_train_rows": len(s.x_train),
        "n_valid_rows": len(s.x_valid),
        "n_test_rows": len(s.x_test),
        "n_features": len(model_columns(estimator)),
    }


def train_outcome(
    ts: TrainingSet,
    outcome: Outcome,
    *,
    params: dict[str, Any] | None = None,
    truth: SimulationTruth | None = None,
    client: Any | None = None,
) -> ModelResult:
    """The result of fitting ``outcome``'s model on ``ts``'s training split (early stopping
    on validation), calibrating it on validation and evaluating model and baselines on the
    test split, with the gate against the outcome's peer on validation.

    ``truth`` (the simulator's) is used for the churn of customers only. ``ModelResult.params``
    holds ``calibration_a``/``calibration_b``: serving applies
    ``models.churn.calibrate(estimator.predict_proba(x)[:, 1], params)``. Raises
    :class:`OutcomeTrainingError` when a split lacks a class.
    """
    s = model_splits(ts)
    check_both_classes(ts, s)
    estimator = binary_model.fit(
        s.x_train, s.y_train, s.x_valid, s.y_valid, params=params, client=client
    )
    used = model_columns(estimator)
    calibration = _validation_calibration(estimator, s)
    baselines = fit_baselines(ts, s)
    is_sim_churn = outcome.positive.events == ("churn",) and outcome.population.kind == "customers"
    scores = _scores(estimator, calibration, baselines, ts, s, truth if is_sim_churn else None)
    peer = f"baseline_{outcome.peer}"
    metrics = {
        f"{who}.{k}": v for who, p in scores.items() for k, v in churn_metrics(s.y_test, p).items()
    }
    gate = outcome_gate(estimator, baselines, ts, s)
    accounts = s.test["account_id"].astype(str).to_numpy()
    metrics.update(
        interval_metrics(s.y_test, scores, peer=peer, strongest=gate.baseline, groups=accounts)
    )
    metrics.update(oracle_share(s.y_test, scores, groups=accounts))
    title = (
        f"{outcome.name} model ({len(s.test)} test rows, {int(s.y_test.sum())} positive within "
        f"{ts.horizon_days} days; scored {outcome.score_at.describe()}; peer {peer})"
    )
    artifacts = _artifacts(
        s.y_test, scores["model"], calibration, feature_importance_csv(estimator, used)
    )
    artifacts[OUTCOME_ARTIFACT] = outcome.to_json()
    run_params = {
        **_run_params(params, calibration, estimator, ts, s),
        "outcome": outcome.name,
        "score_at": outcome.score_at.describe(),
        "peer": peer,  # reports put the model beside it (model_minus_peer.* intervals)
        # The gate, for the reports: validation ROC-AUC of the model and of the strongest
        # baseline there.
        "gate_baseline": gate.baseline,
        "gate_model_valid_roc_auc": round(gate.model, 6),
        "gate_baseline_valid_roc_auc": round(gate.baseline_value, 6),
    }
    return ModelResult(
        name=outcome.name,
        estimator=estimator,
        feature_columns=used,
        params=run_params,
        metrics=metrics,
        primary_metric=PRIMARY_METRIC,
        report_markdown=metrics_table(metrics, title),
        evaluation=Evaluation(y_true=s.y_test, y_score=scores["model"]),
        input_example=s.x_test[used].head(5).reset_index(drop=True),
        training_set_fingerprint=ts.fingerprint,
        as_of_dates=ts.as_of_dates,
        extra_artifacts=artifacts,
        gate=gate,
    )


def paired_outcome(challenger: Any, champion: Any, ts: TrainingSet) -> tuple[float, float, float]:
    """ROC-AUC of ``challenger`` minus ``champion``'s on ``ts``'s test split, with its 95 %
    interval over resampled accounts (promotion's bar)."""
    x_test, y_test = _test_rows(ts)
    return paired_bootstrap(
        y_test,
        binary_model.predict_proba(challenger, x_test),
        binary_model.predict_proba(champion, x_test),
        roc_auc,
        groups=ts.split.test["account_id"].astype(str).to_numpy(),
        seed=BOOTSTRAP_SEED,
        n_resamples=BOOTSTRAP_RESAMPLES,
    )


def score_outcome(estimator: Any, ts: TrainingSet) -> float:
    """ROC-AUC on ``ts``'s test split (the primary metric promotion compares; calibration
    is monotone and does not change it)."""
    x_test, y_test = _test_rows(ts)
    return float(roc_auc_score(y_test, binary_model.predict_proba(estimator, x_test)))


def _test_rows(ts: TrainingSet) -> tuple[pd.DataFrame, np.ndarray]:
    """The test split's features and labels; an error unless both classes are there (what
    promotion's ROC-AUC needs)."""
    x_test, y_test = features_and_labels(ts, ts.split.test)
    if len(np.unique(y_test)) < 2:
        raise OutcomeTrainingError(
            f"training set {ts.name!r} test split has {len(y_test)} rows of one class; "
            "expected positives and negatives to score ROC-AUC"
        )
    return x_test, y_test
