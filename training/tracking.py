"""MLflow logging: one run per trained model, with its metrics, plots, report and the model.

A thin shell around :class:`training.result.ModelResult`: nothing here trains or evaluates.
Each model has its own experiment (``nba-phase`` ...), and each logged model is registered
(``nba-phase`` ... in the registry); the first registered version becomes ``champion`` when
it beats its strongest baseline (its gate) or ``--force`` says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from features.pipeline import FEATURE_PIPELINE_VERSION
from models.contract import (
    CATEGORIES_METADATA,
    CHAMPION,
    OUTCOME_ARTIFACT,
    OUTCOME_KIND,
    OUTCOME_KIND_TAG,
    OUTCOME_NAME_TAG,
)
from models.fitting import fitted_categories, model_frame
from training.plots import (
    feature_importance,
    plot_calibration_curve,
    plot_confusion_matrix,
    plot_cumulative_gains,
    plot_feature_importance,
)
from training.result import Gate, ModelResult, registered_name

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
REPORT_ARTIFACT = "quality_report.md"
# Tag of a version made champion by --force although it lost its gate.
FORCED_TAG = "nba.forced"


@dataclass(frozen=True)
class LoggedModel:
    """Where a trained model went: its run, its registered name and version."""

    run_id: str
    registered_name: str
    version: str
    champion: bool
    gate: Gate | None = None
    forced: bool = False  # champion by --force although it lost its gate

    def format(self, metric: str, value: float) -> str:
        """Lines for ``nba train``: the version, whether it is champion, its primary
        ``metric``'s ``value`` and its gate, with the verdict (wins or LOSES)."""
        role = " (champion)" if self.champion else ""
        if self.forced:
            role = " (champion by --force, despite losing its gate)"
        elif self.gate is not None and not self.gate.passed and not self.champion:
            role = " (not champion: it loses to its baseline)"
        line = f"{self.registered_name} v{self.version}{role}: {metric}={value:.4f}"
        line += f"  run {self.run_id}"
        return line if self.gate is None else f"{line}\n  gate: {format_gate(self.gate)}"


def format_gate(gate: Gate) -> str:
    """``model 0.8100 [0.79, 0.83] vs baseline crm_last 0.8300 [0.81, 0.85] on the validation
    split's macro_f1_hindsight: LOSES`` (intervals where the gate has them)."""
    difference = f", difference {gate.difference_text}" if gate.paired else ""
    return (
        f"model {gate.model:.4f}{_interval_text(gate.model_ci)} vs baseline {gate.baseline} "
        f"{gate.baseline_value:.4f}{_interval_text(gate.baseline_ci)}{difference} on the "
        f"validation split's {gate.metric}: {gate.verdict}"
    )


def _interval_text(interval: tuple[float, float]) -> str:
    """`` [low, high]``, or nothing for a gate without an interval."""
    low, high = interval
    return f" [{low:.4f}, {high:.4f}]" if math.isfinite(low) and math.isfinite(high) else ""


def gate_tags(gate: Gate) -> dict[str, str]:
    """The version tags a gate is stored as (``nba report`` and promotion read them)."""
    return {
        "gate_metric": gate.metric,
        "gate_model": f"{gate.model:.6f}",
        "gate_baseline": gate.baseline,
        "gate_baseline_value": f"{gate.baseline_value:.6f}",
        "gate_passed": str(gate.passed).lower(),
        "gate_model_ci": f"{gate.model_ci[0]:.6f},{gate.model_ci[1]:.6f}",
        "gate_baseline_ci": f"{gate.baseline_ci[0]:.6f},{gate.baseline_ci[1]:.6f}",
        "gate_difference_ci": f"{gate.difference_ci[0]:.6f},{gate.difference_ci[1]:.6f}",
    }


