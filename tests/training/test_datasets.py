"""Point-in-time training sets: labels look forward only, splits are by time and purged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from features.attributes import NO_FITTED_ATTRIBUTES, FittedAttributes
from features.pipeline import build_features
from features.schema import JourneyData
from features.simulate import Simulation, simulate
from features.simulate.truth import true_phases
from features.taxonomy import Taxonomy, load_taxonomy
from models import churn as churn_model
from models.outcomes import load_outcomes
from training.datasets import (
    CRM_LABEL_COLUMN,
    LAST_CONTENT_PHASE_COLUMN,
    PURCHASED_COLUMN,
    TrainingSet,
    as_of_grid,
    build_phase_set,
    data_end,
)
from training.labels import LabelError, label_events, label_phase, last_content_phase
from training.outcome_sets import build_outcome_set, outcome_moments
from training.splits import SplitError, TimeSplit, check_time_split, split_by_as_of


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(600, seed=11)


@pytest.fixture(scope="module")
def features(sim: Simulation, taxonomy: Taxonomy) -> pd.DataFrame:
    return build_features(sim.data, as_of_grid(sim.data, 12), taxonomy)


def build_churn_set(
    data: JourneyData,
    taxonomy: Taxonomy,
    features: pd.DataFrame,
    *,
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES,
) -> TrainingSet:
    """The default outcome's (churn's) training set on the grid ``features`` were built on."""
    (churn,) = load_outcomes()
    moments = outcome_moments(data, churn, n_dates=features["as_of"].nunique())
    assert moments.dates == tuple(sorted(features["as_of"].unique()))
    return build_outcome_set(data, taxonomy, features, churn, moments, attributes=attributes)


def _ts(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def _keys(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": [a for a, _ in rows],
            "as_of": pd.Series([_ts(d) for _, d in rows], dtype="datetime64[ns, UTC]"),
        }
    )


def test_as_of_grid_is_monthly_and_leaves_room_for_the_horizon(sim: Simulation) -> None:
    dates = as_of_grid(sim.data, 12, horizon_days=90)
    # 24 months from 2024-01-01: the last first-of-month with 90 days of data after it.
    assert dates[0] == _ts("2024-11-01")
    assert dates[-1] == _ts("2025-10-01")
    assert len(dates) == 12
    assert all(t.day == 1 for t in dates)
    assert dates[-1] + pd.Timedelta(days=90) <= data_end(sim.data)
    assert dates[-1] + pd.Timedelta(days=120) > data_end(sim.data)


def test_label_phase_reads_the_crm_after_its_lag(taxonomy: Taxonomy) -> None:
    stages = pd.DataFrame(
        {
            "account_id": ["A1", "A1", "A1", "A2"],
            "ts": pd.Series(
                [_ts("2025-01-01"), _ts("2025-03-05"), _ts("2025-03-20"), _ts("2025-04-01")],
                dtype="datetime64[ns, UTC]",
            ),
            "phase": pd.Categorical(
                ["trigger", "awareness", "consideration", "selection"],
                categories=taxonomy.phases,
            ),
        }
    )
    keys = _keys([("A1", "2025-03-01"), ("A1", "2025-02-01"), ("A2", "2025-03-01")])
    got = label_phase(stages, keys, taxonomy, lag_days=14)
    # as_of 03-01 + 14 days = 03-15: the 03-05 record counts, the 03-20 one does not.
    assert got.astype(object).tolist()[:2] == ["awareness", "trigger"]
    assert pd.isna(got.iloc[2])  # A2's first record comes after 03-15
    without_lag = label_phase(stages, keys, taxonomy, lag_days=0)
    assert without_lag.astype(object).tolist()[:2] == ["trigger", "trigger"]


def test_label_events_counts_events_in_the_half_open_horizon() -> None:
    touchpoints = pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A3", "A4"],
            "ts": pd.Series(
                [_ts("2025-03-01"), _ts("2025-05-30"), _ts("2025-02-28"), _ts("2025-04-01")],
                dtype="datetime64[ns, UTC]",
            ),
            "event_type": ["churn", "churn", "churn", "usage"],
        }
    )
    keys = _keys([(a, "2025-03-01") for a in ("A1", "A2", "A3", "A4", "A5")])
    got = label_events(touchpoints, keys, ["churn"], window_days=90)
    # A1 churns at as-of (inside), A2 on day 90 (outside: 03-01 + 90 days = 05-30),
    # A3 before as-of, A4 only uses the product, A5 has no events.
    assert got.tolist() == [1, 0, 0, 0, 0]
    assert label_events(touchpoints, keys, ["churn"], window_days=91).tolist() == [1, 1, 0, 0, 0]
    assert label_events(touchpoints, keys, ["churn", "usage"], window_days=91).tolist() == [
        1,
        1,
        0,
        1,
        0,
    ]


def test_last_content_phase_takes_the_last_content_touchpoint_before_as_of(
    taxonomy: Taxonomy,
) -> None:
    content = pd.DataFrame(
        {"content_id": ["C1", "C2"], "phases": [["selection", "purchase"], ["awareness"]]}
    )
    touchpoints = pd.DataFrame(
        {
            "account_id": ["A1", "A1", "A1", "A2"],
            "ts": pd.Series(
                [_ts("2025-01-01"), _ts("2025-02-01"), _ts("2025-03-01"), _ts("2025-03-01")],
                dtype="datetime64[ns, UTC]",
            ),
            "content_id": pd.Series(["C2", "C1", None, "C1"], dtype="str"),
        }
    )
    keys = _keys([("A1", "2025-03-02"), ("A1", "2025-02-01"), ("A2", "2025-03-01")])
    got = last_content_phase(touchpoints, content, keys, taxonomy)
    # A1 at 03-02: the 03-01 touchpoint has no content, so C1 (first phase: selection);
    # at 02-01 the C1 touchpoint is not strictly before as-of; A2 has nothing before.
    assert got.iloc[0] == "selection"
    assert got.iloc[1] == "awareness"
    assert pd.isna(got.iloc[2])


def test_labels_reject_keys_without_as_of(taxonomy: Taxonomy) -> None:
    with pytest.raises(LabelError, match="as_of"):
        label_events(pd.DataFrame(), pd.DataFrame({"account_id": ["A1"]}), [], window_days=1)


def _assert_labels_before_next_split(split: TimeSplit, horizon_days: int) -> None:
    gap = pd.Timedelta(days=horizon_days)
    assert split.train["as_of"].max() + gap <= split.valid["as_of"].min()
    assert split.valid["as_of"].max() + gap <= split.test["as_of"].min()
    assert split.train["as_of"].max() < split.valid["as_of"].min()
    assert split.valid["as_of"].max() < split.test["as_of"].min()


def test_phase_set_is_split_by_time_without_label_leakage(
    sim: Simulation, taxonomy: Taxonomy, features: pd.DataFrame
) -> None:
    ts = build_phase_set(sim.data, taxonomy, features)
    assert isinstance(ts, TrainingSet)
    assert ts.horizon_days == 60  # the hindsight label reads the CRM 60 days past as-of
    assert ts.class_names == taxonomy.phases
    check_time_split(ts.split, horizon_days=ts.horizon_days)
    _assert_labels_before_next_split(ts.split, ts.horizon_days)
    assert ts.as_of_dates["test"] == ["2025-09-01T00:00:00+00:00", "2025-10-01T00:00:00+00:00"]
    assert ts.as_of_dates["valid"] == ["2025-06-01T00:00:00+00:00", "2025-07-01T00:00:00+00:00"]
    assert ts.as_of_dates["purged"] == [
        "2025-05-01T00:00:00+00:00",
        "2025-08-01T00:00:00+00:00",
    ]
    assert len(ts.as_of_dates["train"]) == 6
    labels = ts.frame[ts.label_column]
    assert labels.between(0, len(taxonomy.phases) - 1).all()
    assert ts.frame[LAST_CONTENT_PHASE_COLUMN].between(-1, 7).all()
    assert set(ts.frame[PURCHASED_COLUMN].dropna().unique()) <= {0.0, 1.0}
    assert LAST_CONTENT_PHASE_COLUMN not in ts.feature_columns
    assert "crm_phase" in ts.feature_columns


def test_crm_label_equals_the_crm_record_read_14_days_later(
    sim: Simulation, taxonomy: Taxonomy, features: pd.DataFrame
) -> None:
    ts = build_phase_set(sim.data, taxonomy, features)
    row = ts.frame.iloc[1234]
    stages = sim.data.stages
    seen = stages[
        (stages["account_id"] == row["account_id"])
        & (stages["ts"] < row["as_of"] + pd.Timedelta(days=14))
    ].sort_values("ts")
    assert taxonomy.phases[int(row[CRM_LABEL_COLUMN])] == str(seen["phase"].iloc[-1])
    assert CRM_LABEL_COLUMN not in ts.feature_columns


def test_the_hindsight_label_is_closer_to_the_true_phase_than_the_crm_label(
    sim: Simulation, taxonomy: Taxonomy, features: pd.DataFrame
) -> None:
    ts = build_phase_set(sim.data, taxonomy, features)
    truth = true_phases(sim.truth, ts.frame["account_id"].to_numpy(), ts.frame["as_of"])
    true = pd.Categorical(truth.astype(object), categories=ts.class_names).codes
    known = true >= 0

    def macro_f1(label: str) -> float:
        y = ts.frame[label].to_numpy()[known]
        return float(f1_score(true[known], y, labels=np.unique(true[known]), average="macro"))

    # the label trains the model; the CRM label is what the CRM showed (read 14 days later)
    assert macro_f1(ts.label_column) > macro_f1(CRM_LABEL_COLUMN) + 0.08
    changed = ts.frame[ts.label_column] != ts.frame[CRM_LABEL_COLUMN]
    assert 0.03 < changed.mean() < 0.5


def test_churn_set_holds_customers_with_forward_labels(
    sim: Simulation, taxonomy: Taxonomy, features: pd.DataFrame
) -> None:
    ts = build_churn_set(sim.data, taxonomy, features)
    assert (ts.frame["is_customer"] == 1).all()
    assert ts.horizon_days == 90
    check_time_split(ts.split, horizon_days=90)
    _assert_labels_before_next_split(ts.split, 90)
    assert ts.as_of_dates["valid"] == ["2025-06-01T00:00:00+00:00"]
    assert len(ts.as_of_dates["train"]) == 5
    # Each label is a churn event in [as_of, as_of + 90 days): recount one positive by hand.
    positive = ts.frame[ts.frame[ts.label_column] == 1].iloc[0]
    tp = sim.data.touchpoints
    hits = tp[
        (tp["account_id"] == positive["account_id"])
        & (tp["event_type"] == "churn")
        & (tp["ts"] >= positive["as_of"])
        & (tp["ts"] < positive["as_of"] + pd.Timedelta(days=90))
    ]
    assert len(hits) >= 1
    rate = ts.frame[ts.label_column].mean()
    assert 0.02 < rate < 0.2


def test_default_outcome_reproduces_todays_churn_set(
    sim: Simulation, taxonomy: Taxonomy, features: pd.DataFrame
) -> None:
    """Today's rule, written out: customers (is_customer == 1) on the 12 monthly dates, 1
    when a churn event falls in [as_of, as_of + 90 days), 1 validation and 2 test dates."""
    columns = churn_model.feature_columns(taxonomy)
    customers = features.loc[features["is_customer"] == 1, ["account_id", "as_of", *columns]]
    customers = customers.reset_index(drop=True)
    label = label_events(sim.data.touchpoints, customers, ["churn"], window_days=90)
    expected = pd.concat([customers, label.rename("positive").to_frame()], axis=1)
    split = split_by_as_of(expected, valid_dates=1, test_dates=2, horizon_days=90)

    ts = build_churn_set(sim.data, taxonomy, features)

    assert ts.name == "churn" and ts.feature_columns == columns
    pd.testing.assert_frame_equal(ts.frame, expected)
    assert ts.split.dates == split.dates
    pd.testing.assert_frame_equal(ts.split.test, split.test)


def test_label_window_overlapping_the_next_split_is_caught(
    sim: Simulation, taxonomy: Taxonomy, features: pd.DataFrame
) -> None:
    # Splitting without purging the 90-day horizon puts the validation date right after
    # the last training date; the training labels would then see the validation period.
    leaky = build_churn_set(sim.data, taxonomy, features)
    unpurged = TimeSplit(
        train=leaky.frame[leaky.frame["as_of"] < _ts("2025-08-01")],
        valid=leaky.frame[leaky.frame["as_of"] == _ts("2025-08-01")],
        test=leaky.frame[leaky.frame["as_of"] >= _ts("2025-09-01")],
        dates=leaky.split.dates,
    )
    with pytest.raises(SplitError, match="label window of 90 days"):
        check_time_split(unpurged, horizon_days=90)
    assert np.isfinite(leaky.frame[leaky.label_column]).all()


def test_phase_and_churn_sets_take_the_custom_attribute_features(
    sim: Simulation, taxonomy: Taxonomy
) -> None:
    from features.pipeline.attributes import fit_attributes
    from tests.utils.data import ATTRIBUTES, with_attributes

    data = with_attributes(sim.data)
    dates = as_of_grid(data, 8)
    fitted = fit_attributes(data, ATTRIBUTES, before=dates[-1])
    features = build_features(data, dates, taxonomy, attributes=fitted)
    phase = build_phase_set(data, taxonomy, features, attributes=fitted)
    churn = build_churn_set(data, taxonomy, features, attributes=fitted)
    for ts in (phase, churn):
        assert {"account_plan", "touchpoint_discount_sum_90d"} <= set(ts.feature_columns)
        assert ts.frame["account_plan"].dtype.categories.tolist() == list(
            fitted.levels_of("accounts", "plan")
        )
