"""Training end to end: data directory -> features on the as-of grid -> three models.

The as-of grid's features are computed once and shared by the three training sets. Each
model's code lives in its own module (``training.phase``, ``training.churn``,
``training.next_content``); this module only wires them and times the steps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.attributes import (
    NO_ATTRIBUTES,
    NO_FITTED_ATTRIBUTES,
    AttributeDeclaration,
    FittedAttributes,
)
from features.errors import InvalidInputError
from features.load import read_data_dir
from features.mapping import ColumnMapping
from features.pipeline import Engine, build_features
from features.pipeline.attributes import fit_attributes
from features.schema import JourneyData
from features.simulate.truth import SimulationTruth, load_truth
from features.taxonomy import Taxonomy
from models.contract import ATTRIBUTES_ARTIFACT
from training.datasets import TrainingSet, as_of_grid, build_churn_set, build_phase_set
from training.next_action import has_control
from training.result import MODEL_NAMES, ModelName, ModelResult
from training.reward import Reward


class TrainingError(InvalidInputError):
    """Training cannot run as asked; the message says what to change."""


@dataclass
class Prepared:
    """Everything the three models train from: data, optional truth, grid and features (with
    those of the declared custom ``attributes``, whose levels are fixed here)."""

    data: JourneyData
    truth: SimulationTruth | None
    as_of: list[pd.Timestamp]
    features: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES
    # What the next-content model is rewarded for where the data have a "no action" control.
    reward: Reward = field(default_factory=Reward)


@dataclass(frozen=True)
class ModelSteps:
    """How one model's training set is built, how it is trained and how it is scored."""

    build: Callable[..., TrainingSet]
    train: Callable[..., ModelResult]
    score: Callable[[Any, TrainingSet], float]
    primary_metric: str  # the metric `score` computes and promotion compares
    # Whether the model takes the custom-attribute features (the account-level models do;
    # next-content's account inputs are a fixed list serving keeps per catalog).
    uses_attributes: bool = True
    # Whether the set takes the prepared reward (next-content: its next-action form).
    uses_reward: bool = False

    def build_set(self, prepared: Prepared, taxonomy: Taxonomy) -> TrainingSet:
        """The model's training set from the prepared features."""
        if self.uses_reward:
            return self.build(
                prepared.data,
                taxonomy,
                prepared.features,
                reward=prepared.reward,
                attributes=prepared.attributes,
            )
        if self.uses_attributes:
            return self.build(
                prepared.data, taxonomy, prepared.features, attributes=prepared.attributes
            )
        return self.build(prepared.data, taxonomy, prepared.features)


def model_steps(model: ModelName) -> ModelSteps:
    """The build/train/score functions of a model (imported lazily: LightGBM is heavy)."""
    if model == "phase":
        from training.phase import PRIMARY_METRIC, score_phase, train_phase

        return ModelSteps(build_phase_set, train_phase, score_phase, PRIMARY_METRIC)
    if model == "churn":
        from training.churn import PRIMARY_METRIC, score_churn, train_churn

        return ModelSteps(build_churn_set, train_churn, score_churn, PRIMARY_METRIC)
    if model == "next-content":
        from training import next_content, uplift

        # With a "no action" control in the data, uplift's next-action set and training.
        return ModelSteps(
            uplift.build_next_set,
            uplift.train_next,
            uplift.score_next,
            next_content.PRIMARY_METRIC,
            uses_attributes=False,
            uses_reward=True,
        )
    raise TrainingError(f"unknown model {model!r}; expected one of {', '.join(MODEL_NAMES)}")


def parse_models(name: str) -> list[ModelName]:
    """``all`` or one model name -> the models to train."""
    if name == "all":
        return list(MODEL_NAMES)
    if name not in MODEL_NAMES:
        raise TrainingError(f"unknown model {name!r}; expected all, {', '.join(MODEL_NAMES)}")
    return [name]


