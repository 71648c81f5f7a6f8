"""The loop world's true values: each objective's oracle bounds every policy in it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.loop_world import (
    WeekValues,
    decision_values,
    interest_estimate,
    posterior_spread,
    shares_of_oracles,
)
from serving.store.posteriors import PosteriorCounts

# two contacts x three items: each contact's true response probability of every item
PROBS = np.array([[0.30, 0.10, 0.05], [0.20, 0.12, 0.02]])
# the items' catalog values: the likeliest response is the item of least value
VALUES = np.array([1.0, 10.0, 2.0])
LOGGING = np.array([0.5, 0.25, 0.25])


def _references(**given: Any) -> dict[str, dict[str, float]]:
    """:func:`decision_values` of a decision served to the first contact's first item with
    no champion, the logging policy on the first contact; ``given``: servable, informed."""
    return decision_values(
        PROBS, VALUES, served=(0, 0), frozen=None, logging_rows=[0], logging_policy=LOGGING, **given
    )


def test_each_oracle_is_the_best_of_its_own_objective() -> None:
    # the service serves the valuable item: below the response oracle, as good as the
    # value oracle, whose pick the response oracle's is not
    values = decision_values(
        PROBS, VALUES, served=(1, 1), frozen=(0, 2), logging_rows=[0, 1], logging_policy=LOGGING
    )
    response, value = values["response"], values["value"]
    assert response["oracle"] == 0.30 and response["served"] == 0.12
    assert value["oracle"] == 1.2 == value["served"]
    assert value["frozen"] == 0.05 * 2.0
    # the best item for the champion's contact: the first one's most valuable item
    assert response["frozen_contact"] == 0.30 and value["frozen_contact"] == 1.0
    assert value["logging"] == np.mean((PROBS * VALUES) @ LOGGING)
    for of_objective in (response, value):
        assert not any(v > of_objective["oracle"] for v in of_objective.values())  # NaN: none


def test_no_policy_exceeds_the_oracle_on_any_decision() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        probs = rng.random((3, 6)) * 0.4
        item_values = rng.choice([1.0, 1.5, 2.0, 3.0, 10.0], size=6)
        values = decision_values(
            probs,
            item_values,
            served=(int(rng.integers(3)), int(rng.integers(6))),
            frozen=(int(rng.integers(3)), int(rng.integers(6))),
            logging_rows=[0, 2],
            logging_policy=rng.dirichlet(np.ones(6)),
            servable=(rng.integers(3, size=4), rng.integers(6, size=4), rng.random(4) + 0.5),
            informed=probs * rng.lognormal(0.0, 0.5, probs.shape),
        )
        for of_objective in values.values():
            policies = (
                of_objective[p] for p in ("served", "frozen", "logging", "restricted", "informed")
            )
            assert max(policies) <= of_objective["oracle"]
            assert of_objective["greedy_true"] <= of_objective["restricted"]
            # the champion's contact at its best item: between the champion and the oracle
            assert of_objective["frozen"] <= of_objective["frozen_contact"]
            assert of_objective["frozen_contact"] <= of_objective["oracle"]


def test_the_last_weeks_share_each_objectives_oracle() -> None:
    weeks = [WeekValues(), WeekValues()]
    for week, served, frozen in ((weeks[0], (1, 1), None), (weeks[1], (0, 0), (0, 2))):
        values = decision_values(
            PROBS, VALUES, served=served, frozen=frozen, logging_rows=[1], logging_policy=LOGGING
        )
        for objective, of_objective in values.items():
            week.add(objective, of_objective)
    last = shares_of_oracles(weeks)
    response, value = last["response"], last["value"]
    assert response["oracle"] == [0.3, 0.3, 0.3] and value["oracle"] == [1.2, 1.2, 1.2]
    assert response["served"][0] == round((0.12 + 0.30) / 2, 5)
    assert response["served_share"][0] == round(0.21 / 0.3, 4)
    assert value["served_share"][0] == round((1.2 + 0.3) / 2 / 1.2, 4)
    # the champion decided once: its share is on that decision alone
    assert value["frozen_share"] == [round(0.1 / 1.2, 4)] * 3
    # a policy at a fixed share of the oracle on every decision: no spread
    assert response["logging_share"][0] == response["logging_share"][2]
    low, high = value["served_share"][1:]
    assert low < value["served_share"][0] < high


def test_the_restricted_oracle_and_the_true_greedy_rank_within_what_is_servable() -> None:
    # the service may serve the second contact's first two items, and ranks the second
    # one up (rest 3 against 1): the restricted oracle is the best of the two in each
    # objective, the true greedy pick the best true P x rest, valued in each objective
    servable = (np.array([1, 1]), np.array([0, 1]), np.array([1.0, 3.0]))
    values = decision_values(
        PROBS,
        VALUES,
        served=(1, 0),
        frozen=None,
        logging_rows=[0],
        logging_policy=LOGGING,
        servable=servable,
    )
    response, value = values["response"], values["value"]
    assert response["restricted"] == 0.20 and value["restricted"] == 1.2
    # 0.12 x 3 > 0.20 x 1: the ranking's rest picks the second item, truly less likely
    assert response["greedy_true"] == 0.12 and value["greedy_true"] == 1.2
    assert response["restricted"] < response["oracle"]
    # unknown: NaN, left out of the means
    unknown = decision_values(
        PROBS, VALUES, served=(1, 0), frozen=None, logging_rows=[0], logging_policy=LOGGING
    )
    assert np.isnan(unknown["response"]["restricted"]) and np.isnan(unknown["value"]["greedy_true"])


def test_the_informed_reference_picks_on_its_estimate_and_is_valued_on_the_truth() -> None:
    # the estimate believes the first contact's third item likeliest: truly 0.05
    informed = np.array([[0.1, 0.1, 0.4], [0.1, 0.1, 0.1]])
    values = _references(informed=informed)
    assert values["response"]["informed"] == 0.05
    # in the value objective it ranks by its estimate x value: 0.1 x 10 > 0.4 x 2
    assert values["value"]["informed"] == 0.10 * 10.0
    unknown = _references()
    assert np.isnan(unknown["response"]["informed"])


def test_interests_are_estimated_from_the_topics_an_account_touches() -> None:
    rng = np.random.default_rng(4)
    interest = rng.standard_normal((500, 6))
    choice = np.exp(interest) / np.exp(interest).sum(axis=1, keepdims=True)

    def agreement(touches: int) -> float:
        counts = np.array([rng.multinomial(touches, q) for q in choice], dtype=float)
        estimate = interest_estimate(counts)
        # the mode: the gradient of the log posterior vanishes
        p = np.exp(estimate) / np.exp(estimate).sum(axis=1, keepdims=True)
        assert np.abs(counts - touches * p - estimate).max() < 1e-6
        centred = estimate - estimate.mean(axis=1, keepdims=True)
        truth = interest - interest.mean(axis=1, keepdims=True)
        return float(np.corrcoef(centred.ravel(), truth.ravel())[0, 1])

    # no touchpoints: the prior; more of them: closer to the truth
    assert not interest_estimate(np.zeros((3, 6))).any()
    assert 0.3 < agreement(5) < agreement(50) < agreement(2000)
    assert agreement(2000) > 0.95


def test_the_sender_counts_topics_and_prices_with_the_estimated_interests() -> None:
    from bench.loop_world import ServiceSender, account_id, true_probabilities
    from features.simulate.run import start_run

    run = start_run(20, 3, start="2024-01-01", months=2)
    world, state = run.world, run.state
    sender = ServiceSender(serve=lambda a, i: None, frozen=lambda a, i: None)
    content = world.catalog.content_ids
    # two touches of account 0 on the first item's topic, one row without content
    sender.count(world, [account_id(0)] * 3, [content[0], content[0], None])
    assert sender.topic_counts is not None
    assert sender.topic_counts.sum() == 2
    assert sender.topic_counts[0, world.catalog.topic[0]] == 2
    estimate = interest_estimate(sender.topic_counts)
    contact = int(world.centers.orig_idx[0][world.centers.orig_idx[0] >= 0][0])
    truth = true_probabilities(world, state, 0, contact, 0.0)
    priced = true_probabilities(world, state, 0, contact, 0.0, estimate[0])
    # the estimate, not the account's own interests, sets the probabilities
    assert not np.allclose(truth, priced)
    assert np.allclose(
        true_probabilities(world, state, 0, contact, 0.0, world.accounts.interest[0]), truth
    )


def test_posterior_spread_tells_a_shared_factor_from_factors_per_key() -> None:
    """Keys whose successes all follow one calibration factor show no spread beyond the
    Poisson noise; keys whose factors differ by about half show it."""
    rng = np.random.default_rng(3)
    expected = rng.uniform(20, 60, 200)
    factors = {"shared": np.full(200, 1.2), "per key": 1.2 * rng.lognormal(0.0, 0.5, 200)}
    found = {}
    for name, theta in factors.items():
        successes = rng.poisson(theta * expected)
        counts = {
            ("phase", str(k)): PosteriorCounts(trials=400, successes=int(s), expected=float(e))
            for k, (s, e) in enumerate(zip(successes, expected, strict=True))
        }
        found[name] = posterior_spread(counts)
    assert found["shared"]["factor"] == pytest.approx(1.2, rel=0.05)
    assert found["shared"]["factor_spread_share"] < 0.1 and found["shared"]["chi2_p"] > 0.01
    assert 0.35 < found["per key"]["factor_spread_share"] < 0.7
    assert found["per key"]["chi2_p"] < 0.001
    assert found["per key"]["keys"] == 200 and found["per key"]["trials"] == 80_000


def test_the_informed_greedy_ranks_the_servable_on_the_estimate() -> None:
    # servable: the second contact's first two items (rest 1 and 3); the estimate rates the
    # first one 0.5 against 0.1, so 0.5 x 1 > 0.1 x 3 picks it, truly 0.20 (value 0.20 x 1)
    servable = (np.array([1, 1]), np.array([0, 1]), np.array([1.0, 3.0]))
    informed = np.array([[0.9, 0.9, 0.9], [0.5, 0.1, 0.0]])
    values = _references(servable=servable, informed=informed)
    assert values["response"]["informed_greedy"] == 0.20
    assert values["value"]["informed_greedy"] == 0.20 * 1.0
    # the unrestricted informed pick is another contact's: the ranking stays within the servable
    assert values["response"]["informed"] == 0.30
    without = _references(servable=servable)
    assert np.isnan(without["response"]["informed_greedy"])
