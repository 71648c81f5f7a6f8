"""Off-policy values with intervals (training.ope) on synthetic randomised logs whose true
policy values are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.metrics import MetricError
from training.ope import (
    LOGGING,
    MODEL,
    RANDOM,
    LoggedDecisions,
    account_folds,
    best_single_action,
    compare_policies,
    mean_estimate,
    paired_difference,
    recalibrated_reward_model,
)

# Three arms; arm 1 is best for x = 1, arm 2 for x = 0; arm 0 is the control.
MEANS = np.array([[0.10, 0.15, 0.30], [0.10, 0.35, 0.12]])  # [x, arm]


def randomised_log(
    n: int, rng: np.random.Generator, *, q_noise: float
) -> tuple[LoggedDecisions, np.ndarray]:
    """Uniform logging over three arms (propensity 1/3), Bernoulli rewards, and the
    covariate x of each decision; ``q`` is the true means plus noise (a wrong reward
    model)."""
    x = rng.integers(0, 2, n)
    logged = rng.integers(0, 3, n)
    reward = (rng.random(n) < MEANS[x, logged]).astype(np.float64)
    q = MEANS[x] + rng.normal(0.0, q_noise, (n, 3))
    decisions = LoggedDecisions(
        q=q,
        eligible=np.ones((n, 3), dtype=bool),
        logged=logged,
        propensity=np.full(n, 1 / 3),
        reward=reward,
        actions=["no_action", "a", "b"],
    )
    return decisions, x


def test_intervals_cover_the_true_values_about_95_in_100() -> None:
    rng = np.random.default_rng(11)
    best = np.array([2, 1])  # the best arm for x = 0 and x = 1
    # true values: the policy taking the best arm (x is 0 or 1 with equal odds), each arm
    truth = {MODEL: (0.30 + 0.35) / 2, "a": 0.25, "b": 0.21, "no_action": 0.10}
    covered = {(who, est): 0 for who in truth for est in ("ips", "snips", "dr")}
    runs = 300
    for _ in range(runs):
        d, x = randomised_log(1500, rng, q_noise=0.05)
        values = compare_policies(d, best[x])
        for who, target in truth.items():
            for est in ("ips", "snips", "dr"):
                covered[(who, est)] += getattr(values[who], est).covers(target)
    for key, hits in covered.items():
        # 95 % intervals: about 285 of 300, binomial spread about +-4 (and the truth is the
        # population value, while x's mix varies per log: a little more spread).
        assert 270 <= hits <= 298, (key, hits)


def test_single_actions_random_and_logging_are_valued_on_the_same_decisions() -> None:
    d, _ = randomised_log(30_000, np.random.default_rng(3), q_noise=0.0)
    values = compare_policies(d, np.zeros(len(d.logged), dtype=np.int64))
    assert values["a"].dr.value == pytest.approx(0.25, abs=0.02)
    assert values["b"].dr.value == pytest.approx(0.21, abs=0.02)
    assert values["no_action"].dr.value == pytest.approx(0.10, abs=0.02)
    # always no_action is what the model here does
    assert values[MODEL].ips.value == pytest.approx(values["no_action"].ips.value)
    assert values[RANDOM].dr.value == pytest.approx((0.25 + 0.21 + 0.10) / 3, abs=0.02)
    assert values[LOGGING].dr.value == pytest.approx(d.reward.mean())
    assert best_single_action(values, d.actions) == "a"


def test_paired_difference_is_tighter_than_two_separate_intervals() -> None:
    d, _ = randomised_log(5000, np.random.default_rng(5), q_noise=0.02)
    values = compare_policies(d, np.ones(len(d.logged), dtype=np.int64))
    gap = paired_difference(values[MODEL], values["b"])
    assert gap.value == pytest.approx(values[MODEL].dr.value - values["b"].dr.value)
    separate = (values[MODEL].dr.high - values[MODEL].dr.low) + (
        values["b"].dr.high - values["b"].dr.low
    )
    assert gap.high - gap.low < separate


def test_an_action_never_eligible_is_not_a_single_action_policy() -> None:
    d, _ = randomised_log(100, np.random.default_rng(1), q_noise=0.0)
    eligible = d.eligible.copy()
    eligible[:, 2] = False
    d2 = LoggedDecisions(d.q, eligible, d.logged, d.propensity, d.reward, d.actions)
    values = compare_policies(d2, np.zeros(100, dtype=np.int64))
    assert "b" not in values and "a" in values


def test_mean_estimate_and_shapes_are_checked() -> None:
    e = mean_estimate(np.array([0.0, 1.0, 0.0, 1.0]))
    assert e.value == 0.5 and e.low < 0.5 < e.high
    with pytest.raises(MetricError, match="action names"):
        LoggedDecisions(
            np.zeros((3, 2)),
            np.ones((3, 2), bool),
            np.zeros(3, int),
            np.ones(3),
            np.zeros(3),
            ["a"],
        )


def test_where_an_action_is_not_eligible_its_policy_does_what_the_log_did() -> None:
    d, x = randomised_log(60_000, np.random.default_rng(9), q_noise=0.05)
    eligible = d.eligible.copy()
    eligible[x == 0, 2] = False  # b only for x = 1 (its logged rows there stay: a test of
    # the estimator, not of a log)
    values = compare_policies(
        LoggedDecisions(d.q, eligible, d.logged, d.propensity, d.reward, d.actions),
        np.zeros(len(x), dtype=np.int64),
    )
    # b where x = 1, the uniform logging policy where x = 0
    truth = 0.5 * MEANS[1, 2] + 0.5 * MEANS[0].mean()
    for est in ("ips", "snips", "dr"):
        assert getattr(values["b"], est).covers(truth), est


def _clustered_log(rng: np.random.Generator, *, grouped: bool) -> LoggedDecisions:
    """60 accounts x 50 decisions, uniform logging over three arms; each account's response
    is shifted by its own effect (+-0.25), which the reward model does not know, so an
    account's decisions are not independent."""
    accounts, per = 60, 50
    effect = rng.choice([-0.25, 0.25], accounts)
    account = np.repeat(np.arange(accounts), per)
    n = len(account)
    means = np.array([0.2, 0.35, 0.3])
    logged = rng.integers(0, 3, n)
    reward = (rng.random(n) < means[logged] + effect[account]).astype(np.float64)
    return LoggedDecisions(
        q=np.tile(means, (n, 1)),
        eligible=np.ones((n, 3), dtype=bool),
        logged=logged,
        propensity=np.full(n, 1 / 3),
        reward=reward,
        actions=["no_action", "a", "b"],
        groups=account.astype(str) if grouped else None,
    )


