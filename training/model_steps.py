"""Which models ``nba train`` can train and how each one's set is built, trained and scored
(:func:`model_steps`), and the CLI's model names and ``--param`` flags read into them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.errors import InvalidInputError
from features.taxonomy import Taxonomy
from models.outcomes import Outcome, load_outcomes
from training.datasets import TrainingSet, as_of_grid, build_phase_set
from training.next_action import has_control
from training.outcome_sets import build_outcome_set, outcome_moments
from training.result import MODEL_NAMES, ModelResult

if TYPE_CHECKING:
    from training.train import Prepared

# The models that are not binary outcomes.
OTHER_MODELS = ("phase", "next-content")


class TrainingError(InvalidInputError):
    """Training cannot run as asked; the message says what to change."""


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
    outcome: Outcome | None = None  # set for a binary outcome model
    # The label horizon of the model's monthly grid (None: the prepared grid's, churn's).
    grid_horizon_days: int | None = None
    # The challenger's primary metric minus the champion's on the same test split, with its
    # 95 % interval over resampled accounts (promotion's bar): (difference, low, high)
    paired: Callable[[Any, Any, TrainingSet], tuple[float, float, float]] | None = None

    def grid_dates(self, prepared: Prepared) -> list[pd.Timestamp]:
        """The monthly grid dates whose features the model's set will read; empty when it
        reads none or they cannot be told yet (its set then says why)."""
        try:
            if self.outcome is not None:
                if self.outcome.score_at.grid != "monthly":
                    return []
                return list(
                    outcome_moments(prepared.data, self.outcome, n_dates=prepared.n_dates).dates
                )
            if self.uses_reward:
                if self.grid_horizon_days is None or has_control(prepared.data):
                    return []
                return as_of_grid(
                    prepared.data, prepared.n_dates, horizon_days=self.grid_horizon_days
                )
        except InvalidInputError:
            return []
        return list(prepared.as_of)

    def build_set(self, prepared: Prepared, taxonomy: Taxonomy) -> TrainingSet:
        """The model's training set from the prepared features."""
        if self.outcome is not None:
            moments = outcome_moments(prepared.data, self.outcome, n_dates=prepared.n_dates)
            return build_outcome_set(
                prepared.data,
                taxonomy,
                prepared.features_at(moments),
                self.outcome,
                moments,
                attributes=prepared.attributes,
            )
        if self.uses_reward:
            # the grid's features only if the set reads them (see uplift.build_next_set)
            horizon = self.grid_horizon_days
            return self.build(
                prepared.data,
                taxonomy,
                lambda: prepared.features if horizon is None else prepared.grid_features(horizon),
                reward=prepared.reward,
                attributes=prepared.attributes,
            )
        if self.uses_attributes:
            return self.build(
                prepared.data, taxonomy, prepared.features, attributes=prepared.attributes
            )
        return self.build(prepared.data, taxonomy, prepared.features)


def model_steps(model: str, outcomes: Sequence[Outcome] | None = None) -> ModelSteps:
    """The build/train/score functions of a model or of a declared outcome (``outcomes``,
    default: the shipped outcomes file). Imported lazily: LightGBM is heavy."""
    if model == "phase":
        from training.phase import PRIMARY_METRIC, paired_phase, score_phase, train_phase

        return ModelSteps(
            build_phase_set, train_phase, score_phase, PRIMARY_METRIC, paired=paired_phase
        )
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
            # exposures up to the last week whose response window closed, not 90 days back
            grid_horizon_days=next_content.HORIZON_DAYS,
            paired=uplift.paired_next,
        )
    declared = {o.name: o for o in (load_outcomes() if outcomes is None else outcomes)}
    if model in declared:
        from training.outcome import (
            PRIMARY_METRIC,
            paired_outcome,
            score_outcome,
            train_outcome,
        )

        outcome = declared[model]

        def train(ts: TrainingSet, **kwargs: Any) -> ModelResult:
            return train_outcome(
                ts,
                outcome,
                params=kwargs.get("params"),
                truth=kwargs.get("truth"),
                client=kwargs.get("client"),
            )

        return ModelSteps(
            build_outcome_set,
            train,
            score_outcome,
            PRIMARY_METRIC,
            outcome=outcome,
            paired=paired_outcome,
        )
    raise TrainingError(
        f"unknown model {model!r}; expected one of {', '.join([*OTHER_MODELS, *declared])}"
    )


def parse_models(name: str, outcomes: Sequence[Outcome] | None = None) -> list[str]:
    """What ``nba train NAME`` trains: ``all`` (phase, every declared outcome, next-content),
    ``outcomes`` (every declared outcome), ``phase``, ``next-content``, or one outcome by its
    name or as ``outcome:NAME`` (``churn`` is the default outcome)."""
    declared = [o.name for o in (load_outcomes() if outcomes is None else outcomes)]
    if name == "all":
        return ["phase", *declared, "next-content"]
    if name == "outcomes":
        return declared
    bare = name.removeprefix("outcome:")
    if bare in declared or (name in OTHER_MODELS and name == bare):
        return [bare]
    raise TrainingError(
        f"unknown model {name!r}; expected all, outcomes, phase, next-content or a declared "
        f"outcome ({', '.join(declared) or 'none declared'})"
    )


def parse_params(values: Sequence[str], models: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``MODEL.KEY=VALUE`` flags (``KEY=VALUE`` applies to every model) -> params per model.

    Values are read as int, float, true/false, or kept as text.
    """
    known = {*MODEL_NAMES, *models}
    params: dict[str, dict[str, Any]] = {m: {} for m in models}
    for raw in values:
        key, sep, text = raw.partition("=")
        if not sep or not key:
            raise TrainingError(f"--param {raw!r}: expected MODEL.KEY=VALUE or KEY=VALUE")
        model, dot, name = key.partition(".")
        targets = [model] if dot and model in known else list(models)
        name = name if dot and model in known else key
        if dot and model in known and model not in models:
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
