"""The closed-loop benchmark's mechanics on a tiny world: the service decides each week,
the world answers, responses flow back into the online posterior, the loop retrains from
its own store and asks for a promotion on the served log. (The benchmark's targets need a
bigger world and 26 weeks: ``python -m bench.closed_loop``.)"""

from __future__ import annotations

import argparse
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.closed_loop import _promotion_run, run_loop
from bench.loop_world import world_params
from features.simulate import SimulationError
from features.taxonomy import load_taxonomy
from models.contract import NEXT_CONTENT
from serving.store import Store


def test_world_overrides_change_the_named_parameters_and_refuse_unknown_ones() -> None:
    params = world_params("realistic", ["crm_early_record_share=1", "stage_error_rate=0.0"])
    assert params.crm_early_record_share == 1 and params.stage_error_rate == 0.0
    assert world_params("realistic", []) == world_params("realistic", [])
    assert world_params("realistic", []).crm_early_record_share != 1
    with pytest.raises(SimulationError, match="crm_record_share"):
        world_params("realistic", ["crm_record_share=1"])
    with pytest.raises(SimulationError, match="KEY=VALUE"):
        world_params("realistic", ["stage_error_rate"])


def _args(out: Path, **changed: Any) -> argparse.Namespace:
    """The tiny world's loop (``bench.closed_loop.main``'s options), with ``changed``."""
    args = {
        "accounts": 120,
        "seed": 3,
        "weeks": 3,
        "retrain_every": 2,
        "history_months": 9,  # next content needs room for its 35-day purge between splits
        "profile": "legacy",
        "world": [],
        "no_online": False,
        "out": str(out),
        "arbitration": None,
        "equal_values": False,
        "prior_strength": 200.0,
        "draw_share": 1.0,
        "promote_first": False,
        "challenger_share": 0.2,
    }
    return argparse.Namespace(**{**args, **changed})


@pytest.mark.slow
def test_the_loop_decides_answers_learns_and_retrains(tmp_path: Path) -> None:
    result = run_loop(_args(tmp_path))
    weeks = result["weeks"]
    assert [w["week"] for w in weeks] == [1, 2, 3]
    assert all(w["decisions"] > 0 for w in weeks)
    for w in weeks:
        served, oracle, logging = w["served"][0], w["oracle"][0], w["logging"][0]
        assert 0 < served <= oracle <= 1 and 0 < logging <= oracle
        assert w["served"][1] <= served <= w["served"][2]  # the mean inside its interval
        # in the service's own objective too, against the oracle of that objective
        assert 0 < w["served_ev"][0] <= w["oracle_ev"][0] and w["frozen_ev"][0] <= w["oracle_ev"][0]
        # what the service could serve: bounded by the oracle, its true greedy by its best
        assert 0 < w["greedy_true"][0] <= w["restricted"][0] <= oracle
        # the champion's contact with its best item: above the champion, bounded by the oracle
        assert w["frozen"][0] <= w["frozen_contact"][0] <= oracle
        # the oracle's pick with the interests the data show: bounded by the oracle
        assert 0 < w["informed"][0] <= oracle and w["informed_ev"][0] <= w["oracle_ev"][0]
        # the service's ranking on those probabilities: within what it could serve
        assert 0 < w["informed_greedy"][0] <= w["restricted"][0]
    value = result["last_weeks"]["value"]
    assert 0 < value["served_share"][0] <= 1 and 0 < value["frozen_share"][0] <= 1
    target = result["targets"]["served_last_weeks_share_of_oracle_ev"]
    assert [target["value"], *target["interval"]] == value["served_share"]
    [promotion] = result["promotions"]
    _check_promotion(promotion, weeks)
    checked = result["targets"]["promotion_intervals_cover_truth"]
    assert checked["of"] == 1 and checked["covered"] == int(promotion["dr_covers_truth"])
    store = Store(f"sqlite:///{tmp_path / 'nba.db'}", load_taxonomy())
    try:
        # the CRM's stage records of the loop's weeks reached the store
        stages = store.contract_tables().tables["stages"]
        assert (stages["ts"] >= pd.Timestamp(result["first_decision"])).any()
        counts = store.posterior_counts(result["frozen_versions"][NEXT_CONTENT])
        trials = sum(c.trials for c in counts.values())
        successes = sum(c.successes for c in counts.values())
        expected = sum(c.expected for c in counts.values())
    finally:
        store.dispose()
    # every decision the first model served counted once (a later version counts its own;
    # a repeat view of a standing decision is an impression and counts nothing)
    with sqlite3.connect(tmp_path / "nba.db") as db:
        [(decided, rewarded)] = db.execute(
            "select count(*), count(rewarded_at) from recommendations "
            "where kind = 'decision' and model_versions like ?",
            (f'%"{NEXT_CONTENT}": "{result["frozen_versions"][NEXT_CONTENT]}"%',),
        ).fetchall()
    assert decided >= sum(w["decisions"] for w in weeks[:2]) - 2
    assert trials == decided
    # a success per rewarded decision: the world's answers to it, or the contact's own
    # touch of the item in the window (the reward's terms), which the world's answers do
    # not count; so not bounded by them
    assert 0 < successes == rewarded <= decided
    # the model's expectation of those decisions: a probability per decision
    assert 0 < expected < trials
    # and the JSON's account of what the posterior saw is that of the store
    seen = result["posterior"]
    assert (seen["trials"], seen["successes"]) == (trials, successes)
    assert seen["expected"] == pytest.approx(expected, abs=0.01)


