"""Scoring one account end to end with models from a real registry: the answer's shape,
cold starts, online = batch, and cache invalidation by an ingested event."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.pipeline import build_features, select_accounts
from features.schema import JourneyData
from models.arbitration import churn_band
from models.contract import CHURN, NEXT_CONTENT, PHASE
from models.explain import EXPLORATION
from serving.scoring import Scorer
from tests.utils.registry import TrainedRegistry, registry_scorer


@pytest.fixture(scope="module")
def scorer(registry: TrainedRegistry) -> Scorer:
    return registry_scorer(registry)


def _accounts_with_contacts(registry: TrainedRegistry, n: int) -> list[str]:
    data = registry.data
    created = data.contacts["created_at"] < registry.now
    ids = data.contacts.loc[created, "account_id"].astype(str).unique()
    return sorted(ids)[:n]


def test_an_explored_action_says_it_was_drawn_at_random(
    registry: TrainedRegistry, scorer: Scorer
) -> None:
    account = _accounts_with_contacts(registry, 2)[1]
    one = select_accounts(registry.data, [account])
    score = scorer.score_account(
        one, account, registry.now, k=3, rng=np.random.default_rng(1), explore=True
    )
    top, *rest = score.actions
    assert score.explored and top.action.explored
    assert [r.feature for r in top.reasons] == [EXPLORATION]
    assert "random" in top.reasons[0].text and "2 % of answers explore" in top.reasons[0].text
    for scored in rest:  # the greedy slots keep the model's reasons
        assert not scored.action.explored and scored.reasons
        assert all(r.feature != EXPLORATION and r.contribution > 0 for r in scored.reasons)


def test_score_account_returns_a_complete_answer(registry: TrainedRegistry, scorer: Scorer) -> None:
    account = _accounts_with_contacts(registry, 1)[0]
    one = select_accounts(registry.data, [account])
    score = scorer.score_account(
        one, account, registry.now, k=3, rng=np.random.default_rng(0), explore=False
    )
    assert not score.cold_start and not score.cache_hit
    assert list(score.phase_proba) == registry.taxonomy.phases
    assert sum(score.phase_proba.values()) == pytest.approx(1.0, abs=1e-9)
    assert score.phase == max(score.phase_proba, key=lambda p: score.phase_proba[p])
    assert score.churn_risk is not None and 0 <= score.churn_risk <= 1
    assert score.churn_band == churn_band(score.churn_risk, scorer.setup.config)
    assert dict(score.versions) == {PHASE: "1", CHURN: "1", NEXT_CONTENT: "1"}
    assert 1 <= len(score.phase_reasons) <= 3 and 1 <= len(score.churn_reasons) <= 3
    assert len(score.actions) == 3
    assert [a.action.rank for a in score.actions] == [1, 2, 3]
    evs = [a.action.expected_value for a in score.actions]
    assert evs == sorted(evs, reverse=True)  # greedy, no exploration
    contacts = set(one.contacts["contact_id"].astype(str))
    for scored in score.actions:
        assert scored.action.contact_id in contacts
        assert 0 < scored.action.propensity <= 1
        assert 0 < scored.action.p_response < 1
        assert 1 <= len(scored.reasons) <= 3
        for reason in scored.reasons:
            assert isinstance(reason.text, str) and len(reason.text) > 5
            assert reason.contribution > 0  # explains a response, strongest first
        contributions = [r.contribution for r in scored.reasons]
        assert contributions == sorted(contributions, reverse=True)

    # the second call is a cache hit with the same answer
    again = scorer.score_account(
        one, account, registry.now, k=3, rng=np.random.default_rng(0), explore=False
    )
    assert again.cache_hit
    assert again.actions == score.actions and again.phase_proba == score.phase_proba

    # filters re-run arbitration on the cached state
    contact = score.actions[0].action.contact_id
    only = scorer.score_account(
        one, account, registry.now, k=2, contact_id=contact, rng=np.random.default_rng(0)
    )
    assert only.cache_hit and all(a.action.contact_id == contact for a in only.actions)


def test_unknown_account_gets_a_cold_start(registry: TrainedRegistry, scorer: Scorer) -> None:
    models = scorer.holder.current
    for data in (None, select_accounts(registry.data, ["no-such-account"])):
        score = scorer.score_account(
            data, "no-such-account", registry.now, k=4, rng=np.random.default_rng(0)
        )
        assert score.cold_start and score.churn_risk is None and score.churn_band is None
        assert not score.known
        prior = scorer.setup.new_account_prior(models, registry.now)
        np.testing.assert_allclose(list(score.phase_proba.values()), prior)
        assert sum(score.phase_proba.values()) == pytest.approx(1.0)
        assert score.phase == registry.taxonomy.phases[int(np.argmax(prior))]
        # no history: the early phases, not the population's mix (which peaks later)
        assert score.phase in {"trigger", "awareness"}
        assert len(score.actions) == 4
        catalog = registry.data.content.set_index("content_id")
        for scored in score.actions:
            phases = catalog.loc[scored.action.content_id, "phases"]
            assert score.phase in list(phases)  # type: ignore[arg-type]
        popularity = [scorer.popularity.get(a.action.content_id, 0.0) for a in score.actions]
        assert popularity == sorted(popularity, reverse=True)
        assert dict(score.versions) == dict(models.versions)


def test_online_scores_equal_batch_scores(registry: TrainedRegistry, scorer: Scorer) -> None:
    batch = scorer.score_accounts_batch(registry.data, registry.now, k=3)
    alive = (registry.data.accounts["created_at"] < registry.now).sum()
    assert len(batch) == alive and batch["account_id"].is_unique
    assert batch["churn_band"].isin(["low", "medium", "high"]).all()
    batch = batch.set_index("account_id")
    for account in _accounts_with_contacts(registry, 5):
        online = scorer.score_account(
            select_accounts(registry.data, [account]),
            account,
            registry.now,
            k=3,
            rng=np.random.default_rng(0),
            explore=False,
        )
        row = batch.loc[account]
        assert row["phase"] == online.phase
        assert row["phase_probability"] == pytest.approx(
            online.phase_proba[online.phase], abs=1e-12
        )
        assert row["churn_risk"] == pytest.approx(online.churn_risk, abs=1e-12)
        assert row["churn_band"] == online.churn_band
        assert row["action_1_content_id"] == online.actions[0].action.content_id
        assert row["action_1_expected_value"] == pytest.approx(
            online.actions[0].action.expected_value, rel=1e-9
        )
    # and the online features are the pipeline's batch features
    account = _accounts_with_contacts(registry, 1)[0]
    online_row = scorer.setup.features(
        select_accounts(registry.data, [account]), registry.now, scorer.holder.current.attributes
    )
    assert online_row is not None
    full = build_features(registry.data, [registry.now], registry.taxonomy)
    batch_row = full[full["account_id"] == account].reset_index(drop=True)
    pd.testing.assert_frame_equal(online_row[list(full.columns)], batch_row)


def test_an_ingested_event_changes_the_key_and_the_answer_recomputes(
    registry: TrainedRegistry, scorer: Scorer
) -> None:
    account = _accounts_with_contacts(registry, 3)[-1]
    one = select_accounts(registry.data, [account])
    now = registry.now
    first = scorer.score_account(one, account, now, rng=np.random.default_rng(0), explore=False)
    assert scorer.score_account(one, account, now, rng=np.random.default_rng(0)).cache_hit

    # a whitepaper download by the account's first contact an hour ago
    tp = one.touchpoints
    event = tp.iloc[[-1]].copy()
    event["event_id"] = "E-ingested-1"
    event["ts"] = now - pd.Timedelta(hours=1)
    event["contact_id"] = one.contacts["contact_id"].iloc[0]
    event["event_type"] = "download"
    event["content_id"] = first.actions[0].action.content_id
    ingested = JourneyData(
        accounts=one.accounts,
        contacts=one.contacts,
        touchpoints=pd.concat([tp, event], ignore_index=True),
        content=one.content,
        stages=one.stages,
        exposures=one.exposures,
    )
    misses = scorer.misses
    after = scorer.score_account(
        ingested, account, now, rng=np.random.default_rng(0), explore=False
    )
    assert not after.cache_hit and scorer.misses == misses + 1
    # the downloaded item was consumed just now: it is no longer offered to that contact
    served = {(a.action.contact_id, a.action.content_id) for a in after.actions}
    assert (str(event["contact_id"].iloc[0]), str(event["content_id"].iloc[0])) not in served
    # the recomputed answer is the batch answer on the new data
    expected = scorer.setup.features(
        select_accounts(ingested, [account]), now, scorer.holder.current.attributes
    )
    assert expected is not None and int(expected["n_touchpoints_7d"].iloc[0]) >= 1
