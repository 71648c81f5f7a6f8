"""Accounts without contacts are scored: an event without ``contact_id`` for a new account,
then its recommendations and its rep's worklist (200, account-level plays); the scorer
online and in batch on an account without contacts and on an empty catalog; and a data
directory of accounts with nothing but their id and touchpoints without contact or content
loads into the store (``nba load``), is scored (``nba score``) and answered by the API, on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.load import read_data_dir
from features.pipeline import select_accounts
from models.arbitration import ACCOUNT_LEVEL, load_arbitration_config
from nba.cli import app as cli
from serving.model_holder import ModelHolder
from serving.scoring import Scorer
from tests.utils.api import Api, event, loaded_accounts, open_api, recommendations
from tests.utils.data import write_bare_dir
from tests.utils.registry import TrainedRegistry
from tests.utils.store import BACKENDS

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


SILENT = "A-silent"  # an account with nothing recorded yet
REP_BARE = "R-bare"


@pytest.fixture(scope="module", params=BACKENDS)
def bare(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    registry: TrainedRegistry,
) -> Iterator[tuple[Api, Path]]:
    """The app over a store loaded from a bare data directory (accounts: account_id and
    their rep, plus one without any touchpoint; touchpoints without contact, content or
    value), and that directory."""
    directory = tmp_path_factory.mktemp(f"bare-{request.param}")
    some = select_accounts(registry.data, loaded_accounts(registry, 30))
    accounts = pd.concat(
        [some.accounts, pd.DataFrame({"account_id": pd.Series([SILENT], dtype="str")})]
    )
    data_dir = write_bare_dir(replace(some, accounts=accounts), directory / "data")
    accounts[["account_id"]].assign(owner_rep_id=REP_BARE).to_parquet(
        data_dir / "accounts.parquet", index=False
    )
    data = read_data_dir(data_dir, registry.taxonomy, now=registry.now)
    with open_api(request.param, directory, registry, data=data) as opened:
        yield opened, data_dir


def _env(api: Api) -> dict[str, str]:
    return {
        "NBA_DATABASE_URL": api.store.url,
        "NBA_DATABASE_SCHEMA": api.store.schema or "",
        "MLFLOW_TRACKING_URI": api.registry.tracking_uri,
    }


def test_bare_accounts_are_stored_with_what_they_lack_missing(
    bare: tuple[Api, Path],
) -> None:
    api, _ = bare
    account = next(a for a in api.account_ids if a != SILENT)

    data = api.store.account_data(account)

    assert data is not None and len(data.touchpoints) > 0
    accounts = data.accounts
    assert accounts[["industry", "region", "created_at"]].isna().all().all()
    assert accounts["employees"].dtype == "Int64" and accounts["employees"].isna().all()
    assert data.contacts.empty and data.touchpoints["contact_id"].isna().all()


def test_bare_accounts_are_answered_from_their_touchpoints(bare: tuple[Api, Path]) -> None:
    api, _ = bare
    account = next(a for a in api.account_ids if a != SILENT)

    body = recommendations(api, account, k=3)
    silent = recommendations(api, SILENT, k=3)

    assert body["cold_start"] is False and body["churn_risk"] is not None
    assert sum(body["phase_probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
    assert len(body["actions"]) == 3
    assert all(a["contact_id"] is None and a["reasons"] for a in body["actions"])
    # nothing recorded yet: the account exists from its first activity, so not yet
    assert silent["cold_start"] is True
    worklist = api.client.get(f"/v1/reps/{REP_BARE}/actions", headers=api.headers())
    assert worklist.status_code == 200, worklist.text
    listed = {i["account_id"] for i in worklist.json()["items"]}
    assert account in listed and listed <= set(api.account_ids)


def test_nba_load_and_score_take_bare_data(bare: tuple[Api, Path], tmp_path: Path) -> None:
    api, data_dir = bare
    runner = CliRunner()

    loaded = runner.invoke(cli, ["load", str(data_dir)], env=_env(api))
    out = tmp_path / "scores.parquet"
    as_of = api.now.strftime("%Y-%m-%d")
    scored = runner.invoke(cli, ["score", "--out", str(out), "--as-of", as_of], env=_env(api))

    assert loaded.exit_code == 0, loaded.output
    n_touchpoints = len(pd.read_parquet(data_dir / "touchpoints.parquet"))
    assert f"0/{n_touchpoints:,} touchpoints" in loaded.output  # stored once, by the fixture
    assert "0/0 contacts" in loaded.output and "0/0 stages" in loaded.output
    assert scored.exit_code == 0, scored.output
    scores = pd.read_parquet(out)
    # every account with a touchpoint before the as-of date; not the silent one
    assert set(scores["account_id"]) == set(api.account_ids) - {SILENT}
    assert scores["churn_risk"].notna().all() and scores["action_1_content_id"].notna().all()


def test_an_event_without_contact_content_or_account_object_is_ingested(
    bare: tuple[Api, Path],
) -> None:
    api, _ = bare
    ts = (api.now - pd.Timedelta(days=1)).isoformat()
    record = event(
        "E-bare-1", account=SILENT, ts=ts, contact_id=None, contact=None, content_id=None
    )
    del record["account"]

    ingested = api.client.post("/v1/events", json={"events": [record]}, headers=api.headers())

    assert ingested.json() == {"accepted": 1, "duplicates": 0, "rejected": []}, ingested.text
    assert recommendations(api, SILENT, k=2)["cold_start"] is False  # it exists now