def gate_from_tags(tags: Mapping[str, str]) -> Gate | None:
    """The gate stored on a version by :func:`gate_tags`; None when it has none (logged
    before gates, or a model without one)."""
    try:
        return Gate(
            metric=tags["gate_metric"],
            model=float(tags["gate_model"]),
            baseline=tags["gate_baseline"],
            baseline_value=float(tags["gate_baseline_value"]),
            model_ci=_interval_tag(tags.get("gate_model_ci")),
            baseline_ci=_interval_tag(tags.get("gate_baseline_ci")),
            difference_ci=_interval_tag(tags.get("gate_difference_ci")),
        )
    except (KeyError, ValueError):
        return None


def _interval_tag(tag: str | None) -> tuple[float, float]:
    """``low,high`` as two floats; NaNs for a gate stored before it had intervals."""
    if not tag:
        return float("nan"), float("nan")
    low, high = tag.split(",")
    return float(low), float(high)


def configure_tracking(tracking_uri: str | None) -> str:
    """Point MLflow's tracking and registry at ``tracking_uri`` (default: a local SQLite
    file, ``mlflow.db`` in the working directory). Returns the URI used."""
    uri = tracking_uri or DEFAULT_TRACKING_URI
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def experiment_name(result: ModelResult) -> str:
    return registered_name(result.name)


def log_result(
    result: ModelResult,
    *,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    artifact_root: Path | None = None,
    force: bool = False,
) -> LoggedModel:
    """Log ``result`` as one MLflow run and register its model; returns where it went.

    Assumes :func:`configure_tracking` was called. The first version of a registered model
    becomes ``champion`` if it passes its gate (beats its strongest baseline on the
    validation split; a result without a gate passes), or with ``force`` (tagged
    ``nba.forced=true``); later ones wait for ``nba promote``. The gate is stored on the
    version as tags (:func:`gate_tags`). ``parent_run_id`` (the run of
    an ``mlflow run .`` step) is linked as the parent, so the step's runs group under it.
    ``artifact_root`` places a new experiment's artifacts there instead of ``./mlruns``.
    """
    registered = registered_name(result.name)
    experiment = mlflow.get_experiment_by_name(registered)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else mlflow.create_experiment(
            registered,
            artifact_location=(artifact_root / registered).resolve().as_uri()
            if artifact_root is not None
            else None,
        )
    )
    # An explicit new run: inside `mlflow run`, start_run() alone would reuse the step's run.
    created = MlflowClient().create_run(
        experiment_id,
        run_name=run_name or f"{result.name}-train",
        tags={"mlflow.parentRunId": parent_run_id} if parent_run_id else None,
    )
    with mlflow.start_run(run_id=created.info.run_id) as run:
        mlflow.log_params(_flat_params(result.params))
        mlflow.set_tags(
            {
                "nba.model": result.name,
                "nba.feature_pipeline_version": FEATURE_PIPELINE_VERSION,
                "nba.training_set_fingerprint": result.training_set_fingerprint,
                "nba.primary_metric": result.primary_metric,
                **{
                    key: value
                    for split, dates in result.as_of_dates.items()
                    for key, value in as_of_tags(split, dates).items()
                },
            }
        )
        mlflow.log_param("feature_pipeline_version", FEATURE_PIPELINE_VERSION)
        mlflow.log_param("training_set_fingerprint", result.training_set_fingerprint)
        mlflow.log_metrics({k: float(v) for k, v in result.metrics.items() if _finite(v)})
        mlflow.log_text(result.report_markdown, REPORT_ARTIFACT)
        for file_name, text in result.extra_artifacts.items():
            mlflow.log_text(text, file_name)
        for file_name, figure in _figures(result).items():
            mlflow.log_figure(figure, f"plots/{file_name}")
        # The example as the model takes it: numbers only (categories as their codes, see
        # models.fitting), all float64 so the signature allows missing values everywhere.
        example = model_frame(result.estimator, result.input_example).astype(np.float64)
        signature = infer_signature(example, np.asarray(result.estimator.predict_proba(example)))
        info = mlflow.lightgbm.log_model(
            result.estimator,
            name="model",
            signature=signature,
            input_example=example,
            metadata={CATEGORIES_METADATA: fitted_categories(result.estimator)},
            registered_model_name=registered,
            # Named, not inferred: inference re-imports the model in a subprocess (~5 s).
            pip_requirements=model_requirements(),
        )
    version = str(info.registered_model_version)
    client = MlflowClient()
    primary = result.metrics.get(result.primary_metric, float("nan"))
    client.set_model_version_tag(registered, version, "primary_metric", result.primary_metric)
    client.set_model_version_tag(registered, version, "primary_value", f"{primary:.6f}")
    if OUTCOME_ARTIFACT in result.extra_artifacts:  # a binary outcome model (models.outcomes)
        client.set_model_version_tag(registered, version, OUTCOME_KIND_TAG, OUTCOME_KIND)
        client.set_model_version_tag(registered, version, OUTCOME_NAME_TAG, result.name)
    gate = result.gate
    for key, value in (gate_tags(gate) if gate is not None else {}).items():
        client.set_model_version_tag(registered, version, key, value)
    passed = gate is None or gate.passed
    champion = champion_version(registered) is None and (passed or force)
    forced = champion and not passed
    if forced:
        # An override is recorded where it acts: on the version and on its run.
        client.set_model_version_tag(registered, version, FORCED_TAG, "true")
        client.set_tag(run.info.run_id, FORCED_TAG, "true")
    if champion:
        client.set_registered_model_alias(registered, CHAMPION, version)
    return LoggedModel(run.info.run_id, registered, version, champion, gate, forced)


