"""Serving a next-action model trained with a "no action" control on every account feature
(Hillstrom's columns through its mapping, with a planted effect: the e-mail of what a
customer bought makes a visit likely, the other does nothing): candidate rows carry exactly
the model's inputs,
custom attributes included; online, batch and stored answers agree; actions rank by uplift
and ``no_action`` itself is never recommended; a model the service cannot feed is left out
with the reason, and the rest of the answer still comes."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.attributes import NO_FITTED_ATTRIBUTES
from features.cli import read_data
from features.pipeline import select_accounts
from features.schema import NO_ACTION_CONTENT_ID, JourneyData
from features.taxonomy import Taxonomy, load_taxonomy
from models import next_content as nc
from models.arbitration import load_arbitration_config
from models.contract import CONTROL_PARAM, NEXT_CONTENT
from serving.model_holder import ModelHolder
from serving.model_set import ModelSet
from serving.scoring import Scorer
from serving.scoring.answer import AccountScore
from serving.scoring.scorer import KnownAccount
from serving.scoring.stored import decode_state

ROOT = Path(__file__).resolve().parents[2]
SLICES = ROOT / "tests" / "data" / "real"
MAPPING = ROOT / "examples" / "hillstrom" / "mapping.yaml"
CAMPAIGN = pd.Timestamp("2008-03-01", tz="UTC")
ATTRIBUTES = ("account_mens", "account_womens", "account_newbie", "account_zip_code")

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Served:
    data: JourneyData
    taxonomy: Taxonomy
    scorer: Scorer


def planted_campaign(out_dir: Path, n: int = 4000, seed: int = 3) -> None:
    """Writes ``hillstrom_email_2008.parquet`` of ``n`` customers drawn from the slice's,
    each sent a random arm; a visit follows with probability 0.05, plus 0.5 when a men's-
    only buyer gets the Mens e-mail or a women's-only buyer the Womens one."""
    rng = np.random.default_rng(seed)
    slice_ = pd.read_parquet(SLICES / "hillstrom_email_2008.parquet")
    rows = slice_.iloc[rng.integers(0, len(slice_), n)].reset_index(drop=True)
    rows["segment"] = pd.Series(
        rng.choice(["Mens E-Mail", "Womens E-Mail", "No E-Mail"], n), dtype="string"
    )
    mens_only = (rows["mens"] == 1) & (rows["womens"] == 0)
    womens_only = (rows["womens"] == 1) & (rows["mens"] == 0)
    lift = ((rows["segment"] == "Mens E-Mail") & mens_only) | (
        (rows["segment"] == "Womens E-Mail") & womens_only
    )
    rows["visit"] = (rng.random(n) < 0.05 + 0.5 * lift.to_numpy(dtype=bool)).astype(np.int8)
    rows["conversion"] = np.int8(0)
    rows["spend"] = 0.0
    out_dir.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(out_dir / "hillstrom_email_2008.parquet", index=False)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    """The visits model trained on the planted campaign (``--force``: serving is what is
    tested here, not the gate) and a scorer of its champion."""
    directory = tmp_path_factory.mktemp("next-action")
    planted_campaign(directory / "data")
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "nba", "train", "next-content", "--data", str(directory / "data")]
        + ["--mapping", str(MAPPING), "--tracking-uri", uri, "--reward", "response"]
        + ["--reward-event", "view", "--force", "--json"],
        capture_output=True,
        text=True,
        cwd=directory,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    taxonomy = load_taxonomy()
    data, _ = read_data(directory / "data", taxonomy, MAPPING)
    holder = ModelHolder(uri, phases=tuple(taxonomy.phases))
    assert holder.load(), holder.status().last_error
    scorer = Scorer(holder, taxonomy, load_arbitration_config(), data.content)
    return Served(data, taxonomy, scorer)


def _accounts(served: Served, n: int) -> list[str]:
    return served.data.accounts["account_id"].astype(str).iloc[:n].tolist()


def _greedy(scorer: Scorer, data: JourneyData, account: str) -> AccountScore:
    """The account's online answer at the campaign: top 3, no exploration."""
    return scorer.score_account(
        select_accounts(data, [account]),
        account,
        CAMPAIGN,
        k=3,
        rng=np.random.default_rng(0),
        explore=False,
    )


def test_candidate_rows_carry_every_input_the_model_was_trained_on(served: Served) -> None:
    models = served.scorer.models
    assert models.next_content is not None and "next_actions" not in models.missing
    assert CONTROL_PARAM in models.run_params[NEXT_CONTENT]
    columns = served.scorer.setup.account_columns(models)
    fixed = nc.account_input_columns(served.taxonomy)
    assert columns[: len(fixed)] == fixed
    # the custom attributes and features beyond next-content's fixed list
    assert set(ATTRIBUTES) <= set(columns) - set(fixed)
    assert set(models.inputs[NEXT_CONTENT].columns) - set(nc.CANDIDATE_COLUMNS) <= set(columns)


