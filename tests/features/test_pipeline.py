"""The point-in-time feature pipeline on tiny hand-built event sets with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.pipeline import (
    FEATURE_PIPELINE_VERSION,
    FeatureError,
    build_account_features,
    build_features,
    feature_definitions,
)
from features.schema import JourneyData
from features.taxonomy import Taxonomy, load_taxonomy
from tests.utils.data import AS_OF, make_data


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="module")
def data(taxonomy: Taxonomy) -> JourneyData:
    return make_data(taxonomy)


@pytest.fixture(scope="module")
def rows(data: JourneyData, taxonomy: Taxonomy) -> pd.DataFrame:
    return build_features(data, [AS_OF], taxonomy)


def row(rows: pd.DataFrame, account_id: str) -> pd.Series:
    return rows.set_index("account_id").loc[account_id]


def test_one_row_per_account_created_before_as_of(rows: pd.DataFrame) -> None:
    assert list(rows["account_id"]) == ["A001", "A002"]
    assert (rows["as_of"] == AS_OF).all()


def test_windowed_counts(rows: pd.DataFrame) -> None:
    a = row(rows, "A001")
    assert [a[f"n_touchpoints_{w}d"] for w in (7, 30, 90, 365)] == [2, 3, 5, 7]
    assert [a[f"n_content_type_whitepaper_{w}d"] for w in (7, 30, 90, 365)] == [1, 2, 2, 2]
    assert [a[f"n_event_download_{w}d"] for w in (7, 30, 90, 365)] == [1, 2, 2, 2]
    assert a["n_channel_webinar_90d"] == 1 and a["n_channel_webinar_30d"] == 0
    # E4 has no contact, E6 is older than a year
    assert [a[f"n_role_it_{w}d"] for w in (7, 30, 90, 365)] == [2, 3, 3, 4]
    assert a["n_role_economic_buyer_90d"] == 1


def test_content_phase_counts_every_phase_the_item_fits(
    rows: pd.DataFrame, data: JourneyData
) -> None:
    wp = data.content[data.content["content_type"] == "whitepaper"].iloc[0]
    a = row(rows, "A001")
    for phase in wp["phases"]:
        assert a[f"n_content_phase_{phase}_30d"] == 2
    assert a["n_content_phase_expansion_30d"] == (2 if "expansion" in wp["phases"] else 0)


def test_recency(rows: pd.DataFrame) -> None:
    a = row(rows, "A001")
    assert a["days_since_event_download"] == pytest.approx(2)
    assert a["days_since_event_purchase"] == pytest.approx(100)
    assert a["days_since_event_support_ticket"] == pytest.approx(5)
    assert math.isnan(a["days_since_event_churn"])  # the churn is after as-of
    assert a["days_since_first_touch"] == pytest.approx(500)
    assert a["days_since_last_touch"] == pytest.approx(2)
    assert a["is_customer"] == 1 and a["n_purchases"] == 1 and a["n_churns"] == 0


def test_trends(rows: pd.DataFrame) -> None:
    a = row(rows, "A001")
    # last 30 days: E1, E2, E8; the 30 before: E3, E5
    assert a["trend_touchpoints_30d"] == 3 - 2
    assert a["trend_engagement_30d"] == 2 - 1  # downloads vs the attend (views are not)
    assert a["trend_support_tickets_30d"] == 1


def test_buying_center(rows: pd.DataFrame) -> None:
    a = row(rows, "A001")
    assert a["n_contacts"] == 2  # K2 left
    assert a["n_contacts_left_365d"] == 1 and a["economic_buyer_left_365d"] == 1
    assert a["n_roles_covered"] == 2
    assert a["n_contacts_engaged_90d"] == 3 and a["n_roles_engaged_90d"] == 3
    # of the two roles still present (it, finance), both were engaged
    assert a["share_roles_engaged_90d"] == pytest.approx(1.0)


def test_engagement_kpis(rows: pd.DataFrame) -> None:
    a = row(rows, "A001")
    assert a["n_exposures_90d"] == 3
    assert a["n_responses_90d"] == 1  # X3's response happens at as-of, not before
    assert a["response_rate_90d"] == pytest.approx(1 / 3)
    assert a["dwell_minutes_90d"] == pytest.approx(40.0)
    assert a["mean_dwell_minutes_90d"] == pytest.approx(20.0)
    assert a["revenue_365d"] == pytest.approx(20000.0)
    b = row(rows, "A002")
    assert math.isnan(b["response_rate_90d"]) and b["n_exposures_90d"] == 0


def test_firmographics_and_crm_phase(rows: pd.DataFrame) -> None:
    a, b = row(rows, "A001"), row(rows, "A002")
    assert a["employees"] == 1000 and a["log_employees"] == pytest.approx(3.0)
    assert a["industry"] == "software" and b["region"] == "nordics"
    assert a["account_age_days"] == pytest.approx(400)
    assert a["crm_phase"] == "onboarding" and a["days_in_crm_phase"] == pytest.approx(90)
    assert pd.isna(b["crm_phase"]) and math.isnan(b["days_in_crm_phase"])
    assert math.isnan(b["annual_revenue"])


def test_events_at_or_after_as_of_change_nothing(data: JourneyData, taxonomy: Taxonomy) -> None:
    before = build_features(data, [AS_OF], taxonomy)
    later = pd.Timedelta(days=1)
    extra = data.touchpoints.iloc[[0, 1, 4]].copy()
    extra["event_id"] = ["N1", "N2", "N3"]
    extra["ts"] = [AS_OF, AS_OF + later, AS_OF + 30 * later]
    exposures = data.exposures.iloc[[0]].copy()
    exposures["exposure_id"] = "NX"
    exposures["ts"] = AS_OF
    stages = data.stages.iloc[[0]].copy()
    stages["ts"] = AS_OF
    grown = JourneyData(
        data.accounts,
        data.contacts,
        pd.concat([data.touchpoints, extra], ignore_index=True),
        data.content,
        pd.concat([data.stages, stages], ignore_index=True),
        pd.concat([data.exposures, exposures], ignore_index=True),
    )
    pd.testing.assert_frame_equal(build_features(grown, [AS_OF], taxonomy), before)


def test_several_as_of_dates_stack_rows(data: JourneyData, taxonomy: Taxonomy) -> None:
    dates = [AS_OF - pd.Timedelta(days=30), AS_OF]
    frame = build_features(data, dates, taxonomy)
    assert list(zip(frame["as_of"], frame["account_id"], strict=True)) == [
        (dates[0], "A001"),
        (dates[0], "A002"),
        (dates[1], "A001"),
        (dates[1], "A002"),
    ]
    earlier = frame[frame["as_of"] == dates[0]].set_index("account_id")
    assert earlier.loc["A001", "n_touchpoints_30d"] == 2  # E3 and E5 only


def test_account_features_equal_batch_row(data: JourneyData, taxonomy: Taxonomy) -> None:
    batch = build_features(data, [AS_OF], taxonomy).set_index("account_id")
    for account_id in ("A001", "A002"):
        online = build_account_features(data, account_id, AS_OF, taxonomy)
        expected = batch.loc[account_id]
        for name in feature_definitions(taxonomy):
            assert (pd.isna(online[name]) and pd.isna(expected[name])) or (
                online[name] == expected[name]
            ), name


def test_definitions_cover_every_column(rows: pd.DataFrame, taxonomy: Taxonomy) -> None:
    definitions = feature_definitions(taxonomy)
    assert list(rows.columns[2:]) == list(definitions)
    assert len(definitions) > 300
    assert definitions["n_content_type_whitepaper_30d"] == (
        "touchpoints with content type of the touchpoint's content 'Whitepaper' in the last 30 days"
    )
    assert all(text and "\n" not in text for text in definitions.values())
    assert FEATURE_PIPELINE_VERSION


def test_counts_are_integers_and_numbers_floats(rows: pd.DataFrame) -> None:
    assert rows["n_touchpoints_30d"].dtype == np.int32
    assert rows["days_since_last_touch"].dtype == np.float64
    assert isinstance(rows["crm_phase"].dtype, pd.CategoricalDtype)


def test_bad_inputs_raise_clear_errors(data: JourneyData, taxonomy: Taxonomy) -> None:
    with pytest.raises(FeatureError, match="no as-of dates"):
        build_features(data, [], taxonomy)
    with pytest.raises(FeatureError, match="engine 'spark'"):
        build_features(data, [AS_OF], taxonomy, engine="spark")  # type: ignore[arg-type]
    with pytest.raises(FeatureError, match="account 'nope' is not in the accounts table"):
        build_account_features(data, "nope", AS_OF, taxonomy)
    with pytest.raises(FeatureError, match="created after"):
        build_account_features(data, "A003", AS_OF, taxonomy)


def test_account_features_equal_batch_rows_on_simulated_journeys(taxonomy: Taxonomy) -> None:
    from features.simulate import simulate

    data = simulate(60, seed=5, months=12, taxonomy=taxonomy).data
    as_of = data.touchpoints["ts"].max().normalize() - pd.Timedelta(days=20)
    batch = build_features(data, [as_of], taxonomy).set_index("account_id")
    assert batch["n_touchpoints_365d"].sum() > 0
    for account_id in batch.index[:15]:
        online = build_account_features(data, str(account_id), as_of, taxonomy)
        pd.testing.assert_series_equal(
            online.drop(["account_id"]), batch.loc[account_id], check_names=False
        )


def test_touchpoints_in_time_order_give_the_same_features(taxonomy: Taxonomy) -> None:
    """Touchpoints in time order are read as a prefix (views); shuffled ones by position.
    Both give the same rows."""
    from dataclasses import replace

    from features.pipeline.prepare import prepare_events
    from features.simulate import SimulationParams, simulate

    data = simulate(
        80, seed=9, months=14, taxonomy=taxonomy, params=SimulationParams.profile("legacy")
    ).data
    ordered = replace(data, touchpoints=data.touchpoints.sort_values("ts", ignore_index=True))
    shuffled = replace(data, touchpoints=ordered.touchpoints.sample(frac=1.0, random_state=3))
    assert prepare_events(ordered, taxonomy).in_time_order
    assert not prepare_events(shuffled, taxonomy).in_time_order
    end = data.touchpoints["ts"].max().normalize()
    as_of = [end - pd.Timedelta(days=d) for d in (0, 45, 300)]
    expected = build_features(shuffled, as_of, taxonomy)
    assert expected["n_touchpoints_30d"].sum() > 0
    pd.testing.assert_frame_equal(build_features(ordered, as_of, taxonomy), expected)
