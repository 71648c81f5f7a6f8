"""Outcome training sets on a tiny hand-made history: each kind of positive, population and
scoring moment, short-span splits and the refusals, checkable by eye.

accounts     A1..A4, created 2024-01-01
touchpoints  A1 purchase 02-10, meeting 03-05, purchase 04-20, churn 06-15
             A2 meeting 02-01, purchase 05-10
             A3 usage 01-20, usage 03-01
             A4 meeting 03-20, meeting 12-30 (the data's end)
stages       A2 consideration 02-05, purchase 05-12
exposures    A3 02-15
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.pipeline import build_features
from features.schema import JourneyData
from features.taxonomy import Taxonomy, load_taxonomy
from models.outcomes import Outcome
from tests.utils.data import canonical
from training.datasets import TrainingSet, TrainingSetError, model_splits
from training.outcome import OutcomeTrainingError, check_both_classes
from training.outcome_sets import (
    ANCHOR_DELAY,
    anchored_keys,
    build_outcome_set,
    features_at_keys,
    label_outcome,
    outcome_moments,
    population_mask,
)
from training.splits import SplitError, split_by_as_of, split_by_share

T = "2024-{}T12:00:00Z".format


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="module")
def data(taxonomy: Taxonomy) -> JourneyData:
    accounts = canonical(
        "accounts",
        [dict(account_id=a, created_at="2024-01-01T00:00:00Z") for a in ("A1", "A2", "A3", "A4")],
        taxonomy,
    )
    events = [
        ("A1", "02-10", "web_shop", "purchase"),
        ("A1", "03-05", "meeting", "meeting"),
        ("A1", "04-20", "web_shop", "purchase"),
        ("A1", "06-15", "customer_service", "churn"),
        ("A2", "02-01", "meeting", "meeting"),
        ("A2", "05-10", "web_shop", "purchase"),
        ("A3", "01-20", "product", "usage"),
        ("A3", "03-01", "product", "usage"),
        ("A4", "03-20", "meeting", "meeting"),
        ("A4", "12-30", "meeting", "meeting"),
    ]
    touchpoints = canonical(
        "touchpoints",
        [
            dict(event_id=f"E{i}", account_id=a, ts=T(day), channel=c, event_type=e)
            for i, (a, day, c, e) in enumerate(events)
        ],
        taxonomy,
    )
    stages = canonical(
        "stages",
        [
            dict(account_id="A2", ts=T("02-05"), phase="consideration"),
            dict(account_id="A2", ts=T("05-12"), phase="purchase"),
        ],
        taxonomy,
    )
    exposures = canonical(
        "exposures",
        [
            dict(
                exposure_id="X1",
                account_id="A3",
                ts=T("02-15"),
                content_id="C001",
                channel="email",
                propensity=0.5,
            )
        ],
        taxonomy,
    )
    return JourneyData(
        accounts=accounts,
        contacts=pd.DataFrame(),
        touchpoints=touchpoints,
        content=taxonomy.content_frame(),
        stages=stages,
        exposures=exposures,
    )


def outcome(**fields: Any) -> Outcome:
    base: dict[str, Any] = {
        "name": "x",
        "positive": {"events": ["purchase"]},
        "population": "all",
        "horizon_days": 30,
    }
    return Outcome.model_validate({**base, **fields})


def keys_at(day: str) -> pd.DataFrame:
    at = pd.Timestamp(f"2024-{day}", tz="UTC").as_unit("ns")
    return pd.DataFrame({"account_id": ["A1", "A2", "A3", "A4"], "as_of": [at] * 4})


def test_each_kind_of_positive_labels_the_window_after_as_of(data: JourneyData) -> None:
    keys = keys_at("04-01")
    events = label_outcome(data, outcome(), keys)
    assert events.tolist() == [1, 0, 0, 0]  # A1 buys 04-20; A2 on 05-10 is past 30 days
    stage = label_outcome(data, outcome(positive={"stage": "purchase"}, horizon_days=45), keys)
    assert stage.tolist() == [0, 1, 0, 0]  # A2 reaches the purchase stage on 05-12
    lapse = label_outcome(data, outcome(positive={"lapse": ["meeting", "purchase"]}), keys)
    assert lapse.tolist() == [0, 1, 1, 1]  # only A1 has a meeting or purchase in April
    assert events.name == "positive" and events.dtype == np.int8


def population(data: JourneyData, taxonomy: Taxonomy, day: str, **fields: Any) -> list[str]:
    features = build_features(data, [pd.Timestamp(f"2024-{day}", tz="UTC")], taxonomy)
    keep = population_mask(data, outcome(**fields), features)
    return features.loc[keep, "account_id"].tolist()


def test_each_population_keeps_who_is_at_risk(data: JourneyData, taxonomy: Taxonomy) -> None:
    assert population(data, taxonomy, "04-01", population="customers") == ["A1"]
    assert population(data, taxonomy, "04-01", population="open_leads") == ["A2", "A3", "A4"]
    # A2 bought on 05-10 (and reached the stage on 05-12): no longer an open lead.
    stage = {"stage": "purchase"}
    assert population(data, taxonomy, "06-01", population="open_leads", positive=stage) == [
        "A3",
        "A4",
    ]
    # Last touches before 04-01: A1 03-05 (27 days), A2 02-01, A3 03-01 (31 days), A4 03-20.
    active = {"kind": "active", "active_days": 30}
    assert population(data, taxonomy, "04-01", population=active) == ["A1", "A4"]
    assert population(data, taxonomy, "04-01", population="all") == ["A1", "A2", "A3", "A4"]
    # A1 churned on 06-15: finished, out of the population.
    gone = {"kind": "all", "exclude_after": ["churn"]}
    assert population(data, taxonomy, "07-01", population=gone) == ["A2", "A3", "A4"]
    # A churned customer is no longer a customer either.
    assert population(data, taxonomy, "07-01", population="customers") == ["A2"]


def test_each_anchored_moment_is_just_after_its_anchor(data: JourneyData) -> None:
    def moments(score_at: object) -> list[tuple[str, str]]:
        keys = anchored_keys(data, outcome(score_at=score_at).score_at)
        shown = keys["as_of"] - ANCHOR_DELAY
        return sorted(zip(keys["account_id"], shown.dt.strftime("%m-%d %H:%M"), strict=True))

    assert moments("at_entry") == [(a, "01-01 00:00") for a in ("A1", "A2", "A3", "A4")]
    assert moments({"days_after_start": 14})[0] == ("A1", "01-15 00:00")
    assert moments("each_exposure") == [("A3", "02-15 12:00")]
    assert moments({"each_event": ["meeting"]}) == [
        ("A1", "03-05 12:00"),
        ("A2", "02-01 12:00"),
        ("A4", "03-20 12:00"),
        ("A4", "12-30 12:00"),
    ]


def test_anchored_features_see_the_anchor_but_not_what_follows(
    data: JourneyData, taxonomy: Taxonomy
) -> None:
    after_call = outcome(score_at={"each_event": ["meeting"]}, horizon_days=1)
    moments = outcome_moments(data, after_call)
    assert moments.keys is not None and len(moments.keys) == 3  # 12-30 has no full day after
    features = features_at_keys(data, moments.keys, taxonomy)
    a1 = features[features["account_id"] == "A1"].iloc[0]
    assert a1["n_event_meeting_7d"] == 1 and a1["n_purchases"] == 1  # the call, the 02-10 order
    assert features["days_since_last_touch"].max() < 1e-3


def test_a_weekly_grid_splits_a_short_span_with_the_horizon_purged(
    data: JourneyData, taxonomy: Taxonomy
) -> None:
    weekly = outcome(score_at="weekly", horizon_days=30)
    moments = outcome_moments(data, weekly, n_dates=12)
    assert all(t.day_of_week == 0 for t in moments.dates)  # Mondays
    assert moments.dates[-1] + pd.Timedelta(days=30) <= pd.Timestamp(T("12-30"))
    features = build_features(data, list(moments.dates), taxonomy)
    ts = build_outcome_set(data, taxonomy, features, weekly, moments)
    d = ts.split.dates
    assert len(d.test) == 2 and len(d.valid) == 1 and len(d.train) >= 1
    assert d.train[-1] + pd.Timedelta(days=30) <= d.valid[0]
    assert d.valid[0] + pd.Timedelta(days=30) <= d.test[0]


def test_excluded_features_are_not_inputs(data: JourneyData, taxonomy: Taxonomy) -> None:
    calendar = outcome(horizon_days=60, exclude_features=["as_of_month", "as_of_weekday"])
    moments = outcome_moments(data, calendar)
    features = build_features(data, list(moments.dates), taxonomy)
    ts = build_outcome_set(data, taxonomy, features, calendar, moments)
    assert "as_of_month" not in ts.feature_columns and "n_purchases" in ts.feature_columns
    typo = outcome(horizon_days=60, exclude_features=["as_of_moon"])
    with pytest.raises(TrainingSetError, match=r"key exclude_features: \['as_of_moon'\] are not"):
        build_outcome_set(data, taxonomy, features, typo, moments)


def test_a_grid_too_short_for_the_horizon_is_refused_with_what_is_needed(
    data: JourneyData,
) -> None:
    assert len(outcome_moments(data, outcome(horizon_days=60)).dates) == 9  # all it has
    with pytest.raises(SplitError) as caught:
        outcome_moments(data, outcome(horizon_days=120))
    message = str(caught.value)
    assert "monthly as-of dates from 2024-02-01 to 2024-09-01" in message
    assert "cannot hold train, validation and test dates 120 days apart" in message
    assert "spanning more than 240 days" in message


def test_anchored_moments_split_by_share_or_are_refused(data: JourneyData) -> None:
    rows = pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A3", "A4", "A5"],
            "as_of": pd.to_datetime(
                ["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01", "2024-05-01"], utc=True
            ),
        }
    )
    split = split_by_share(rows, horizon_days=20)
    assert split.test["account_id"].tolist() == ["A5"]
    assert split.valid["account_id"].tolist() == ["A4"]
    assert split.train["account_id"].tolist() == ["A1", "A2", "A3"]
    with pytest.raises(SplitError, match=r"\(121 days\) with a 70-day horizon: no honest split"):
        split_by_share(rows, horizon_days=70)


def test_a_split_with_one_class_is_refused(taxonomy: Taxonomy) -> None:
    frame = pd.DataFrame(
        {
            "account_id": list("abcdef"),
            "as_of": pd.to_datetime(
                [
                    "2024-01-01",
                    "2024-01-01",
                    "2024-02-01",
                    "2024-02-01",
                    "2024-03-01",
                    "2024-03-01",
                ],
                utc=True,
            ),
            "f": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "positive": [0, 1, 0, 0, 1, 0],
        }
    )
    ts = TrainingSet(
        name="x",
        frame=frame,
        feature_columns=["f"],
        label_column="positive",
        horizon_days=1,
        split=split_by_as_of(frame, valid_dates=1, test_dates=1, horizon_days=1),
    )
    with pytest.raises(OutcomeTrainingError) as caught:
        check_both_classes(ts, model_splits(ts))
    assert str(caught.value).startswith(
        "outcome 'x': the validation split (2 rows, as-of 2024-02-01 .. 2024-02-01) has "
        "labels all 0; expected positives and negatives in every split"
    )