def _check_promotion(promotion: dict[str, Any], weeks: list[dict[str, Any]]) -> None:
    """The loop's one promotion: judged on the served log, its estimates beside the truth."""
    assert promotion["after_week"] == 2 and promotion["trained"]
    # judged on the served log: the first week's decisions, whose response windows have
    # closed; the second week's are younger than the window and wait
    assert promotion["promote_exit"] == 0, promotion["promote_said"]
    assert 20 <= promotion["decisions"] <= weeks[0]["decisions"]
    # every judged decision is found among the world's decisions, with its true values
    truth = promotion["true_on_judged"]
    assert truth["matched"] == truth["of"] == promotion["decisions"]
    assert 0 < truth["served"] < 1 and 0 < truth["challenger"] < 1
    # what the reward counts: a response, or the item's own touch by the contact
    assert truth["served"] <= truth["served_reward"] < 1
    assert truth["challenger"] <= truth["challenger_reward"] < 1
    low, high = promotion["champion_served"][1], promotion["champion_served"][2]
    assert promotion["champion_covers_truth"] == (low <= truth["served_reward"] <= high)
    # the bar: the champion's own policy on the same decisions, valued and checked too
    assert 0 < truth["champion"] <= truth["champion_reward"] < 1
    low, high = promotion["champion_policy"][1], promotion["champion_policy"][2]
    assert promotion["champion_policy_covers_truth"] == (low <= truth["champion_reward"] <= high)
    gap = truth["challenger_reward"] - truth["champion_reward"]
    low, high = promotion["difference"][1], promotion["difference"][2]
    assert promotion["difference_covers_truth"] == (low <= gap <= high)
    assert promotion["challenger_truly_better"] == (truth["challenger"] > truth["champion"])


@pytest.mark.slow
def test_promote_first_judges_the_newcomer_on_the_decisions_served_after_it(
    tmp_path: Path,
) -> None:
    result = run_loop(_args(tmp_path, weeks=5, promote_first=True))
    assert result["promote_first"] is True
    first, second = result["promotions"]
    # the first retrain has no newcomer to judge: it trains one and puts it on trial
    assert first["after_week"] == 2 and first["trained"]
    assert first["promote_exit"] is None and not first["moved"]
    frozen = int(result["frozen_versions"][NEXT_CONTENT])
    assert f"v{frozen + 1} is on trial" in first["challenge_said"][0], first["challenge_said"]
    assert first["dr_covers_truth"] is None and first["challenger_truly_better"] is None
    # the second judges it before training the next: the version the first one trained
    assert second["after_week"] == 4 and second["trained"]
    assert second["promote_exit"] == 0, second["promote_said"]
    said = second["promote_said"][0]
    assert f"challenger v{frozen + 1} vs champion v{frozen} " in said, said
    # the judgement ended its trial, and the next newcomer's began
    assert f"the trial of v{frozen + 1} ends" in second["promote_said"][-1]
    assert f"v{frozen + 2} is on trial" in second["challenge_said"][0]
    # on decisions served after it was trained (which judging it at once cannot see),
    # each found among the world's decisions with its true values
    _, picks = _promotion_run(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert picks is not None and len(picks) == second["decisions"] >= 20
    trained_at = pd.Timestamp(result["first_decision"]) + pd.Timedelta(weeks=2)
    assert (pd.to_datetime(picks["ts"], utc=True) >= trained_at).any()
    truth = second["true_on_judged"]
    assert truth["matched"] == truth["of"] == second["decisions"]
    assert second["dr_covers_truth"] is not None
    # each judged pick, the challenger's and the champion's, was one the service could
    # serve at that decision, as its log holds
    with sqlite3.connect(tmp_path / "nba.db") as db:
        logged = dict(db.execute("select id, servable from recommendations").fetchall())
        policies = dict(
            db.execute("select id, policy from recommendations where rank = 1").fetchall()
        )
        roles = dict(db.execute("select contact_id, coalesce(role, '') from contacts").fetchall())
    for pick in picks.fillna("").itertuples():
        servable = json.loads(logged[pick.exposure_id])
        assert pick.served_content_id in servable[pick.contact_id or ""]
        for item, role in (
            (pick.challenger_content_id, pick.challenger_role),
            (pick.champion_content_id, pick.champion_role),
        ):
            assert any(item in servable[c] for c in servable if roles.get(c, "") == role), pick
    # judged on decisions of its trial (its own pick in a share of them, as the policy each
    # was served with says) and on those before it since what it learned from
    judged = Counter(policies[e] for e in picks["exposure_id"])
    assert judged[f"ev-greedy-epsilon-v1/thompson+challenger-v{frozen + 1}-0.2"] > 0, judged
