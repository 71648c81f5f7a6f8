"""Training sets of declared binary outcomes (``models.outcomes``): scoring moments, the
population at risk, labels and a time split that fits the data's span.

``outcome_moments`` says when rows are scored: every account on the dates of a calendar
grid, or one moment per entity anchored on its own events (just after the anchor, so the
anchoring event is known and its consequences are not). ``features_at_keys`` computes the
feature rows of anchored moments; grid features come from ``features.pipeline`` as for the
other models. ``build_outcome_set`` keeps the rows of the population, labels them and splits
them by time with the horizon purged between splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.attributes import NO_FITTED_ATTRIBUTES, FittedAttributes
from features.pipeline import build_features
from features.pipeline.account import select_accounts
from features.schema import JourneyData, account_created_at
from features.taxonomy import Taxonomy
from models import churn as binary_model
from models.outcomes import Outcome, ScoreAt
from training.datasets import (
    KEY_COLUMNS,
    TrainingSet,
    TrainingSetError,
    as_of_grid,
    data_end,
    grid_capacity,
)
from training.labels import event_before, label_events, label_stage
from training.splits import SplitError, TimeSplit, split_as_of_dates, split_by_as_of, split_by_share

LABEL_COLUMN = "positive"
# An anchored moment is this long after its anchor: the entity exists and the anchoring
# event is known (features use events strictly before as-of), what follows is not.
ANCHOR_DELAY = pd.Timedelta(seconds=1)
# Calendar grids: validation and test as-of dates (today's churn split: 1 and 2).
GRID_VALID_DATES = 1
GRID_TEST_DATES = 2


@dataclass(frozen=True)
class Moments:
    """When an outcome's rows are scored: every account on each of ``dates`` (a calendar
    grid), or the (account_id, as_of) rows of ``keys`` (anchored moments; ``dates`` are
    their distinct as-of dates). ``test_dates`` is how many grid dates the test split
    takes (0 for anchored moments, which split by share of rows)."""

    dates: tuple[pd.Timestamp, ...]
    keys: pd.DataFrame | None = None
    test_dates: int = 0


def outcome_moments(data: JourneyData, outcome: Outcome, *, n_dates: int = 12) -> Moments:
    """The scoring moments of ``outcome`` whose label window ends within the data.

    A calendar grid takes the latest ``n_dates`` dates, more when a split with the horizon
    purged needs them and the data span them (fewer when the data span fewer); anchored
    moments take every anchor. Raises ``SplitError`` naming the span, the horizon and what
    would be needed when no honest split exists, ``TrainingSetError`` without moments.
    """
    horizon = outcome.horizon_days
    if outcome.score_at.grid is not None:
        return _grid_moments(data, outcome, n_dates=n_dates)
    keys = anchored_keys(data, outcome.score_at)
    keys = keys[keys["as_of"] + pd.Timedelta(days=horizon) <= data_end(data)]
    if keys.empty:
        raise TrainingSetError(
            f"outcome {outcome.name!r}: no moment {outcome.score_at.describe()} leaves a "
            f"{horizon}-day label window before the data end {data_end(data)}; expected "
            "anchors at least horizon_days before the end"
        )
    keys = keys.sort_values(["as_of", "account_id"], kind="stable", ignore_index=True)
    dates = tuple(pd.DatetimeIndex(keys["as_of"].unique()))
    return Moments(dates=dates, keys=keys)


def _grid_moments(data: JourneyData, outcome: Outcome, *, n_dates: int) -> Moments:
    grid = outcome.score_at.grid
    assert grid is not None
    horizon = outcome.horizon_days
    candidates = as_of_grid(data, grid_capacity(data, grid), horizon_days=horizon, grid=grid)
    # Fewer test dates before giving up: a short span may hold one, not two.
    for test_dates in (GRID_TEST_DATES, 1):
        for n in range(min(n_dates, len(candidates)), len(candidates) + 1):
            dates = candidates[len(candidates) - n :]
            try:
                split_as_of_dates(
                    dates,
                    valid_dates=GRID_VALID_DATES,
                    test_dates=test_dates,
                    horizon_days=horizon,
                )
            except SplitError:
                continue
            return Moments(dates=tuple(dates), test_dates=test_dates)
    first, last = candidates[0], candidates[-1]
    raise SplitError(
        f"outcome {outcome.name!r}: {len(candidates)} {grid} as-of dates from {first.date()} "
        f"to {last.date()} (the data end {data_end(data).date()} less the {horizon}-day "
        f"horizon) cannot hold train, validation and test dates {horizon} days apart; "
        f"expected as-of dates spanning more than {2 * horizon} days: give a shorter "
        "horizon_days, or score anchored moments"
    )


def anchored_keys(data: JourneyData, score_at: ScoreAt) -> pd.DataFrame:
    """One (account_id, as_of) row per anchored moment, ``ANCHOR_DELAY`` after its anchor:
    the account's entry (created_at, else its first activity), entry + N days, each
    exposure or each touchpoint of the named event types. Distinct rows, any order."""
    anchors: pd.DataFrame | None
    if score_at.at_entry or score_at.days_after_start is not None:
        shift = pd.Timedelta(days=score_at.days_after_start or 0)
        anchors = pd.DataFrame(
            {
                "account_id": data.accounts["account_id"].astype(str).to_numpy(),
                "ts": pd.to_datetime(account_created_at(data), utc=True).to_numpy() + shift,
            }
        )
    elif score_at.each_exposure:
        anchors = data.exposures[["account_id", "ts"]] if len(data.exposures) else None
    else:
        tp = data.touchpoints
        chosen = tp["event_type"].isin(list(score_at.each_event or ()))
        anchors = tp.loc[chosen, ["account_id", "ts"]]
    if anchors is None or anchors.empty:
        return pd.DataFrame({"account_id": pd.Series([], dtype=str), "as_of": _utc([])})
    keys = pd.DataFrame(
        {
            "account_id": anchors["account_id"].astype(str).to_numpy(),
            "as_of": _utc(anchors["ts"]) + ANCHOR_DELAY,
        }
    )
    return keys.dropna().drop_duplicates(ignore_index=True)


def _utc(values: pd.Series | list[object]) -> pd.Series:
    return pd.Series(pd.to_datetime(pd.Series(values), utc=True)).dt.as_unit("ns")


def features_at_keys(
    data: JourneyData,
    keys: pd.DataFrame,
    taxonomy: Taxonomy,
    *,
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES,
) -> pd.DataFrame:
    """Feature rows of anchored moments: for each distinct as-of, the pipeline's features of
    the accounts anchored then (``features.pipeline.build_features`` on their rows alone,
    so each row equals the batch row of that account and time). Sorted by (as_of,
    account_id); a moment before the account exists has no row."""
    frames = []
    for as_of, group in keys.groupby("as_of", sort=True):
        subset = select_accounts(data, group["account_id"].astype(str).tolist())
        at = pd.Timestamp(str(as_of))
        frames.append(build_features(subset, [at], taxonomy, attributes=attributes))
    if not frames:
        raise TrainingSetError("no anchored moments to compute features for")
    return pd.concat(frames, ignore_index=True)


def population_mask(data: JourneyData, outcome: Outcome, features: pd.DataFrame) -> np.ndarray:
    """Which feature rows are in ``outcome``'s population at their as-of (see
    ``models.outcomes``); entities that finished (``exclude_after``, churned customers,
    converted leads) are out."""
    population = outcome.population
    keys = features[KEY_COLUMNS]
    tp = data.touchpoints
    if population.kind == "customers":
        keep = features["is_customer"].to_numpy() == 1
    elif population.kind == "open_leads":
        keep = features["n_purchases"].to_numpy() == 0
        positive = outcome.positive
        if positive.events is not None:
            done = tp.loc[tp["event_type"].isin(list(positive.events)), ["account_id", "ts"]]
            keep &= ~event_before(done, keys).to_numpy()
        if positive.stage is not None and len(data.stages):
            reached = data.stages.loc[data.stages["phase"].astype(str) == positive.stage]
            keep &= ~event_before(reached[["account_id", "ts"]], keys).to_numpy()
    elif population.kind == "active":
        days = features["days_since_last_touch"].to_numpy(dtype=np.float64)
        keep = days <= float(population.active_days or 0)  # NaN (never touched) is out
    else:
        keep = np.ones(len(features), dtype=bool)
    if population.exclude_after:
        gone = tp.loc[tp["event_type"].isin(list(population.exclude_after)), ["account_id", "ts"]]
        keep &= ~event_before(gone, keys).to_numpy()
    return np.asarray(keep, dtype=bool)


def label_outcome(data: JourneyData, outcome: Outcome, keys: pd.DataFrame) -> pd.Series:
    """1 where ``outcome`` is positive in ``[as_of, as_of + horizon_days)`` for the key's
    account, else 0 (int8, aligned with ``keys``)."""
    positive, horizon = outcome.positive, outcome.horizon_days
    if positive.events is not None:
        label = label_events(data.touchpoints, keys, positive.events, window_days=horizon)
    elif positive.stage is not None:
        label = label_stage(data.stages, keys, positive.stage, window_days=horizon)
    else:
        seen = label_events(data.touchpoints, keys, positive.lapse or (), window_days=horizon)
        label = (1 - seen).astype(np.int8)
    return label.rename(LABEL_COLUMN)


def build_outcome_set(
    data: JourneyData,
    taxonomy: Taxonomy,
    features: pd.DataFrame,
    outcome: Outcome,
    moments: Moments,
    *,
    feature_columns: Sequence[str] | None = None,
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES,
) -> TrainingSet:
    """``outcome``'s training set: the feature rows of ``moments`` in its population,
    labelled by :func:`label_outcome` and split by time with the horizon purged (a grid by
    its dates, 1 validation and ``moments.test_dates`` test dates; anchored moments by
    share of rows). Raises ``TrainingSetError`` when the population is empty."""
    columns = list(feature_columns or binary_model.feature_columns(taxonomy, attributes))
    unknown = sorted(set(outcome.exclude_features) - set(columns))
    if unknown:
        raise TrainingSetError(
            f"outcome {outcome.name!r} key exclude_features: {unknown} are not features; "
            f"expected names of the pipeline's features, e.g. {columns[:3]}"
        )
    columns = [c for c in columns if c not in outcome.exclude_features]
    frame = outcome_rows(data, features, outcome, moments, columns)
    if frame.empty:
        raise TrainingSetError(
            f"outcome {outcome.name!r}: no row is in the population "
            f"{outcome.population.kind!r} at any moment ({outcome.score_at.describe()}); "
            "expected entities at risk to label"
        )
    return TrainingSet(
        name=outcome.name,
        frame=frame,
        feature_columns=columns,
        label_column=LABEL_COLUMN,
        horizon_days=outcome.horizon_days,
        split=_split(frame, outcome, moments),
    )


def outcome_rows(
    data: JourneyData,
    features: pd.DataFrame,
    outcome: Outcome,
    moments: Moments,
    columns: Sequence[str],
) -> pd.DataFrame:
    """The rows of :func:`build_outcome_set` before the split (keys, ``columns``, label):
    the feature rows of ``moments`` in the population; none when no row is."""
    missing = [c for c in [*KEY_COLUMNS, *columns] if c not in features.columns]
    if missing:
        raise TrainingSetError(
            f"features frame lacks columns {missing[:10]}; expected the output of "
            "features.pipeline.build_features at the outcome's moments"
        )
    rows = features
    if moments.keys is None:
        rows = features.loc[features["as_of"].isin(moments.dates)]
    rows = rows.loc[population_mask(data, outcome, rows)]
    base = rows[[*KEY_COLUMNS, *columns]].reset_index(drop=True)
    label = label_outcome(data, outcome, base[KEY_COLUMNS])
    return pd.concat([base, label.to_frame()], axis=1)


def _split(frame: pd.DataFrame, outcome: Outcome, moments: Moments) -> TimeSplit:
    if moments.keys is None:
        return split_by_as_of(
            frame,
            valid_dates=GRID_VALID_DATES,
            test_dates=moments.test_dates,
            horizon_days=outcome.horizon_days,
        )
    return split_by_share(frame, horizon_days=outcome.horizon_days)