# MLflow caps tag values (5000 characters in its SQL stores).
_MAX_TAG_CHARS = 5000


def as_of_tags(split: str, dates: list[str]) -> dict[str, str]:
    """The ``nba.as_of.<split>`` tag: the split's ISO as-of dates joined by commas, or, when
    too many for a tag (anchored moments), ``first..last`` with the count in
    ``nba.as_of.<split>.count``."""
    joined = ",".join(dates)
    if len(joined) <= _MAX_TAG_CHARS:
        return {f"nba.as_of.{split}": joined}
    return {
        f"nba.as_of.{split}": f"{dates[0]}..{dates[-1]}",
        f"nba.as_of.{split}.count": str(len(dates)),
    }


def model_requirements() -> list[str]:
    """The pip requirements a logged model needs to load and predict, at our versions."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("lightgbm", "scikit-learn", "pandas", "numpy")]


def champion_version(registered_name: str) -> str | None:
    """The version the ``champion`` alias points to, or None (no alias or no model yet)."""
    try:
        return str(MlflowClient().get_model_version_by_alias(registered_name, CHAMPION).version)
    except MlflowException:
        return None


def _finite(value: object) -> bool:
    return isinstance(value, int | float | np.floating | np.integer) and math.isfinite(float(value))


def _flat_params(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat_params(value, f"{name}."))
        else:
            # MLflow caps parameter values at 6000 characters
            flat[name] = str(value)[:6000]
    return flat


def _figures(result: ModelResult) -> dict[str, Any]:
    ev = result.evaluation
    figures: dict[str, Any] = {
        "feature_importance.png": plot_feature_importance(feature_importance(result.estimator))
    }
    if ev.y_score.ndim == 2:  # multiclass: phase
        names = ev.class_names or [str(i) for i in range(ev.y_score.shape[1])]
        predicted = np.asarray(names)[ev.y_score.argmax(axis=1)]
        actual = np.asarray(names)[ev.y_true.astype(int)]
        figures["confusion_matrix.png"] = plot_confusion_matrix(actual, predicted, names)
    else:
        figures["calibration.png"] = plot_calibration_curve(ev.y_true, ev.y_score)
        figures["gains.png"] = plot_cumulative_gains(ev.y_true, ev.y_score)
    return figures
