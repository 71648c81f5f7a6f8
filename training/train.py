"""Training end to end: data directory -> features at the as-of moments -> the models.

The models are phase, next-content and one binary model per declared outcome
(``models.outcomes``; the default declares churn). Features are computed once per as-of
date and shared by every training set that scores on it (the monthly grid of phase,
next-content and churn); an outcome scored on another grid or on anchored moments gets its
own. Each model's code lives in its own module (``training.phase``, ``training.outcome``,
``training.next_content``); this module only wires them and times the steps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
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
from features.memory import release_free_memory
from features.pipeline import Engine, build_features
from features.pipeline.attributes import fit_attributes
from features.schema import JourneyData
from features.simulate.truth import SimulationTruth, load_truth
from features.taxonomy import Taxonomy
from features.timestamps import column_ns
from models.contract import ATTRIBUTES_ARTIFACT
from models.fitting import float32_columns
from models.outcomes import Outcome
from training.datasets import TrainingSet, TrainingSetError, as_of_grid, data_end
from training.model_steps import TrainingError, model_steps
from training.next_action import has_control
from training.outcome_sets import Moments, features_at_keys
from training.result import ModelResult
from training.reward import Reward
from training.splits import rows_on


@dataclass
class Prepared:
    """Everything the models train from: data, optional truth, the monthly as-of grid
    (empty when the data span none) and features computed on first use per as-of date (with
    those of the declared custom ``attributes``, whose levels are fixed here). ``seconds``
    and ``cpu_seconds`` hold each step's wall and CPU time (all threads)."""

    data: JourneyData
    truth: SimulationTruth | None
    as_of: list[pd.Timestamp]
    taxonomy: Taxonomy
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES
    n_dates: int = 12
    engine: Engine = "pandas"
    scheduler: str | None = None
    grid_error: str = ""  # why the monthly grid is empty
    # What the next-content model is rewarded for where the data have a "no action" control.
    reward: Reward = field(default_factory=Reward)
    # False while the last model's set is built: the features it asks for are then its
    # own, and no copy is kept beside them (at 100,000 accounts each copy is about 2 GB).
    keep_features: bool = True
    # Dates later models will ask for (``train_models`` sets them), computed with the first.
    upcoming: set[pd.Timestamp] = field(default_factory=set)
    feature_rows: int = 0  # feature rows computed so far
    # Every date's features computed so far, one frame sorted by (as_of, account_id).
    _grid: pd.DataFrame | None = None
    _dates: set[pd.Timestamp] = field(default_factory=set)
    _timers: list[list[float]] = field(default_factory=list)  # the open steps' nested time

    @classmethod
    def from_features(
        cls,
        data: JourneyData,
        dates: list[pd.Timestamp],
        features: pd.DataFrame,
        taxonomy: Taxonomy,
        *,
        truth: SimulationTruth | None = None,
    ) -> Prepared:
        """Prepared data whose grid features were computed already (``features`` on
        ``dates``, without custom attributes)."""
        prepared = cls(data, truth, list(dates), taxonomy)
        prepared._add_features(features)
        prepared._dates.update(dates)
        return prepared

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Adds the wall and CPU seconds of the ``with`` block to ``step``, less those of
        the steps timed inside it (a set's step that computes the features counts them
        under ``features_s`` only), so the steps add up to the whole."""
        wall, cpu = time.perf_counter(), time.process_time()
        inner = [0.0, 0.0]  # the nested steps' wall and CPU seconds
        self._timers.append(inner)
        try:
            yield
        finally:
            self._timers.pop()
            took = (time.perf_counter() - wall, time.process_time() - cpu)
            self.seconds[step] = self.seconds.get(step, 0.0) + took[0] - inner[0]
            self.cpu_seconds[step] = self.cpu_seconds.get(step, 0.0) + took[1] - inner[1]
            if self._timers:
                self._timers[-1][0] += took[0]
                self._timers[-1][1] += took[1]

    def plan(self, models: Sequence[str], outcomes: Sequence[Outcome] | None = None) -> None:
        """Makes the first features computed include every grid date ``models`` will read
        (``upcoming``), so that each model's rows are a slice of one frame."""
        self.upcoming = {
            date for model in models for date in model_steps(model, outcomes).grid_dates(self)
        }

    def forget_features(self) -> None:
        """Drops the features computed so far (hundreds of MB per as-of date at 100,000
        accounts); they are computed again if asked for."""
        self._grid = None
        self._dates.clear()

    @property
    def features(self) -> pd.DataFrame:
        """Features of every account on the monthly grid (phase, next-content, churn)."""
        if not self.as_of:
            raise TrainingSetError(self.grid_error)
        return self.features_on(self.as_of)

    def grid_features(self, horizon_days: int) -> pd.DataFrame:
        """Features on the latest ``n_dates`` monthly dates whose ``horizon_days`` label
        window ends by the data end: a model with a shorter horizon than the grid's (churn's
        90 days) learns from the recent rows that grid leaves out."""
        return self.features_on(as_of_grid(self.data, self.n_dates, horizon_days=horizon_days))

    def features_on(self, dates: Sequence[pd.Timestamp]) -> pd.DataFrame:
        """Features of every account on ``dates``, computing the dates not seen before (with
        the ``upcoming`` ones: later models' dates join the grid now, so that every model's
        rows are a slice of it rather than a copy)."""
        missing = sorted(set(dates) - self._dates)
        if missing:
            missing = sorted((set(dates) | self.upcoming) - self._dates)
        if missing:
            with self.timed("features_s"):
                self._add_features(
                    build_features(
                        self.data,
                        missing,
                        self.taxonomy,
                        engine=self.engine,
                        scheduler=self.scheduler,
                        attributes=self.attributes,
                    )
                )
            self._dates.update(missing)
        grid = self._grid
        if grid is None:
            raise TrainingSetError("no as-of date to compute features on; expected one or more")
        # The dates' rows, still in (as_of, account_id) order: the cached frame itself or a
        # slice of it when the dates are a run of the grid's (callers read it, never write
        # it), else a copy.
        if set(dates) == self._dates:
            frame = grid
        else:
            frame = rows_on(grid, sorted(set(dates))).reset_index(drop=True)
        if not self.keep_features:
            self.forget_features()
        return frame

    def _add_features(self, features: pd.DataFrame) -> None:
        """Merges newly computed dates' features into the sorted grid frame, their float64
        columns as float32."""
        self.feature_rows += len(features)
        # Every model fits on float32 values, so its trees are the same; the grid is 400 MB
        # smaller at 100,000 accounts, and every training set's peak holds it.
        features = float32_columns(features)
        frame = features if self._grid is None else pd.concat([self._grid, features])
        self._grid = None  # the old frame goes before the sorted copy is made
        if _in_key_order(frame):
            # The pipeline's rows come sorted already: a sorted copy would be another
            # 2 GB at 100,000 accounts on the monthly grid.
            self._grid = frame.reset_index(drop=True)
        else:
            self._grid = frame.sort_values(
                ["as_of", "account_id"], kind="stable", ignore_index=True
            )

    def features_at(self, moments: Moments) -> pd.DataFrame:
        """Features at an outcome's moments: the grid's (shared), or anchored moments'."""
        if moments.keys is None:
            return self.features_on(moments.dates)
        with self.timed("features_s"):
            return features_at_keys(
                self.data, moments.keys, self.taxonomy, attributes=self.attributes
            )


