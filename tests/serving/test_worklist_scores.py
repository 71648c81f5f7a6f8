"""Stored account scores behind the rep worklist: a worklist answered from the stored
states equals one computed fresh, a new event or another model set makes a stored state
stale (and the next worklist recomputes just that), and ``nba score`` writes them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.pipeline import select_accounts
from models.arbitration import Recent, load_arbitration_config
from models.contract import CHURN
from nba.cli import app as cli
from serving.model_holder import ModelHolder
from serving.routes import Services
from serving.scoring import KnownAccount, Scorer
from serving.scoring.cache import StateCache
from tests.utils.api import Api, open_api
from tests.utils.registry import TrainedRegistry
from tests.utils.store import BACKENDS


@pytest.fixture(params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path: Path, registry: TrainedRegistry) -> Iterator[Api]:
    with open_api(request.param, tmp_path, registry) as opened:
        yield opened


def _services(api: Api) -> Services:
    svc: Services = api.client.app.state.services  # type: ignore[attr-defined]
    return svc


def _forget(svc: Services) -> None:
    """Empty the worker's in-memory states, as in a freshly started worker."""
    svc.scorer.cache = StateCache(svc.scorer.cache.entries, svc.scorer.cache.ttl_ns)


def _busiest_rep(api: Api) -> tuple[str, set[str]]:
    accounts = select_accounts(api.registry.data, api.account_ids).accounts
    owners = accounts["owner_rep_id"].astype(str)
    rep = str(owners.value_counts().index[0])
    return rep, set(accounts.loc[owners == rep, "account_id"].astype(str))


def _worklist(api: Api, rep: str) -> dict[str, Any]:
    response = api.client.get(f"/v1/reps/{rep}/actions", headers=api.headers())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _items(body: dict[str, Any]) -> dict[str, Any]:
    """account_id -> item, without the recommendation ids (new on every view) and kinds (a
    decision the first time, an impression of it when viewed again that week)."""
    out = {}
    for item in body["items"]:
        item = dict(item)
        if item["action"] is not None:
            item["action"] = {
                k: v for k, v in item["action"].items() if k not in ("recommendation_id", "kind")
            }
        out[item["account_id"]] = item
    return out


def test_a_worklist_read_from_stored_scores_equals_the_one_computed(api: Api) -> None:
    rep, mine = _busiest_rep(api)
    svc = _services(api)
    first = _worklist(api, rep)
    assert svc.scorer.misses == len(mine)  # a cold view computes every account (together)
    stored = api.store.stored_scores()
    assert set(stored["account_id"]) == mine
    assert (stored["scoring_key"] == svc.scorer.scoring_key()).all()
    assert (stored["as_of"] == api.now).all()

    _forget(svc)  # another worker, or this one restarted (its counts start at 0)
    api.flush()
    second = _worklist(api, rep)
    assert svc.scorer.misses == 0  # nothing computed: every state from the store
    assert [i["account_id"] for i in second["items"]] == [i["account_id"] for i in first["items"]]
    assert _items(second) == _items(first)
    # the same actions viewed again: impressions of the decisions the first view made
    assert {i["action"]["kind"] for i in second["items"] if i["action"]} == {"impression"}


def test_a_new_event_makes_that_accounts_score_stale(api: Api) -> None:
    rep, mine = _busiest_rep(api)
    svc = _services(api)
    before = _items(_worklist(api, rep))
    account = next(a for a, item in sorted(before.items()) if item["action"] is not None)
    action = before[account]["action"]
    # the account's contact downloads the very item the worklist proposes
    record = {
        "event_id": "E-worklist-stale-1",
        "account_id": account,
        "contact_id": action["contact_id"],
        "ts": (api.now - pd.Timedelta(days=1)).isoformat(),
        "channel": "website",
        "event_type": "download",
        "content_id": action["content_id"],
    }
    ingested = api.client.post("/v1/events", json={"events": [record]}, headers=api.headers())
    assert ingested.json()["accepted"] == 1, ingested.text
    version = api.store.data_versions([account])[account]

    _forget(svc)
    misses = svc.scorer.misses
    after = _items(_worklist(api, rep))
    assert svc.scorer.misses == misses + 1  # only the account with the event is recomputed
    # consumed now by that contact (the same item may still go to another contact)
    pair = ("contact_id", "content_id")
    assert [after[account]["action"][k] for k in pair] != [action[k] for k in pair]
    assert {a: i for a, i in after.items() if a != account} == {
        a: i for a, i in before.items() if a != account
    }
    stored = api.store.stored_scores().set_index("account_id")
    assert stored.loc[account, "data_version"] == version  # written back at the new version


