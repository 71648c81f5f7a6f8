"""Learning between retrains in arbitration: Thompson sampling of the top slot on the
online posterior, its win probabilities and the propensities it logs."""

from __future__ import annotations

from collections import Counter
from functools import cache

import numpy as np
import pandas as pd
import pytest

from models.arbitration import (
    THOMPSON_SUFFIX,
    AccountContext,
    ArbitrationConfig,
    OnlinePosterior,
    prepare_catalog,
    rank_actions,
    win_probabilities,
)
from models.arbitration.thompson import posterior_params

NOW = pd.Timestamp("2025-03-01 12:00", tz="UTC")
PHASES = ["awareness", "consideration"]


def _catalog() -> pd.DataFrame:
    """Two items for the same phase and role, equal value: only their response rates differ."""
    return pd.DataFrame(
        {
            "content_id": ["GOOD", "POOR"],
            "title": ["Good", "Poor"],
            "content_type": ["whitepaper", "whitepaper"],
            "phases": [["awareness"], ["awareness"]],
            "roles": [["it"], ["it"]],
            "topic": ["security", "security"],
            "channel": ["website", "website"],
            "value": [1.0, 1.0],
        }
    )


CATALOG = prepare_catalog(_catalog(), tuple(PHASES))


@cache
def _context() -> AccountContext:
    return AccountContext(
        account_id="A1",
        phase_proba=np.array([0.9, 0.1]),
        phase_names=PHASES,
        churn_risk=0.0,
        contacts=pd.DataFrame({"contact_id": ["c1"], "role": ["it"]}),
    )


@cache
def _candidates(p_good: float, p_poor: float) -> pd.DataFrame:
    return pd.DataFrame(
        {"contact_id": ["c1", "c1"], "content_id": ["GOOD", "POOR"], "p_response": [p_good, p_poor]}
    )


@cache
def _config(eps: float = 0.0) -> ArbitrationConfig:
    raw = ArbitrationConfig().model_dump()
    raw["exploration_rate"] = eps
    return ArbitrationConfig.model_validate(raw)


def _decide(
    online: OnlinePosterior | None,
    rng: np.random.Generator,
    *,
    k: int = 1,
    eps: float = 0.0,
    p: tuple[float, float] = (0.1, 0.1),
):  # type: ignore[no-untyped-def]
    return rank_actions(
        _context(), _candidates(*p), CATALOG, _config(eps), k=k, rng=rng, now=NOW, online=online
    )


def _count(counts: dict[tuple[str, str], tuple[float, float]], action, hit: bool) -> None:  # type: ignore[no-untyped-def]
    """What the store counts for a served decision: its response, and the model's
    probability of one (the successes it expected)."""
    s, e = counts[("awareness", action.content_id)]
    counts[("awareness", action.content_id)] = (s + hit, e + action.p_response)


def test_converges_to_the_better_action_on_a_two_action_toy() -> None:
    """The model thinks both items answer 10 % of the time; in truth GOOD answers 20 % and
    POOR 5 %. Fed back its outcomes, the sampler serves GOOD almost always by the end."""
    rng = np.random.default_rng(7)
    world = np.random.default_rng(8)
    truth = {"GOOD": 0.20, "POOR": 0.05}
    counts = {("awareness", c): (0.0, 0.0) for c in truth}
    picks: list[str] = []
    for version in range(1500):
        online = OnlinePosterior(counts=dict(counts), prior_strength=20.0, version=version)
        action = _decide(online, rng).actions[0]
        picks.append(action.content_id)
        _count(counts, action, world.random() < truth[action.content_id])
    early, late = Counter(picks[:100]), Counter(picks[-300:])
    assert early["POOR"] > 20  # it explored both at first
    assert late["GOOD"] / 300 > 0.9


