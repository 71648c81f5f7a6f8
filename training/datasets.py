"""Point-in-time training sets: feature rows from the feature pipeline, labels from after.

``as_of_grid`` picks the as-of dates of a calendar grid (monthly for phase and next-content);
``features.pipeline.build_features`` turns them into one feature row per (account, as-of);
``build_phase_set`` (here) and ``training.outcome_sets.build_outcome_set`` (binary outcomes,
churn among them) attach labels (``training.labels``), keep the rows each model is defined on
and split them by time (``training.splits``) with the label horizon purged between splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from features.attributes import NO_FITTED_ATTRIBUTES, FittedAttributes
from features.errors import InvalidInputError
from features.pipeline import feature_definitions
from features.schema import JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import to_utc
from models import phase as phase_model
from models.outcomes import Grid
from training.fingerprint import fingerprint_training_set
from training.hindsight import HINDSIGHT_DAYS, HindsightStats, label_phase_hindsight
from training.labels import (
    CHURN_HORIZON_DAYS,
    PHASE_LABEL_LAG_DAYS,
    PURCHASE_WINDOW_DAYS,
    label_phase,
    label_purchase,
    last_content_phase,
)
from training.splits import TimeSplit, split_by_as_of

KEY_COLUMNS = ["account_id", "as_of"]
# Column of the phase set holding the last-touchpoint-content rule (a baseline, not a feature).
LAST_CONTENT_PHASE_COLUMN = "baseline_last_content_phase"
# Column of the phase set: purchase in [as_of, as_of + 90 days), NaN where the data end
# earlier (the backtest's outcome, not a feature).
PURCHASED_COLUMN = "purchased_90d"
# Column of the phase set: the CRM-recorded phase at as-of, read lag_days later, as codes (the
# label a real CRM shows then; a comparison and a baseline's target, not the training label).
CRM_LABEL_COLUMN = "crm_phase_label"
# The phase set's validation and test as-of dates.
PHASE_VALID_DATES = 2
PHASE_TEST_DATES = 2


class TrainingSetError(InvalidInputError):
    """A training set cannot be built from these inputs; the message says which and why."""


@dataclass
class TrainingSet:
    """Rows of one model's training set, split by as-of date.

    ``frame`` holds the keys (account_id, as_of), ``feature_columns``, ``label_column`` and
    possibly extra columns that baselines read (never features). ``split`` holds the same
    rows by time; rows on purged dates are only in ``frame``. ``class_names`` lists the
    classes in label-code order for multiclass sets (phase), else is empty.
    """

    name: str
    frame: pd.DataFrame
    feature_columns: list[str]
    label_column: str
    horizon_days: int
    split: TimeSplit
    class_names: list[str] = field(default_factory=list)
    # Whether the model registered is fitted again on every split with the trees early
    # stopping chose (next content on a served log: the newest decisions are then learnt
    # from, and the promotion judges it on the decisions after them)
    refit: bool = False

    @property
    def fingerprint(self) -> str:
        """The training-set fingerprint MLflow logs: a hash of the rows and as-of dates."""
        return fingerprint_training_set(self.frame)

    @property
    def as_of_dates(self) -> dict[str, list[str]]:
        """Split name -> ISO as-of dates (train, valid, test, purged)."""
        d = self.split.dates
        return {
            name: [t.isoformat() for t in getattr(d, name)]
            for name in ("train", "valid", "test", "purged")
        }


def data_end(data: JourneyData) -> pd.Timestamp:
    """The latest timestamp in the data (touchpoints, stages, exposures): how far labels
    can look. Raises ``TrainingSetError`` when there are no touchpoints."""
    if data.touchpoints.empty:
        raise TrainingSetError("table 'touchpoints' is empty; expected events to label from")
    ends = [data.touchpoints["ts"].max()]
    for frame in (data.stages, data.exposures):
        if len(frame) and "ts" in frame:
            ends.append(frame["ts"].max())
    return to_utc(max(ends))


# pandas frequency and step of each calendar grid (first of month, Monday, midnight).
_GRID_FREQ = {"monthly": ("MS", 31), "weekly": ("W-MON", 7), "daily": ("D", 1)}


def as_of_grid(
    data: JourneyData,
    n_dates: int = 12,
    *,
    horizon_days: int = CHURN_HORIZON_DAYS,
    end: pd.Timestamp | None = None,
    grid: Grid = "monthly",
) -> list[pd.Timestamp]:
    """The latest ``n_dates`` dates of the calendar ``grid`` (first of month, Monday or
    every day, UTC midnight) after the first touchpoint whose label window
    ``[as_of, as_of + horizon_days)`` ends on or before the end of the data, ascending;
    fewer when the data span fewer.

    ``end`` defaults to :func:`data_end`. Raises ``TrainingSetError`` if ``n_dates < 1`` or
    the data do not span a single such date after the first touchpoint.
    """
    if n_dates < 1:
        raise TrainingSetError(f"n_dates={n_dates}: expected at least 1 as-of date")
    last = end if end is not None else data_end(data)
    last = to_utc(last)
    latest = (last - pd.Timedelta(days=horizon_days)).floor("D")
    freq, _ = _GRID_FREQ[grid]
    anchor = pd.date_range(end=latest, periods=1, freq=freq, tz="UTC")[0]
    dates = pd.date_range(end=anchor, periods=n_dates, freq=freq, tz="UTC")
    first = pd.Timestamp(data.touchpoints["ts"].min())
    dates = dates[dates > first]
    if len(dates) == 0:
        raise TrainingSetError(
            f"touchpoints span {first} .. {last}: no {grid} as-of date leaves a "
            f"{horizon_days}-day label window; expected data spanning more than that"
        )
    return [t.as_unit("ns") for t in dates]


def grid_capacity(data: JourneyData, grid: Grid) -> int:
    """How many dates of ``grid`` the data's span holds at most (an upper bound)."""
    span = data_end(data) - pd.Timestamp(data.touchpoints["ts"].min())
    return int(span / pd.Timedelta(days=_GRID_FREQ[grid][1])) + 2


