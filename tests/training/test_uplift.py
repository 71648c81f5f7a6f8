"""The next-action model with a "no action" control (training.next_action,
training.uplift) on a tiny seeded randomised campaign with a planted effect: item_a lifts
visits of recent buyers, item_b those of lapsed ones, doing nothing lifts neither."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.schema import NO_ACTION_CONTENT_ID, JourneyData, empty_table
from features.taxonomy import Taxonomy, load_taxonomy
from models.contract import ARM_VALUES_PARAM, CONTROL_PARAM
from models.next_content import uplift_over_control
from tests.utils.data import typed_frame
from tests.utils.models import Reversed
from training.datasets import TrainingSetError
from training.next_action import REWARD_COLUMN, build_next_action_set, label_rewards
from training.reward import Reward, RewardError
from training.uplift import paired_next, train_uplift

CAMPAIGN = pd.Timestamp("2024-06-01", tz="UTC")
ARMS = ["item_a", "item_b", NO_ACTION_CONTENT_ID]
BASE, LIFT = 0.10, 0.30
PARAMS = {"min_child_samples": 20, "n_estimators": 300, "learning_rate": 0.1}


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


def campaign(taxonomy: Taxonomy, n: int = 3000, seed: int = 1) -> JourneyData:
    """n accounts, each with one purchase 1..300 days before the campaign, each sent
    item_a, item_b or nothing at random (1/3 each), and a visit two days later with
    probability BASE, plus LIFT for item_a when the purchase was under 150 days ago and for
    item_b otherwise. Spend: 50 per visit."""
    rng = np.random.default_rng(seed)
    ids = [f"A{i:05d}" for i in range(n)]
    recency = rng.integers(1, 301, n)
    arm = rng.integers(0, 3, n)
    recent = recency < 150
    p = BASE + LIFT * (((arm == 0) & recent) | ((arm == 1) & ~recent))
    visit = rng.random(n) < p
    visitors = [i for i in range(n) if visit[i]]
    touchpoints = typed_frame(
        "touchpoints",
        {
            "event_id": [f"{a}-buy" for a in ids] + [f"{ids[i]}-visit" for i in visitors],
            "account_id": ids + [ids[i] for i in visitors],
            "ts": [str(CAMPAIGN - pd.Timedelta(days=int(r))) for r in recency]
            + [str(CAMPAIGN + pd.Timedelta(days=2))] * len(visitors),
            "channel": ["web_shop"] * n + ["website"] * len(visitors),
            "event_type": ["purchase"] * n + ["view"] * len(visitors),
            "value": [100.0] * n + [50.0] * len(visitors),
        },
        taxonomy,
    )
    exposures = typed_frame(
        "exposures",
        {
            "exposure_id": [f"{a}-x" for a in ids],
            "account_id": ids,
            "ts": [str(CAMPAIGN)] * n,
            "content_id": [ARMS[a] for a in arm],
            "channel": ["email"] * n,
            "propensity": [1 / 3] * n,
        },
        taxonomy,
    )
    return JourneyData(
        accounts=typed_frame("accounts", {"account_id": ids}, taxonomy),
        contacts=empty_table("contacts", taxonomy),
        touchpoints=touchpoints,
        content=typed_frame(
            "content",
            {"content_id": ARMS, "channel": ["email"] * 3, "phases": [[]] * 3, "roles": [[]] * 3},
            taxonomy,
        ),
        stages=empty_table("stages", taxonomy),
        exposures=exposures,
    )


@pytest.fixture(scope="module")
def trained(taxonomy: Taxonomy):  # type: ignore[no-untyped-def]
    ts = build_next_action_set(campaign(taxonomy), taxonomy, reward=Reward("response", ("view",)))
    return ts, train_uplift(ts, params=PARAMS, taxonomy=taxonomy)


def test_one_campaign_day_is_split_at_random_by_account(trained) -> None:  # type: ignore[no-untyped-def]
    ts, _ = trained
    split = ts.split
    assert ts.split_rule == "random"
    parts = [set(getattr(split, p)["account_id"]) for p in ("train", "valid", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(split.test) == pytest.approx(1500, abs=100)  # the held-out half
    assert len(split.valid) == pytest.approx(450, abs=60)
    # features as of the campaign day: the purchase before it counts, the visit after not
    assert (ts.frame["as_of"] == CAMPAIGN).all()
    assert ts.frame[REWARD_COLUMN].isin([0.0, 1.0]).all()


def test_uplift_ranking_recovers_the_planted_effect(trained, taxonomy: Taxonomy) -> None:  # type: ignore[no-untyped-def]
    ts, result = trained
    test = ts.split.test
    from training.uplift import arm_values, evaluate

    d, pick, _ = evaluate(result.estimator, ts, test, arm_values(ts), taxonomy)
    recent = test["days_since_last_touch"].to_numpy() < 150
    uplift = d.q - d.q[:, [ts.control]]
    a, b = ARMS.index("item_a"), ARMS.index("item_b")
    assert uplift[recent, a].mean() > uplift[recent, b].mean() + 0.10
    assert uplift[~recent, b].mean() > uplift[~recent, a].mean() + 0.10
    assert (pick[recent] == a).mean() > 0.8 and (pick[~recent] == b).mean() > 0.8


def test_the_policy_beats_each_single_action_and_fills_the_gate(trained) -> None:  # type: ignore[no-untyped-def]
    _, result = trained
    m = result.metrics
    truth = BASE + LIFT  # the planted best: always the right item
    assert m["model.dr_value_ci_low"] <= truth <= m["model.dr_value_ci_high"]
    for arm in ARMS:
        assert m["model.dr_value"] > m[f"baseline_action_{arm}.dr_value"]
    assert m["model.dr_gain_over_best_action_ci_low"] > 0  # paired: significantly better
    gate = result.gate
    assert gate is not None and gate.passed and gate.metric == "policy_value_dr"
    assert gate.baseline.startswith("best single action: item_")
    assert result.params[CONTROL_PARAM] == NO_ACTION_CONTENT_ID
    assert "| learned policy (best uplift) |" in result.report_markdown


def test_promotion_compares_two_policies_paired_on_the_test_decisions(trained) -> None:  # type: ignore[no-untyped-def]
    """Challenger minus champion DR value, decision by decision: exactly 0 for the same
    model, above 0 against a model ranking the planted effect backwards."""
    ts, result = trained
    model = result.estimator
    assert paired_next(model, model, ts) == (0.0, 0.0, 0.0)
    value, low, high = paired_next(model, Reversed(model), ts)
    assert 0 < low <= value <= high


def test_value_reward_sums_the_values_in_the_window(taxonomy: Taxonomy) -> None:
    tp = typed_frame(
        "touchpoints",
        {
            "event_id": ["e1", "e2", "e3", "e4"],
            "account_id": ["A", "A", "A", "B"],
            "ts": ["2024-06-01", "2024-06-05", "2024-06-20", "2024-06-02"],
            "channel": ["web_shop"] * 4,
            "event_type": ["purchase", "purchase", "purchase", "view"],
            "value": [10.0, 5.0, 7.0, None],
        },
        taxonomy,
    )
    decisions = pd.DataFrame(
        {"account_id": ["A", "B"], "ts": pd.to_datetime(["2024-06-01", "2024-06-01"], utc=True)}
    )
    spend = label_rewards(decisions, tp, Reward("value"), taxonomy)
    assert spend.tolist() == [15.0, 0.0]  # e3 is after the 7-day window
    visits = label_rewards(decisions, tp, Reward("response", ("view",)), taxonomy)
    assert visits.tolist() == [0.0, 1.0]
    with pytest.raises(RewardError, match="not event types of the taxonomy"):
        Reward("response", ("visit",)).types(taxonomy)


def test_a_split_without_rewards_is_refused(taxonomy: Taxonomy) -> None:
    data = campaign(taxonomy, n=300)
    ts = build_next_action_set(data, taxonomy, reward=Reward("response", ("click",)))
    with pytest.raises(TrainingSetError, match="no decision has a positive response"):
        train_uplift(ts, params=PARAMS, taxonomy=taxonomy)


def test_data_without_the_control_are_refused(taxonomy: Taxonomy) -> None:
    data = campaign(taxonomy, n=60)
    data.exposures = data.exposures[data.exposures["content_id"] != NO_ACTION_CONTENT_ID]
    with pytest.raises(TrainingSetError, match="no decision of 'no_action'"):
        build_next_action_set(data, taxonomy, reward=Reward())


def test_serving_ranks_by_uplift_only_for_a_model_with_a_control() -> None:
    p = np.array([[0.30, 0.12, 0.10], [0.05, 0.08, 0.10]])
    assert uplift_over_control(p, ARMS, {}) is p
    params = {CONTROL_PARAM: NO_ACTION_CONTENT_ID, ARM_VALUES_PARAM: "{}"}
    out = uplift_over_control(p, ARMS, params)
    assert out[0, 0] == pytest.approx(0.20) and out[0, 1] == pytest.approx(0.02)
    assert np.isnan(out[:, 2]).all()  # the control is never a candidate
    assert np.isnan(out[1]).all()  # doing nothing is predicted best
    valued = uplift_over_control(
        p, ARMS, {**params, ARM_VALUES_PARAM: '{"item_a": 2.0, "item_b": 4.0, "no_action": 1.0}'}
    )
    # P x value - the control's, in units of the largest value (4)
    assert valued[0, 0] == pytest.approx((0.60 - 0.10) / 4)
    assert valued[0, 1] == pytest.approx((0.48 - 0.10) / 4)