def test_intervals_over_accounts_cover_what_independent_ones_miss() -> None:
    """With each decision's account the intervals resample accounts and cover the true
    value about 95 in 100 times; taken as independent, the same decisions' intervals are too
    narrow (about 6 in 10 here)."""
    runs, truth = 150, 0.35  # always "a": the account effects average out
    covered = {True: {"ips": 0, "snips": 0, "dr": 0}, False: {"ips": 0, "snips": 0, "dr": 0}}
    for grouped in (True, False):
        rng = np.random.default_rng(5)  # the same logs both ways
        for _ in range(runs):
            values = compare_policies(_clustered_log(rng, grouped=grouped), np.ones(3000, int))
            for est in ("ips", "snips", "dr"):
                covered[grouped][est] += getattr(values["a"], est).covers(truth)
    for est in ("ips", "snips", "dr"):
        assert covered[True][est] / runs >= 0.88, (est, covered)
        assert covered[False][est] / runs <= 0.80, (est, covered)


def test_groups_must_match_the_decisions() -> None:
    d = _clustered_log(np.random.default_rng(0), grouped=True)
    with pytest.raises(MetricError, match="groups has 2 values; expected 3000"):
        LoggedDecisions(d.q, d.eligible, d.logged, d.propensity, d.reward, d.actions, d.groups[:2])


def test_one_decision_per_account_keeps_the_independent_interval() -> None:
    d = _clustered_log(np.random.default_rng(0), grouped=False)
    apart = LoggedDecisions(
        d.q, d.eligible, d.logged, d.propensity, d.reward, d.actions,
        np.arange(len(d.logged)).astype(str),
    )  # fmt: skip
    assert apart.clusters() is None
    assert compare_policies(apart, np.ones(3000, int))["a"].dr == (
        compare_policies(d, np.ones(3000, int))["a"].dr
    )


def test_a_reward_model_recalibrated_on_the_log_states_what_its_predictions_pay() -> None:
    """A model ranking right but twice too steep on the logit (it overrates what it rates
    high), recalibrated on logged rewards, gives about the true rates; each decision's
    calibration comes from the other fold's rewards alone; a fold too few responses were
    seen on keeps the model as it is."""
    rng = np.random.default_rng(3)
    n, actions = 20_000, 5
    true_logit = rng.normal(-2.5, 0.8, (n, actions))
    q = 1 / (1 + np.exp(-(2 * true_logit + 2.5)))  # steep, and centred elsewhere
    logged = rng.integers(0, actions, n)
    at = np.arange(n)
    reward = (rng.random(n) < 1 / (1 + np.exp(-true_logit[at, logged]))).astype(np.float64)
    groups = np.array([f"A{i // 4}" for i in range(n)])  # four decisions per account
    folds = account_folds(groups)
    assert set(np.unique(folds)) == {0, 1}
    assert (pd.Series(folds).groupby(groups).nunique() == 1).all()  # an account, one fold
    fitted = recalibrated_reward_model(q, q[at, logged], reward, folds)
    truth = 1 / (1 + np.exp(-true_logit))
    assert np.abs(fitted - truth).mean() < 0.2 * np.abs(q - truth).mean()
    # the top pick by the model: its own value overstates it, the recalibrated one not
    top = q.argmax(axis=1)
    assert q[at, top].mean() > 1.5 * truth[at, top].mean()
    assert fitted[at, top].mean() == pytest.approx(truth[at, top].mean(), rel=0.1)
    # fold 0's values do not move when fold 0's own rewards do
    flipped = np.where(folds == 0, 1.0 - reward, reward)
    again = recalibrated_reward_model(q, q[at, logged], flipped, folds)
    assert np.array_equal(again[folds == 0], fitted[folds == 0])
    assert not np.allclose(again[folds == 1], fitted[folds == 1])
    # too few responses to fit on: the model as it is
    few = np.zeros(n)
    few[:5] = 1.0
    assert np.array_equal(recalibrated_reward_model(q, q[at, logged], few, folds), q)