def _check_features(features: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in [*KEY_COLUMNS, *columns] if c not in features.columns]
    if missing:
        raise TrainingSetError(
            f"features frame lacks columns {missing[:10]}; expected the output of "
            "features.pipeline.build_features for the as-of grid"
        )


def _split(
    frame: pd.DataFrame, *, horizon_days: int, valid_dates: int, test_dates: int
) -> TimeSplit:
    return split_by_as_of(
        frame, valid_dates=valid_dates, test_dates=test_dates, horizon_days=horizon_days
    )


def build_phase_set(
    data: JourneyData,
    taxonomy: Taxonomy,
    features: pd.DataFrame,
    *,
    lag_days: int = PHASE_LABEL_LAG_DAYS,
    hindsight_days: int = HINDSIGHT_DAYS,
    valid_dates: int = PHASE_VALID_DATES,
    test_dates: int = PHASE_TEST_DATES,
    feature_columns: Sequence[str] | None = None,
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES,
    classes: Sequence[str] | None = None,
    end: pd.Timestamp | None = None,
    hindsight: HindsightStats | None = None,
) -> TrainingSet:
    """The phase training set: every (account, as-of) feature row whose account has a CRM
    phase by ``as_of + lag_days`` (``training.labels.label_phase``), labelled with its
    hindsight phase (``training.hindsight.label_phase_hindsight``: the CRM history and
    lifecycle events up to ``as_of + hindsight_days`` read as a whole) as integer codes into
    ``class_names``: the taxonomy's default phases the CRM records (taxonomy order). Raises
    ``TrainingSetError`` when it records fewer than two.

    Also carries ``crm_phase_label`` (the CRM phase at as-of read ``lag_days`` later, codes:
    the label a real CRM shows, scored beside the hindsight label),
    ``baseline_last_content_phase`` (the last-touchpoint-content rule, codes, -1 if none),
    ``purchased_90d`` (the backtest outcome; NaN where the window passes the end of the data)
    and ``is_customer`` (which accounts are open). Split by time with ``horizon_days`` the
    longer of ``lag_days`` and ``hindsight_days``: a label read then must not see the next
    split's period.

    On one account range of larger data (``training.dask_sets``), ``classes``, ``end`` (the
    data end) and ``hindsight`` (the hindsight labels' population figures) are the whole
    data's.
    """
    columns = list(feature_columns or phase_model.feature_columns(taxonomy, attributes))
    frame, present = phase_rows(
        data,
        taxonomy,
        features,
        columns,
        lag_days=lag_days,
        hindsight_days=hindsight_days,
        classes=classes,
        end=end,
        hindsight=hindsight,
    )
    horizon = max(lag_days, hindsight_days)
    split = _split(frame, horizon_days=horizon, valid_dates=valid_dates, test_dates=test_dates)
    return TrainingSet(
        name="phase",
        frame=frame,
        feature_columns=columns,
        label_column=phase_model.LABEL_COLUMN,
        horizon_days=horizon,
        split=split,
        class_names=present,
    )