def _in_key_order(frame: pd.DataFrame) -> bool:
    """Whether ``frame``'s rows are in (as_of, account_id) order, ties allowed."""
    as_of = column_ns(frame["as_of"])
    step = np.diff(as_of)
    if (step < 0).any():
        return False
    ids = frame["account_id"].astype(str).to_numpy(dtype=object)
    same = np.flatnonzero(step == 0)
    return bool((ids[same] <= ids[same + 1]).all())


def prepare(
    data_dir: Path,
    taxonomy: Taxonomy,
    *,
    mapping: ColumnMapping | None = None,
    n_dates: int = 12,
    engine: Engine = "pandas",
    scheduler: str | None = None,
    attributes: AttributeDeclaration = NO_ATTRIBUTES,
    models: Sequence[str] | None = None,
    reward: Reward | None = None,
) -> Prepared:
    """Read and validate ``data_dir``, load the simulator's truth if it is there, and pick
    the monthly as-of grid (``training.datasets.as_of_grid``; empty when the data span no
    date, which only the models that need it refuse). Features are computed when a model
    asks for them. Custom attributes (the mapping's or ``attributes``) get their levels from
    the events before the grid's last date (the data's end without a grid; the last
    decision day when only next-content is trained on data with a "no action" control,
    whose rows are anchored on the decisions)."""
    started, cpu = time.perf_counter(), time.process_time()
    data = read_data_dir(data_dir, taxonomy, mapping=mapping, attributes=attributes)
    truth = load_truth(data_dir) if (data_dir / "truth").is_dir() else None
    declared = mapping.attributes if mapping is not None and mapping.attributes else attributes
    return prepare_data(
        data,
        taxonomy,
        truth=truth,
        load_s=time.perf_counter() - started,
        load_cpu_s=time.process_time() - cpu,
        n_dates=n_dates,
        engine=engine,
        scheduler=scheduler,
        attributes=declared,
        models=models,
        reward=reward,
    )