@pytest.mark.parametrize("share", [0.0, 0.25])
def test_a_smaller_draw_share_still_converges_and_explores_less(share: float) -> None:
    """The same toy with a quarter of the decisions drawing, or none: the best posterior
    mean serves the rest, and the feedback moves it too. The model now ranks POOR first
    (11 % vs 10 %): the feedback finds out GOOD is better, and by the end the undrawn
    decisions serve it."""
    rng = np.random.default_rng(7)
    world = np.random.default_rng(8)
    truth = {"GOOD": 0.20, "POOR": 0.05}
    counts = {("awareness", c): (0.0, 0.0) for c in truth}
    picks: list[str] = []
    propensities: list[float] = []
    for version in range(1500):
        online = OnlinePosterior(
            counts=dict(counts), prior_strength=20.0, version=version, draw_share=share
        )
        action = _decide(online, rng, p=(0.10, 0.11)).actions[0]
        picks.append(action.content_id)
        propensities.append(action.propensity)
        _count(counts, action, world.random() < truth[action.content_id])
    # the first decision follows the model: POOR is the best posterior mean before feedback
    assert picks[0] == "POOR" or propensities[0] <= share
    late = Counter(picks[-300:])
    assert late["GOOD"] / 300 > 0.95
    # the best posterior mean is served with at least 1 - share of the probability
    assert min(propensities[-300:]) >= 1 - share


def test_draw_share_mixes_the_draw_with_the_best_posterior_mean() -> None:
    """Top-slot propensities are share x win probability + (1 - share) for the best
    posterior mean; share 0 serves the best posterior mean with certainty, and the feedback
    can overturn the model's order there."""
    # the model prefers POOR; the counts say GOOD answers above and POOR below expectation
    counts = {("awareness", "GOOD"): (7.0, 5.0), ("awareness", "POOR"): (3.0, 6.0)}
    p = (0.10, 0.12)
    shape, rate = posterior_params(np.array(p), np.array([7.0, 3.0]), np.array([5.0, 6.0]), 50.0)
    # both items have the same value and fit: the draw compares the rates alone
    good_wins = float(win_probabilities(shape, rate, np.ones(2))[0])
    assert 0.5 < good_wins < 1
    for share in (0.0, 0.4):
        online = OnlinePosterior(counts=counts, prior_strength=50.0, draw_share=share)
        rng = np.random.default_rng(2)
        tops = [_decide(online, rng, p=p).actions[0] for _ in range(200)]
        by_item = {a.content_id: a.propensity for a in tops}
        assert by_item["GOOD"] == pytest.approx(share * good_wins + 1 - share)
        assert _decide(online, rng, p=p).policy == f"ev-greedy-epsilon-v1/thompson-{share:g}"
        if share == 0:
            assert {a.content_id for a in tops} == {"GOOD"}
        else:
            assert by_item["POOR"] == pytest.approx(share * (1 - good_wins))


def test_off_switch_is_the_greedy_policy() -> None:
    """Without a posterior the best expected value is served with certainty, every time."""
    rng = np.random.default_rng(1)
    decisions = [_decide(None, rng, p=(0.11, 0.1)) for _ in range(50)]
    assert {d.actions[0].content_id for d in decisions} == {"GOOD"}
    assert {d.actions[0].propensity for d in decisions} == {1.0}
    assert decisions[0].policy == "ev-greedy-epsilon-v1"


def test_propensities_sum_to_one_and_match_the_draws() -> None:
    """Each action's top-slot propensity is its probability of being drawn: over many
    decisions from one posterior state the frequencies match, and they sum to 1."""
    online = OnlinePosterior(
        counts={("awareness", "GOOD"): (3.0, 2.8), ("awareness", "POOR"): (2.0, 1.2)},
        prior_strength=20.0,
    )
    rng = np.random.default_rng(3)
    seen: Counter[str] = Counter()
    propensity: dict[str, float] = {}
    n = 2500
    for _ in range(n):
        d = _decide(online, rng, eps=0.1, p=(0.12, 0.1))
        a = d.actions[0]
        seen[a.content_id] += 1
        propensity[a.content_id] = a.propensity
        assert d.policy.endswith(THOMPSON_SUFFIX)
    assert sum(propensity.values()) == pytest.approx(1.0, abs=1e-12)
    for item, count in seen.items():
        se = np.sqrt(propensity[item] * (1 - propensity[item]) / n)
        assert abs(count / n - propensity[item]) < 4 * se


