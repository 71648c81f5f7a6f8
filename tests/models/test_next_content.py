"""The next-content model's pure parts on hand-built frames: candidate rows, eligibility,
topic engagement and the top-1 pick."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.schema import JourneyData
from features.taxonomy import Taxonomy, load_taxonomy
from models import next_content as nc


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


def _content() -> pd.DataFrame:
    """Three items: awareness/consideration whitepaper on security for IT; a selection live
    demo on analytics for the economic buyer; an onboarding training on security."""
    return pd.DataFrame(
        {
            "content_id": ["W1", "D1", "T1"],
            "content_type": ["whitepaper", "live_demo", "training"],
            "phases": [["awareness", "consideration"], ["selection"], ["onboarding"]],
            "roles": [["it", "economic_buyer"], ["economic_buyer"], ["end_user"]],
            "topic": ["security", "analytics", "security"],
            "value": [2.0, 3.0, 1.0],
        }
    )


def _accounts(taxonomy: Taxonomy) -> pd.DataFrame:
    """Two decisions: account A in CRM phase consideration, account B in purchase."""
    cols = nc.account_input_columns(taxonomy)
    frame = pd.DataFrame(0.0, index=range(2), columns=[c for c in cols if c != "crm_phase"])
    frame.insert(0, "account_id", ["A", "B"])
    frame["crm_phase"] = pd.Categorical(["consideration", "purchase"], categories=taxonomy.phases)
    frame.loc[0, "n_content_type_whitepaper_90d"] = 4.0
    frame.loc[1, "n_content_type_live_demo_90d"] = 2.0
    frame.loc[0, "n_content_phase_consideration_30d"] = 3.0
    frame.loc[0, "n_content_phase_selection_30d"] = 1.0
    frame.loc[0, "n_role_it_90d"] = 5.0
    frame.loc[0, "n_topic_security_ever"] = 6.0
    frame.loc[0, "n_topic_analytics_ever"] = 2.0
    return frame


def test_candidate_rows_are_every_decision_times_every_item(taxonomy: Taxonomy) -> None:
    x = nc.candidate_features(
        _accounts(taxonomy), pd.Series(["it", "finance"]), _content(), taxonomy
    )
    assert len(x) == 6
    assert "account_id" not in x.columns
    assert x.columns[-len(nc.CANDIDATE_COLUMNS) :].tolist() == nc.CANDIDATE_COLUMNS
    assert x["content_type"].astype(str).tolist() == ["whitepaper", "live_demo", "training"] * 2
    # A in consideration: the whitepaper fits, the demo fits the next phase (selection).
    assert x["fits_phase"].tolist() == [1, 0, 0, 0, 0, 0]
    assert x["fits_next_phase"].tolist() == [0, 1, 0, 0, 0, 1]  # B: purchase -> onboarding
    # A: awareness before consideration (whitepaper); B: selection before purchase (demo).
    assert x["fits_previous_phase"].tolist() == [1, 0, 0, 0, 1, 0]
    assert x["fits_role"].tolist() == [1, 0, 0, 0, 0, 0]  # IT fits the whitepaper only
    assert x["type_touchpoints_90d"].tolist() == [4, 0, 0, 0, 2, 0]
    assert x["role_touchpoints_90d"].tolist() == [5, 5, 5, 0, 0, 0]
    # A's content touchpoints of 30 days: 3 consideration, 1 selection.
    assert x["phase_share_30d"].iloc[:3].tolist() == [0.75, 0.25, 0.0]
    assert np.isnan(x["phase_share_30d"].iloc[3])  # B has none
    assert x["topic_touchpoints_ever"].iloc[:3].tolist() == [6, 2, 6]
    assert x["topic_share_ever"].iloc[:3].tolist() == [0.75, 0.25, 0.75]
    assert x["topic_rank_ever"].iloc[:3].tolist() == [0, 1, 0]


def test_interaction_features_equal_a_direct_computation(taxonomy: Taxonomy) -> None:
    acc = _accounts(taxonomy)
    for p in taxonomy.phases:
        acc[f"days_since_content_phase_{p}"] = np.nan  # never touched
    acc.loc[0, "days_since_content_phase_awareness"] = 40.0
    acc.loc[0, "days_since_content_phase_consideration"] = 3.0
    acc.loc[1, "days_since_content_phase_onboarding"] = 12.0
    acc.loc[0, "n_content_phase_consideration_365d"] = 9.0
    acc.loc[0, "n_content_phase_onboarding_365d"] = 3.0
    content = _content().assign(channel=["email", "sales_call", None])

    x = nc.candidate_features(acc, ["it", "finance"], content, taxonomy)

    # How much more A engages with the item's topic than with its average topic.
    ever = acc[[f"n_topic_{t}_ever" for t in taxonomy.topic_names]].to_numpy(dtype=float)
    mean_log = np.log1p(ever).mean(axis=1)
    expected = [np.log1p(6) - mean_log[0], np.log1p(2) - mean_log[0], np.log1p(6) - mean_log[0]]
    np.testing.assert_allclose(x["topic_interest_ever"].iloc[:3], expected, rtol=1e-6)
    np.testing.assert_allclose(x["topic_interest_ever"].iloc[3:], [0.0] * 3, atol=1e-7)
    # Days since the account last touched content of any phase the item fits: A touched
    # consideration 3 days ago (the whitepaper fits awareness and consideration), never
    # selection (the demo); B touched onboarding 12 days ago (the training).
    days = x["days_since_phase"].tolist()
    assert days[0] == 3.0 and np.isnan(days[1]) and np.isnan(days[2])
    assert np.isnan(days[3]) and np.isnan(days[4]) and days[5] == 12.0
    # The share of A's content touches of 365 days on the item's phases: 9 of 12.
    assert x["phase_share_365d"].iloc[:3].tolist() == [0.75, 0.0, 0.25]
    assert x["content_channel"].astype(object).iloc[:3].tolist()[:2] == ["email", "sales_call"]
    assert pd.isna(x["content_channel"].iloc[2])


def test_an_item_described_by_nothing_fits_everything_and_engages_nothing(
    taxonomy: Taxonomy,
) -> None:
    bare = pd.DataFrame({"content_id": ["G1"], "phases": [[]], "roles": [[]]})
    bare[["content_type", "topic"]] = np.nan

    x = nc.candidate_features(_accounts(taxonomy), pd.Series(["it", None]), bare, taxonomy)

    # it fits every phase and role (A in consideration, B in purchase; IT and no role)
    assert x["fits_phase"].tolist() == [1, 1] and x["fits_next_phase"].tolist() == [1, 1]
    assert x["fits_role"].iloc[0] == 1 and np.isnan(x["fits_role"].iloc[1])
    assert x["n_content_phases"].tolist() == [len(taxonomy.phases)] * 2
    # without a type or topic there is no engagement with them: missing, not another's count
    assert x["content_type"].isna().all() and x["content_topic"].isna().all()
    for column in ("type_touchpoints_90d", "days_since_type", "topic_touchpoints_ever"):
        assert x[column].isna().all(), column
    assert x["topic_rank_ever"].isna().all() and x["topic_share_ever"].isna().all()


def test_candidate_rows_for_given_items(taxonomy: Taxonomy) -> None:
    x = nc.candidate_features(
        _accounts(taxonomy), ["it", None], _content(), taxonomy, item_index=np.array([1, 0])
    )
    assert x["content_value"].tolist() == [3.0, 2.0]
    assert x["fits_next_phase"].tolist() == [1, 0]
    assert np.isnan(x["fits_role"].iloc[1])  # unknown role
    pairs = nc.candidate_features(
        _accounts(taxonomy),
        ["it", "it"],
        _content(),
        taxonomy,
        item_index=np.array([2, 2, 0]),
        decision_index=np.array([0, 1, 1]),
    )
    assert pairs["fits_next_phase"].tolist() == [0, 1, 0]
    assert pairs["crm_phase"].astype(str).tolist() == ["consideration", "purchase", "purchase"]


def test_candidate_features_reject_unknown_values(taxonomy: Taxonomy) -> None:
    content = _content()
    content.loc[0, "topic"] = "astrology"
    with pytest.raises(nc.NextContentModelError, match="astrology"):
        nc.candidate_features(_accounts(taxonomy), ["it", "it"], content, taxonomy)
    with pytest.raises(nc.NextContentModelError, match="one item per decision"):
        nc.candidate_features(
            _accounts(taxonomy), ["it", "it"], _content(), taxonomy, item_index=np.array([0])
        )


def test_eligible_items_follow_the_crm_phase(taxonomy: Taxonomy) -> None:
    phases = taxonomy.phases
    codes = np.array([phases.index("awareness"), phases.index("onboarding"), -1])
    eligible = nc.eligible_items(_content(), codes, taxonomy)
    assert eligible.tolist() == [
        [True, False, False],
        [False, False, True],
        [True, True, True],  # unknown phase: every item
    ]
    # A phase no item fits (impact) makes every item eligible, as the logging policy does.
    assert nc.eligible_items(_content(), np.array([phases.index("impact")]), taxonomy).all()


def test_top1_picks_the_best_eligible_item() -> None:
    scores = np.array([[0.9, 0.2, 0.3], [0.1, 0.4, 0.4], [0.5, 0.6, 0.7]])
    eligible = np.array([[False, True, True], [True, True, True], [False, False, False]])
    assert nc.top1(scores, eligible).tolist() == [2, 1, 2]


def test_topic_engagement_counts_before_as_of(taxonomy: Taxonomy) -> None:
    ts = pd.to_datetime(
        ["2023-01-10", "2024-05-01", "2024-06-01", "2024-06-30", "2024-07-05"], utc=True
    )
    touchpoints = pd.DataFrame(
        {
            "account_id": ["A", "A", "A", "B", "A"],
            "ts": ts,
            "content_id": ["W1", "D1", None, "T1", "W1"],
        }
    )
    data = JourneyData(
        accounts=pd.DataFrame(),
        contacts=pd.DataFrame(),
        touchpoints=touchpoints,
        content=_content(),
        stages=pd.DataFrame(),
    )
    keys = pd.DataFrame(
        {
            "account_id": ["A", "B", "A"],
            "as_of": pd.to_datetime(["2024-07-01", "2024-07-01", "2023-02-01"], utc=True),
        }
    )
    out = nc.topic_engagement(data, keys, taxonomy)
    assert out.columns.tolist() == nc.topic_columns(taxonomy)
    assert out["n_topic_security_ever"].tolist() == [1, 1, 1]
    assert out["n_topic_security_365d"].tolist() == [0, 1, 1]  # 2023-01-10 is > 365 days back
    assert out["n_topic_analytics_ever"].tolist() == [1, 0, 0]


def test_fit_predicts_response_from_fit_features(taxonomy: Taxonomy) -> None:
    rng = np.random.default_rng(3)
    n = 4000
    x = pd.DataFrame({"fits_role": rng.integers(0, 2, n), "noise": rng.random(n)})
    y = (rng.random(n) < np.where(x["fits_role"] == 1, 0.5, 0.1)).astype(int)
    est = nc.fit(
        x[:3000], y[:3000], x[3000:], y[3000:], params={"n_estimators": 300, "learning_rate": 0.1}
    )
    p = nc.predict_proba(est, pd.DataFrame({"fits_role": [0, 1], "noise": [0.5, 0.5]}))
    assert p[0] == pytest.approx(0.1, abs=0.04)
    assert p[1] == pytest.approx(0.5, abs=0.06)
    with pytest.raises(nc.NextContentModelError, match="all 0"):
        nc.fit(x, np.zeros(n, dtype=int), x, y)


def test_small_training_sets_grow_smaller_trees_slower() -> None:
    small = nc.merged_params(rows=nc.SMALL_DATA_ROWS - 1)
    assert {k: small[k] for k in nc.SMALL_DATA_PARAMS} == nc.SMALL_DATA_PARAMS
    assert nc.merged_params(rows=nc.SMALL_DATA_ROWS) == nc.DEFAULT_PARAMS
    assert nc.merged_params() == nc.DEFAULT_PARAMS
    assert nc.merged_params({"num_leaves": 15}, rows=10)["num_leaves"] == 15  # overrides win
    rng = np.random.default_rng(5)
    x = pd.DataFrame({"fits_role": rng.integers(0, 2, 2000)})
    y = (rng.random(2000) < np.where(x["fits_role"] == 1, 0.5, 0.1)).astype(int)
    est = nc.fit(x[:1500], y[:1500], x[1500:], y[1500:])
    assert est.get_params()["num_leaves"] == nc.SMALL_DATA_PARAMS["num_leaves"]
    assert est.get_params()["learning_rate"] == nc.SMALL_DATA_PARAMS["learning_rate"]
    assert est.get_params()["extra_trees"] is True
    # the randomized splits still find the signal
    p = nc.predict_proba(est, pd.DataFrame({"fits_role": [0, 1]}))
    assert p[0] == pytest.approx(0.1, abs=0.05)
    assert p[1] == pytest.approx(0.5, abs=0.08)


def test_candidate_rows_carry_the_item_its_slot_and_the_decision_calendar(
    taxonomy: Taxonomy,
) -> None:
    accounts = _accounts(taxonomy)
    accounts["as_of_month"] = [3, 3]
    accounts["as_of_weekday"] = [0, 0]
    roles = pd.Series(["it", "finance"])
    served = nc.candidate_features(accounts, roles, _content(), taxonomy)
    assert served["content_item"].astype(str).tolist() == ["W1", "D1", "T1"] * 2
    assert list(served["content_item"].cat.categories) == ["W1", "D1", "T1"]
    # serving: every item as if shown first, in the as-of's month and weekday
    assert served["position"].tolist() == [nc.SERVING_POSITION] * 6
    assert set(served["decision_month"]) == {3.0} and set(served["decision_weekday"]) == {0.0}
    # training: the logged exposure's slot and time (2024-05-04 is a Saturday)
    logged = nc.candidate_features(
        accounts,
        roles,
        _content(),
        taxonomy,
        item_index=np.array([2, 0]),
        shown_at=pd.Series(pd.to_datetime(["2024-05-04", "2024-12-30"], utc=True)),
        position=np.array([3.0, np.nan]),
    )
    assert logged["content_item"].astype(str).tolist() == ["T1", "W1"]
    assert logged["position"].tolist()[0] == 3.0 and np.isnan(logged["position"].iloc[1])
    assert logged["decision_month"].tolist() == [5.0, 12.0]
    assert logged["decision_weekday"].tolist() == [5.0, 0.0]


def test_candidate_arrays_equal_the_candidate_rows(taxonomy: Taxonomy) -> None:
    """Serving's arrays of one account give candidate_features' values: numbers equal,
    categories as the codes of their levels."""
    content = _content()
    catalog = nc.catalog_arrays(content, taxonomy)
    accounts = _accounts(taxonomy)
    accounts.loc[1, "n_role_it_90d"] = np.nan
    roles = ["it", None, "finance"]
    for r in range(len(accounts)):
        one = accounts.iloc[[r] * len(roles)].reset_index(drop=True)
        frame = nc.candidate_features(one, pd.Series(roles, dtype=object), content, taxonomy)
        row = one.iloc[0]
        values = {str(c): v for c, v in row.items()}
        values["crm_phase"] = str(row["crm_phase"])
        arrays = nc.candidate_arrays(values, roles, taxonomy, catalog)
        assert list(arrays) == nc.CANDIDATE_COLUMNS
        dtypes = nc.categorical_dtypes(catalog)
        for column in nc.CANDIDATE_COLUMNS:
            got, want = arrays[column], frame[column]
            if column in dtypes:
                assert got.tolist() == want.cat.codes.tolist(), column
            else:
                assert got.dtype == want.dtype, column
                np.testing.assert_array_equal(got, want.to_numpy(), err_msg=column)
    # one item per decision
    values = {str(c): v for c, v in accounts.iloc[0].items()}
    values["crm_phase"] = "consideration"
    items = np.array([2, 0])
    pairs = nc.candidate_arrays(values, ["it", "it"], taxonomy, catalog, item_index=items)
    assert pairs["content_item"].tolist() == [2, 0]
    assert pairs["fits_role"].tolist() == [0.0, 1.0]