def test_scores_of_other_models_are_stale(api: Api) -> None:
    rep, mine = _busiest_rep(api)
    svc = _services(api)
    first = _items(_worklist(api, rep))
    old_key = svc.scorer.scoring_key()
    # A new churn model version is promoted (the same booster under another version).
    models = svc.holder.current
    svc.holder._current = dataclasses.replace(  # type: ignore[attr-defined]
        models, versions={**models.versions, CHURN: "2"}
    )
    assert svc.scorer.scoring_key() != old_key
    misses = svc.scorer.misses
    second = _items(_worklist(api, rep))
    assert svc.scorer.misses == misses + len(mine)  # every stored score was stale
    stored = api.store.stored_scores()
    assert (stored["scoring_key"] == svc.scorer.scoring_key()).all()
    assert {a: i["action"] for a, i in second.items()} == {a: i["action"] for a, i in first.items()}


def test_nba_score_writes_the_scores_worklists_read(api: Api, tmp_path: Path) -> None:
    rep, mine = _busiest_rep(api)
    env = {
        "NBA_DATABASE_URL": api.store.url,
        "NBA_DATABASE_SCHEMA": api.store.schema or "",
        "MLFLOW_TRACKING_URI": api.registry.tracking_uri,
    }
    as_of = api.now.strftime("%Y-%m-%d")
    result = CliRunner().invoke(
        cli, ["score", "--out", str(tmp_path / "s.parquet"), "--as-of", as_of], env=env
    )
    assert result.exit_code == 0, result.output
    stored = api.store.stored_scores()
    assert set(stored["account_id"]) == set(api.account_ids)
    versions = api.store.data_versions(api.account_ids)
    assert (stored["data_version"] == stored["account_id"].map(versions)).all()
    svc = _services(api)
    assert (stored["scoring_key"] == svc.scorer.scoring_key()).all()
    _worklist(api, rep)
    assert svc.scorer.misses == 0  # the first view computed nothing


def test_stored_states_answer_as_fresh_ones_with_history(registry: TrainedRegistry) -> None:
    holder = ModelHolder(registry.tracking_uri)
    assert holder.load(), holder.status().last_error
    config = load_arbitration_config()

    def scorer() -> Scorer:
        return Scorer(holder, registry.taxonomy, config, registry.data.content)

    now = registry.now
    ids = sorted(registry.data.contacts["account_id"].astype(str).unique())[:25]
    data = select_accounts(registry.data, ids)
    encoded = {e.account_id: e for e in scorer().states_for_store(data, dict.fromkeys(ids, 1), now)}
    fresh = scorer()
    expected = []
    known = []
    for account in ids:
        top = fresh.score_account(
            data, account, now, k=3, rng=np.random.default_rng(0), explore=False
        )
        # dismissing the greedy answer makes the next answer need reasons not stored yet
        dismissed = Recent(
            content_id=[s.action.content_id for s in top.actions],
            ts_ns=np.full(len(top.actions), (now - pd.Timedelta(days=1)).value, dtype=np.int64),
        )
        expected.append(
            fresh.score_account(
                data,
                account,
                now,
                k=3,
                rng=np.random.default_rng(0),
                dismissed=dismissed,
                explore=False,
            )
        )
        stored = encoded[account].state if account in encoded else None
        known.append(KnownAccount(account, 1, dismissed=dismissed, stored=stored))

    def no_load(_: list[str]) -> Any:
        raise AssertionError("every state was stored; nothing should be loaded")

    answers, computed = scorer().score_known(
        known, no_load, now, k=3, rng=np.random.default_rng(0), explore=False
    )
    assert computed == []
    for got, want in zip(answers, expected, strict=True):
        assert dataclasses.replace(got, cache_hit=False) == dataclasses.replace(
            want, cache_hit=False
        )