def prepare_data(
    data: JourneyData,
    taxonomy: Taxonomy,
    *,
    truth: SimulationTruth | None = None,
    load_s: float = 0.0,
    load_cpu_s: float = 0.0,
    n_dates: int = 12,
    engine: Engine = "pandas",
    scheduler: str | None = None,
    attributes: AttributeDeclaration = NO_ATTRIBUTES,
    models: Sequence[str] | None = None,
    reward: Reward | None = None,
) -> Prepared:
    """:func:`prepare` on data read already (a data directory's, or the service's store
    through ``features.load.read_tables``): the as-of grid and the attribute levels, the
    same way whatever the data came from. ``load_s``, ``load_cpu_s``: the wall and CPU
    seconds reading them took."""
    seconds: dict[str, float] = {"load_s": load_s}
    cpu_seconds: dict[str, float] = {"load_s": load_cpu_s}
    grid_error = ""
    try:
        dates = as_of_grid(data, n_dates)
    except TrainingSetError as exc:
        dates, grid_error = [], str(exc)
    before = dates[-1] if dates else data_end(data)
    if models is not None and list(models) == ["next-content"] and has_control(data):
        before = data.exposures["ts"].max().floor("D")
    fitted = fit_attributes(data, attributes, before=before)
    return Prepared(
        data,
        truth,
        dates,
        taxonomy,
        seconds,
        cpu_seconds,
        fitted,
        n_dates=n_dates,
        engine=engine,
        scheduler=scheduler,
        grid_error=grid_error,
        reward=reward if reward is not None else Reward(),
    )


def build_set(
    model: str, prepared: Prepared, taxonomy: Taxonomy, outcomes: Sequence[Outcome] | None = None
) -> TrainingSet:
    """One model's point-in-time training set from the prepared features."""
    return model_steps(model, outcomes).build_set(prepared, taxonomy)


def train_models(
    models: Sequence[str],
    prepared: Prepared,
    taxonomy: Taxonomy,
    *,
    params: dict[str, dict[str, Any]] | None = None,
    on_result: Callable[[ModelResult], object] | None = None,
    client: Any | None = None,
    outcomes: Sequence[Outcome] | None = None,
    on_skip: Callable[[str, str], object] | None = None,
) -> list[ModelResult]:
    """Train each model (``parse_models``; outcomes from ``outcomes``, default the shipped
    file) on its training set; ``on_result`` (e.g. MLflow logging) runs as soon as a model
    is done, so a failure later does not lose earlier models. ``client`` (a Dask client)
    grows the trees with ``lightgbm.dask`` on its cluster.

    With ``on_skip``, a model the data cannot support (its set or training raises an
    :class:`InvalidInputError`, e.g. no stages for phase, no exposures for next content) is
    skipped: ``on_skip(model, why)`` runs and the others train. Raises
    :class:`TrainingError` when every model was skipped.
    """
    results = []
    skipped: dict[str, str] = {}
    prepared.plan(models, outcomes)
    for position, model in enumerate(models):
        # The last model's set is the last to read the grid's features: they go before it
        # trains, which is where training peaks in memory (next content, last in `all`).
        last = position == len(models) - 1
        train = (model, prepared, taxonomy, params, on_result, client, outcomes, last)
        if on_skip is None:
            results.append(_train_one(*train))
            continue
        try:
            results.append(_train_one(*train))
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
    model: str,
    prepared: Prepared,
    taxonomy: Taxonomy,
    params: dict[str, dict[str, Any]] | None,
    on_result: Callable[[ModelResult], object] | None,
    client: Any | None,
    outcomes: Sequence[Outcome] | None,
    last: bool,
) -> ModelResult:
    """Build ``model``'s training set, train it and hand the result to ``on_result``;
    ``last``: no model after it, so the prepared features are dropped once its set is
    built."""
    steps = model_steps(model, outcomes)
    prepared.keep_features = not last
    with prepared.timed(f"{model}_set_s"):
        training_set = steps.build_set(prepared, taxonomy)
    if last:
        prepared.forget_features()
    release_free_memory()  # what building the set freed
    kwargs: dict[str, Any] = {
        "params": (params or {}).get(model) or None,
        "truth": prepared.truth,
        "taxonomy": taxonomy,
        "client": client,
    }
    if model == "next-content":
        kwargs["content"] = prepared.data.content
    with prepared.timed(f"{model}_train_s"):
        result = steps.train(training_set, **kwargs)
    del training_set
    release_free_memory()
    # Every run carries the attribute levels its features were built with: serving
    # encodes with exactly these (models.contract).
    result.extra_artifacts[ATTRIBUTES_ARTIFACT] = json.dumps(prepared.attributes.to_dict())
    if on_result is not None:
        with prepared.timed(f"{model}_log_s"):
            on_result(result)
    return result


def scorer_on_test_split(
    model: str, prepared: Prepared, taxonomy: Taxonomy, outcomes: Sequence[Outcome] | None = None
) -> tuple[Callable[[Any], float], Callable[[Any, Any], tuple[float, float, float]] | None]:
    """Functions scoring any estimator of ``model`` on the same test split, and comparing
    two there (challenger minus champion with its 95 % interval; None for a model without
    one): what promotion compares."""
    steps = model_steps(model, outcomes)
    training_set = steps.build_set(prepared, taxonomy)
    paired = steps.paired
    return (
        lambda estimator: steps.score(estimator, training_set),
        None if paired is None else lambda a, b: paired(a, b, training_set),
    )