def parse_params(values: Sequence[str], models: Sequence[ModelName]) -> dict[str, dict[str, Any]]:
    """``MODEL.KEY=VALUE`` flags (``KEY=VALUE`` applies to every model) -> params per model.

    Values are read as int, float, true/false, or kept as text.
    """
    params: dict[str, dict[str, Any]] = {m: {} for m in models}
    for raw in values:
        key, sep, text = raw.partition("=")
        if not sep or not key:
            raise TrainingError(f"--param {raw!r}: expected MODEL.KEY=VALUE or KEY=VALUE")
        model, dot, name = key.partition(".")
        targets = [model] if dot and model in MODEL_NAMES else list(models)
        name = name if dot and model in MODEL_NAMES else key
        if dot and model in MODEL_NAMES and model not in models:
            raise TrainingError(f"--param {raw!r}: model {model!r} is not being trained")
        for target in targets:
            params[target][name] = _value(text)
    return params


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def prepare(
    data_dir: Path,
    taxonomy: Taxonomy,
    *,
    mapping: ColumnMapping | None = None,
    n_dates: int = 12,
    engine: Engine = "pandas",
    scheduler: str | None = None,
    attributes: AttributeDeclaration = NO_ATTRIBUTES,
    models: Sequence[ModelName] = MODEL_NAMES,
    reward: Reward | None = None,
) -> Prepared:
    """Read and validate ``data_dir``, load the simulator's truth if it is there, and build
    features for the monthly as-of grid (``training.datasets.as_of_grid``). Custom
    attributes (the mapping's or ``attributes``) get their levels from the events before the
    grid's last date. No grid is built when only next-content is trained on data with a
    "no action" control (its rows are anchored on the decisions instead)."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    data = read_data_dir(data_dir, taxonomy, mapping=mapping, attributes=attributes)
    truth = load_truth(data_dir) if (data_dir / "truth").is_dir() else None
    seconds["load_s"] = time.perf_counter() - started
    chosen = reward if reward is not None else Reward()
    declared = mapping.attributes if mapping is not None and mapping.attributes else attributes
    if list(models) == ["next-content"] and has_control(data):
        # Levels from the events before the last decision day (its rows' as-of dates).
        last_day = data.exposures["ts"].max().floor("D")
        fitted = fit_attributes(data, declared, before=last_day)
        no_grid = pd.DataFrame(
            {"account_id": pd.Series(dtype=str), "as_of": pd.Series(dtype="datetime64[ns, UTC]")}
        )
        return Prepared(data, truth, [], no_grid, seconds, fitted, chosen)
    started = time.perf_counter()
    dates = as_of_grid(data, n_dates)
    fitted = fit_attributes(data, declared, before=dates[-1])
    features = build_features(
        data, dates, taxonomy, engine=engine, scheduler=scheduler, attributes=fitted
    )
    seconds["features_s"] = time.perf_counter() - started
    return Prepared(data, truth, dates, features, seconds, fitted, chosen)


def build_set(model: ModelName, prepared: Prepared, taxonomy: Taxonomy) -> TrainingSet:
    """One model's point-in-time training set from the prepared features."""
    return model_steps(model).build_set(prepared, taxonomy)


def train_models(
    models: Sequence[ModelName],
    prepared: Prepared,
    taxonomy: Taxonomy,
    *,
    params: dict[str, dict[str, Any]] | None = None,
    on_result: Callable[[ModelResult], object] | None = None,
    client: Any | None = None,
    on_skip: Callable[[ModelName, str], object] | None = None,
) -> list[ModelResult]:
    """Train each model on its training set; ``on_result`` (e.g. MLflow logging) runs as
    soon as a model is done, so a failure later does not lose earlier models. ``client``
    (a Dask client) grows the trees with ``lightgbm.dask`` on its cluster.

    With ``on_skip``, a model the data cannot support (its set or training raises an
    :class:`InvalidInputError`, e.g. no stages for phase, no exposures for next content) is
    skipped: ``on_skip(model, why)`` runs and the others train. Raises
    :class:`TrainingError` when every model was skipped.
    """
    results = []
    skipped: dict[str, str] = {}
    for model in models:
        if on_skip is None:
            results.append(_train_one(model, prepared, taxonomy, params, on_result, client))
            continue
        try:
            results.append(_train_one(model, prepared, taxonomy, params, on_result, client))
        except InvalidInputError as exc:
            skipped[model] = exc.details
            on_skip(model, exc.details)
    if skipped and not results:
        raise TrainingError(
            "no model can be trained on these data: "
            + "; ".join(f"{m}: {why}" for m, why in skipped.items())
        )
    return results


def _train_one(
    model: ModelName,
    prepared: Prepared,
    taxonomy: Taxonomy,
    params: dict[str, dict[str, Any]] | None,
    on_result: Callable[[ModelResult], object] | None,
    client: Any | None,
) -> ModelResult:
    """Build ``model``'s training set, train it and hand the result to ``on_result``."""
    steps = model_steps(model)
    started = time.perf_counter()
    training_set = steps.build_set(prepared, taxonomy)
    prepared.seconds[f"{model}_set_s"] = time.perf_counter() - started
    started = time.perf_counter()
    kwargs: dict[str, Any] = {
        "params": (params or {}).get(model) or None,
        "truth": prepared.truth,
        "taxonomy": taxonomy,
        "client": client,
    }
    if model == "next-content":
        kwargs["content"] = prepared.data.content
    result = steps.train(training_set, **kwargs)
    # Every run carries the attribute levels its features were built with: serving
    # encodes with exactly these (models.contract).
    result.extra_artifacts[ATTRIBUTES_ARTIFACT] = json.dumps(prepared.attributes.to_dict())
    prepared.seconds[f"{model}_train_s"] = time.perf_counter() - started
    if on_result is not None:
        started = time.perf_counter()
        on_result(result)
        prepared.seconds[f"{model}_log_s"] = time.perf_counter() - started
    return result


def scorer_on_test_split(
    model: ModelName, prepared: Prepared, taxonomy: Taxonomy
) -> Callable[[Any], float]:
    """A function scoring any estimator of ``model`` on the same test split (promotion)."""
    steps = model_steps(model)
    training_set = steps.build_set(prepared, taxonomy)
    return lambda estimator: steps.score(estimator, training_set)