def test_online_scores_equal_batch_scores_and_rank_by_uplift(served: Served) -> None:
    scorer, data = served.scorer, served.data
    batch = scorer.score_accounts_batch(data, CAMPAIGN, k=3).set_index("account_id")
    assert len(batch) == len(data.accounts)
    firsts = batch["action_1_content_id"]
    # e-mails only: doing nothing is the baseline of the uplift, never an action
    for slot in (1, 2, 3):
        assert not (batch[f"action_{slot}_content_id"] == NO_ACTION_CONTENT_ID).any()
    # the planted effect: each one-sided buyer is sent the e-mail of what they bought
    accounts = data.accounts.set_index(data.accounts["account_id"].astype(str))
    mens_only = (accounts["mens"] == 1) & (accounts["womens"] == 0)
    womens_only = (accounts["womens"] == 1) & (accounts["mens"] == 0)
    assert (firsts[mens_only[mens_only].index] == "mens_email").mean() > 0.9
    assert (firsts[womens_only[womens_only].index] == "womens_email").mean() > 0.9
    for account in _accounts(served, 6):
        online = _greedy(scorer, data, account)
        row = batch.loc[account]
        got = [a.action.content_id for a in online.actions]
        want = [row[f"action_{s}_content_id"] for s in (1, 2, 3)]
        assert got == [w for w in want if w is not None]
        for slot, a in enumerate(online.actions, start=1):
            assert row[f"action_{slot}_expected_value"] == pytest.approx(
                a.action.expected_value, rel=1e-9
            )
            assert a.reasons  # each action explained
        values = [a.action.expected_value for a in online.actions]
        assert values == sorted(values, reverse=True)
        assert online.missing.keys() == {"phase", "risk"}


def test_uplift_orders_the_served_actions(served: Served) -> None:
    """The account's first action is the e-mail the model predicts the largest gain over
    doing nothing for (a positive one)."""
    scorer, data = served.scorer, served.data
    models = scorer.models
    frame = scorer.setup.features(data, CAMPAIGN, models.attributes)
    assert frame is not None
    # each account's one addressee (no contacts: the account itself, no role) x every item
    rows = nc.candidate_features(
        scorer.setup.account_frame(models, frame.iloc[:20]).reset_index(drop=True),
        pd.Series([None] * 20, dtype=object),
        scorer.setup.content,
        served.taxonomy,
    )
    assert len(rows) == 20 * len(data.content)
    p = nc.predict_proba(models.next_content, rows[list(models.inputs[NEXT_CONTENT].columns)])
    ids = data.content["content_id"].astype(str).tolist()
    gain = nc.uplift_over_control(p.reshape(20, -1), ids, models.run_params[NEXT_CONTENT])
    batch = scorer.score_accounts_batch(data, CAMPAIGN, k=1).set_index("account_id")
    for r, account in enumerate(frame["account_id"].astype(str).iloc[:20]):
        best = batch.loc[account, "action_1_content_id"]
        if np.isnan(gain[r]).all():
            assert best is None  # doing nothing is predicted at least as good
        else:
            assert best == ids[int(np.nanargmax(gain[r]))]


def test_stored_states_answer_as_fresh_ones(served: Served) -> None:
    scorer, data = served.scorer, served.data
    accounts = _accounts(served, 4)
    part = select_accounts(data, accounts)
    stored = {
        s.account_id: s for s in scorer.states_for_store(part, dict.fromkeys(accounts, 1), CAMPAIGN)
    }
    assert set(stored) == set(accounts)
    state = decode_state(scorer.setup, stored[accounts[0]].state)
    assert set(ATTRIBUTES) <= set(state.feature_frame().columns)
    fresh = Scorer(scorer.holder, served.taxonomy, scorer.setup.config, data.content)
    from_store, computed = fresh.score_known(
        [KnownAccount(a, 1, stored=stored[a].state) for a in accounts],
        lambda ids: select_accounts(data, ids),
        CAMPAIGN,
        k=3,
        rng=np.random.default_rng(0),
        explore=False,
    )
    assert computed == []  # every answer came from its stored state
    for account, answer in zip(accounts, from_store, strict=True):
        online = _greedy(scorer, data, account)
        assert [(a.action.content_id, a.action.expected_value) for a in answer.actions] == [
            (a.action.content_id, a.action.expected_value) for a in online.actions
        ]


def test_a_model_the_service_cannot_feed_is_left_out_with_the_reason(served: Served) -> None:
    """Without the attribute levels logged with the models, the attribute features cannot
    be computed: the answer says why next actions are missing, and still comes."""
    holder = served.scorer.holder
    models: ModelSet = dataclasses.replace(holder.current, attributes=NO_FITTED_ATTRIBUTES)
    blind = ModelHolder(holder.tracking_uri, phases=holder.phases, _current=models)
    scorer = Scorer(blind, served.taxonomy, served.scorer.setup.config, served.data.content)
    assert scorer.models.next_content is None
    why = scorer.models.missing["next_actions"]
    assert why.startswith(f"{NEXT_CONTENT} v") and "account_" in why
    account = _accounts(served, 1)[0]
    answer = scorer.score_account(
        select_accounts(served.data, [account]),
        account,
        CAMPAIGN,
        rng=np.random.default_rng(0),
    )
    assert answer.actions == () and answer.missing["next_actions"] == why
    batch = scorer.score_accounts_batch(served.data, CAMPAIGN, k=1)
    assert batch["action_1_content_id"].isna().all()