def test_lower_slots_sum_the_top_draws_that_put_them_there() -> None:
    """With two slots, the second slot holds whichever item the top did not: POOR is second
    exactly when GOOD was drawn on top."""
    online = OnlinePosterior(counts={}, prior_strength=10.0)
    d = _decide(online, np.random.default_rng(5), k=2, eps=0.2, p=(0.3, 0.2))
    top, second = d.actions
    assert second.propensity == pytest.approx(top.propensity)
    assert 0 < top.propensity < 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_win_probabilities_agree_with_monte_carlo_over_the_gamma_draws(seed: int) -> None:
    """The quadrature's win probabilities are those of drawing each Gamma rate and taking
    the largest sampled value, to within Monte Carlo and approximation error."""
    rng = np.random.default_rng(seed)
    n = 6
    p = rng.uniform(0.05, 0.3, n)
    trials = rng.integers(0, 60, n)
    shape, rate = posterior_params(p, rng.integers(0, 10, n), trials * p, 30.0)
    scale = rng.uniform(0.5, 2.0, n)
    wins = win_probabilities(shape, rate, scale)
    draws = rng.gamma(shape, 1.0 / rate, size=(200_000, n)) * scale
    monte_carlo = np.bincount(draws.argmax(axis=1), minlength=n) / len(draws)
    assert wins.sum() == pytest.approx(1.0)
    assert np.abs(wins - monte_carlo).max() < 0.02


def test_win_probabilities_leave_out_actions_that_cannot_win() -> None:
    shape, rate = posterior_params(np.array([0.5, 0.01]), np.zeros(2), np.zeros(2), 1000.0)
    assert win_probabilities(shape, rate, np.ones(2)).tolist() == [1.0, 0.0]


def test_the_posterior_corrects_each_accounts_own_prediction() -> None:
    """The feedback of a key scales every account's prediction by the same factor: pooled
    over accounts the model tells apart (a 2 % and a 30 % account), the evidence that the
    item answers at half what was expected halves both, and keeps their order, where an
    additive update would pull both towards the pool's rate."""
    p = np.array([0.02, 0.30])
    # 1,000 decisions: 500 at each probability, 80 responses where 160 were expected
    shape, rate = posterior_params(p, np.full(2, 80.0), np.full(2, 160.0), 50.0)
    mean = shape / rate
    assert mean[0] == pytest.approx(0.02 * (1 + 80) / (1 + 160))
    assert mean[1] == pytest.approx(0.30 * (15 + 80) / (15 + 160))
    assert mean[1] / mean[0] > 10
    # with every decision at the candidate's own rate it is the Beta posterior's mean
    n, s = 400, 20
    shape, rate = posterior_params(np.array([0.1]), np.array([s]), np.array([n * 0.1]), 50.0)
    assert float(shape[0] / rate[0]) == pytest.approx((50 * 0.1 + s) / (50 + n))


def test_leaving_out_the_actions_that_cannot_win_changes_no_probability(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Actions unlikely to beat even the leader are left out of the quadrature (its cost
    grows with the square of the contenders): the others' win probabilities are those of
    the quadrature over every action, to within the bound left out."""
    from models.arbitration import thompson

    rng = np.random.default_rng(4)
    n = 14
    p = rng.uniform(0.01, 0.3, n)
    shape, rate = posterior_params(p, rng.integers(0, 10, n), rng.uniform(0, 10, n), 500.0)
    scale = rng.uniform(0.5, 5.0, n)
    pruned = win_probabilities(shape, rate, scale)
    bound = thompson.NEGLIGIBLE_WIN
    monkeypatch.setattr(thompson, "NEGLIGIBLE_WIN", 0.0)
    monkeypatch.setattr(thompson, "MAX_CONTENDERS", n)
    full = win_probabilities(shape, rate, scale)
    assert (pruned == 0).sum() >= n // 2  # most of the ranking takes no part
    # each action left out had less than the bound to win, and the rest are renormalised
    assert (full[pruned == 0] < bound).all()
    assert np.abs(pruned - full).max() < n * bound
