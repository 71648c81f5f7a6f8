"""Accounts without contacts are scored: an event without ``contact_id`` for a new account,
then its recommendations and its rep's worklist (200, account-level plays); the scorer
online and in batch on an account without contacts and on an empty catalog."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from features.pipeline import select_accounts
from models.arbitration import ACCOUNT_LEVEL, load_arbitration_config
from serving.model_holder import ModelHolder
from serving.scoring import Scorer
from tests.utils.api import Api, event, recommendations
from tests.utils.registry import TrainedRegistry

NEW = "A-no-contacts"
REP = "R-no-contacts"


def _scorer(registry: TrainedRegistry, content: pd.DataFrame) -> Scorer:
    holder = ModelHolder(registry.tracking_uri)
    assert holder.load(), holder.status().last_error
    return Scorer(holder, registry.taxonomy, load_arbitration_config(), content)


def test_a_new_account_from_an_event_without_contact_gets_recommendations_and_a_worklist(
    api: Api,
) -> None:
    ts = (api.now - pd.Timedelta(days=2)).isoformat()
    record = event("E-no-contact-1", account=NEW, ts=ts, contact_id=None, contact=None)
    record["account"] = {**record["account"], "owner_rep_id": REP}
    ingested = api.client.post("/v1/events", json={"events": [record]}, headers=api.headers())
    assert ingested.json() == {"accepted": 1, "duplicates": 0, "rejected": []}, ingested.text

    body = recommendations(api, NEW, k=3)

    assert body["cold_start"] is False and body["churn_risk"] is not None
    assert sum(body["phase_probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
    actions = body["actions"]
    assert len(actions) == 3  # account-level plays: addressed to the account, no contact
    assert all(a["contact_id"] is None and a["role"] is None for a in actions)
    assert all(a["reasons"] for a in actions)
    evs = [a["expected_value"] for a in actions]
    assert evs == sorted(evs, reverse=True)
    assert "C027" not in {a["content_id"] for a in actions}  # downloaded two days ago
    again = recommendations(api, NEW, k=3)  # served again this week: the same list
    assert [a["content_id"] for a in again["actions"]] == [a["content_id"] for a in actions]

    worklist = api.client.get(f"/v1/reps/{REP}/actions", headers=api.headers())
    assert worklist.status_code == 200, worklist.text
    items = worklist.json()["items"]
    assert [i["account_id"] for i in items] == [NEW]
    assert items[0]["action"]["contact_id"] is None
    assert items[0]["action"]["content_id"] == actions[0]["content_id"]


def test_an_account_without_contacts_scores_online_as_in_batch(registry: TrainedRegistry) -> None:
    scorer = _scorer(registry, registry.data.content)
    data = registry.data
    account = sorted(data.contacts["account_id"].astype(str).unique())[0]
    one = select_accounts(data, [account])
    one = replace(one, contacts=one.contacts.iloc[:0])
    rng = np.random.default_rng(0)

    online = scorer.score_account(one, account, registry.now, k=3, rng=rng, explore=False)
    batch = scorer.score_accounts_batch(one, registry.now, k=3).iloc[0]

    assert not online.cold_start and online.churn_risk is not None
    assert [a.action.contact_id for a in online.actions] == [ACCOUNT_LEVEL] * 3
    assert batch["churn_risk"] == pytest.approx(online.churn_risk)
    assert batch["phase"] == online.phase
    for rank, scored in enumerate(online.actions, start=1):
        assert batch[f"action_{rank}_content_id"] == scored.action.content_id
        assert batch[f"action_{rank}_contact_id"] is None
        assert batch[f"action_{rank}_expected_value"] == pytest.approx(scored.action.expected_value)


def test_an_empty_catalog_still_scores_phase_and_churn(registry: TrainedRegistry) -> None:
    catalog = registry.data.content.iloc[:0]
    scorer = _scorer(registry, catalog)
    data = registry.data
    accounts = sorted(data.contacts["account_id"].astype(str).unique())[:3]
    some = replace(select_accounts(data, accounts), content=catalog)
    rng = np.random.default_rng(0)

    online = scorer.score_account(some, accounts[0], registry.now, k=3, rng=rng, explore=False)
    batch = scorer.score_accounts_batch(some, registry.now, k=3)
    cold = scorer.score_account(None, "nobody", registry.now, k=3, rng=rng)

    assert online.actions == () and online.churn_risk is not None and not online.cold_start
    assert batch["account_id"].tolist() == accounts and batch["churn_risk"].notna().all()
    assert batch["action_1_content_id"].isna().all()
    assert cold.cold_start and cold.actions == ()