def phase_rows(
    data: JourneyData,
    taxonomy: Taxonomy,
    features: pd.DataFrame,
    columns: Sequence[str],
    *,
    lag_days: int = PHASE_LABEL_LAG_DAYS,
    hindsight_days: int = HINDSIGHT_DAYS,
    classes: Sequence[str] | None = None,
    end: pd.Timestamp | None = None,
    hindsight: HindsightStats | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """The rows of :func:`build_phase_set` before the split, and its classes."""
    _check_features(features, [*columns, "is_customer"])
    keys = features[KEY_COLUMNS]
    label = label_phase(data.stages, keys, taxonomy, lag_days=lag_days)
    keep = label.notna().to_numpy()
    present = recorded_phases(label, taxonomy, lag_days) if classes is None else list(classes)
    rule = last_content_phase(data.touchpoints, data.content, keys, taxonomy)
    extra = [] if "is_customer" in columns else ["is_customer"]
    base = features.loc[keep, [*KEY_COLUMNS, *columns, *extra]].reset_index(drop=True)
    purchased = label_purchase(
        data.touchpoints, base[KEY_COLUMNS], window_days=PURCHASE_WINDOW_DAYS
    ).astype(np.float32)
    last = data_end(data) if end is None else end
    complete = base["as_of"] + pd.Timedelta(days=PURCHASE_WINDOW_DAYS) <= last
    crm = _codes(label[keep], present)
    hindsight_codes = label_phase_hindsight(
        data.stages,
        data.touchpoints,
        base[KEY_COLUMNS],
        present,
        lag_days=lag_days,
        hindsight_days=hindsight_days,
        stats=hindsight,
    )
    labels = pd.DataFrame(
        {
            # Every kept row has a CRM record by as_of + lag_days, so a hindsight label too;
            # the CRM's code stands in should one be missing.
            phase_model.LABEL_COLUMN: np.where(hindsight_codes >= 0, hindsight_codes, crm).astype(
                np.int32
            ),
            CRM_LABEL_COLUMN: crm,
            LAST_CONTENT_PHASE_COLUMN: _codes(rule[keep], present),
            PURCHASED_COLUMN: purchased.where(complete.to_numpy()).to_numpy(),
        }
    )
    # One concat instead of column inserts keeps the wide frame unfragmented.
    return pd.concat([base, labels], axis=1), present


def recorded_phases(
    label: pd.Series, taxonomy: Taxonomy, lag_days: int = PHASE_LABEL_LAG_DAYS
) -> list[str]:
    """The phase set's classes: the phases the CRM records in ``label``
    (``training.labels.label_phase``), taxonomy order; a CRM with two stages gives a binary
    model, and absent phases take no class code. Raises ``TrainingSetError`` below two."""
    recorded = set(label.dropna().astype(str))
    present = [p for p in taxonomy.phases if p in recorded]
    if not present:
        raise TrainingSetError(
            "table 'stages' has no CRM phase record before any as-of date + "
            f"{lag_days} days; expected phase history to label from"
        )
    if len(present) < 2:
        raise TrainingSetError(
            f"table 'stages' records {len(present)} phase(s) {present} before any as-of date + "
            f"{lag_days} days; the phase model needs at least 2 of {list(taxonomy.phases)}"
        )
    return present


def _codes(phases: pd.Series, classes: list[str]) -> np.ndarray:
    """Phase names as codes into ``classes`` (-1 for missing or another phase)."""
    code = {name: i for i, name in enumerate(classes)}
    return phases.astype(object).map(code).fillna(-1).to_numpy(dtype=np.int32)


def all_feature_columns(taxonomy: Taxonomy) -> list[str]:
    """Every feature the pipeline produces, in output order."""
    return list(feature_definitions(taxonomy))


def features_and_labels(ts: TrainingSet, part: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The feature columns of ``part`` (rows of ``ts``) and its integer labels."""
    return part[ts.feature_columns], part[ts.label_column].to_numpy(dtype=np.int64)


class ModelSplits(NamedTuple):
    """Features and labels of each split of a training set, and the test rows themselves
    (baselines and truth read columns that are not features)."""

    x_train: pd.DataFrame
    y_train: np.ndarray
    x_valid: pd.DataFrame
    y_valid: np.ndarray
    test: pd.DataFrame
    x_test: pd.DataFrame
    y_test: np.ndarray


def model_splits(ts: TrainingSet) -> ModelSplits:
    """The features and labels of each split of ``ts``; raises TrainingSetError when the
    test split is empty."""
    x_train, y_train = features_and_labels(ts, ts.split.train)
    x_valid, y_valid = features_and_labels(ts, ts.split.valid)
    x_test, y_test = features_and_labels(ts, ts.split.test)
    if len(x_test) == 0:
        raise TrainingSetError(f"training set {ts.name!r} has no test rows")
    return ModelSplits(x_train, y_train, x_valid, y_valid, ts.split.test, x_test, y_test)
