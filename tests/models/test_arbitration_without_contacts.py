"""Arbitration for an account without contacts: account-level plays (no role rule, only the
account cap), and an empty answer, not an error, when there is nothing to offer."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.arbitration import (
    ACCOUNT_LEVEL,
    AccountContext,
    ArbitrationConfig,
    Decision,
    addressees,
    prepare_catalog,
    rank_actions,
)
from models.cold_start import rank_cold_start

PHASES = ["awareness", "consideration", "selection"]
NOW = pd.Timestamp("2025-03-01 12:00", tz="UTC")


def _catalog() -> pd.DataFrame:
    """W1 (awareness; IT), B1 (awareness; buyer), D1 (selection; buyer), R1 (awareness; no
    role listed), E1 (consideration; IT)."""
    return pd.DataFrame(
        {
            "content_id": ["W1", "B1", "D1", "R1", "E1"],
            "content_type": ["whitepaper", "blog_article", "live_demo", "checklist", "video"],
            "phases": [
                ["awareness"],
                ["awareness"],
                ["selection"],
                ["awareness"],
                ["consideration"],
            ],
            "roles": [["it"], ["economic_buyer"], ["economic_buyer"], [], ["it"]],
            "topic": ["security"] * 5,
            "channel": ["website"] * 5,
            "value": [2.0, 1.0, 4.0, 1.5, 1.0],
        }
    )


def _config(per_contact: int = 10, per_account: int = 20) -> ArbitrationConfig:
    raw = ArbitrationConfig().model_dump()
    raw["exploration_rate"] = 0.0
    raw["contact_policy"]["max_actions_per_contact_per_week"] = per_contact
    raw["contact_policy"]["max_actions_per_account_per_week"] = per_account
    raw["weights"]["phase_fit"] = {"exact": 1.0, "adjacent": 0.0, "none": 0.0}
    return ArbitrationConfig.model_validate(raw)


def _no_contacts() -> pd.DataFrame:
    return pd.DataFrame({"contact_id": pd.Series([], dtype="str"), "role": []})


def _rank(
    config: ArbitrationConfig,
    *,
    k: int = 3,
    served: pd.DataFrame | None = None,
    contacts: pd.DataFrame | None = None,
    p: float = 0.2,
) -> Decision:
    who = addressees(_no_contacts()) if contacts is None else contacts
    items = _catalog()["content_id"].tolist()
    candidates = pd.DataFrame(
        {
            "contact_id": np.repeat(who["contact_id"].astype(str).to_numpy(), len(items)),
            "content_id": np.tile(items, len(who)),
            "p_response": p,
        }
    )
    context = AccountContext(
        account_id="A1",
        phase_proba=np.array([1.0, 0.0, 0.0]),
        phase_names=PHASES,
        churn_risk=0.0,
        contacts=who,
        **({} if served is None else {"served_last_week": served}),
    )
    return rank_actions(
        context,
        candidates,
        _catalog(),
        config,
        k=k,
        rng=np.random.default_rng(0),
        now=NOW,
    )


def test_an_account_without_contacts_has_one_account_level_addressee() -> None:
    who = addressees(_no_contacts())
    assert who["contact_id"].tolist() == [ACCOUNT_LEVEL] and who["role"].isna().all()
    some = pd.DataFrame({"contact_id": ["P1"], "role": ["it"]})
    assert addressees(some) is some  # accounts with contacts are unchanged


def test_account_level_plays_skip_the_role_rule_and_keep_the_phase_rule() -> None:
    decision = _rank(_config())

    # every awareness item, whatever roles it lists, best expected value first
    assert [a.content_id for a in decision.actions] == ["W1", "R1", "B1"]
    for a in decision.actions:
        assert (a.contact_id, a.role) == (ACCOUNT_LEVEL, "")
        assert a.role_fit == 1.0 and a.phase_fit == 1.0
        assert a.expected_value == 0.2 * a.value
    held = {h.content_id: h.rule for h in decision.held_back}
    assert held == {"D1": "wrong phase", "E1": "wrong phase"}


def test_account_level_plays_are_bounded_by_the_account_cap_not_the_contact_cap() -> None:
    assert len(_rank(_config(per_contact=1, per_account=10)).actions) == 3

    # served last week, logged without a contact: they are served again without new slots
    served = pd.DataFrame(
        {
            "contact_id": [None, None],
            "content_id": ["W1", "R1"],
            "ts": [NOW - pd.Timedelta(days=1)] * 2,
        }
    )
    decision = _rank(_config(per_contact=1, per_account=2), served=served)
    assert [a.content_id for a in decision.actions] == ["W1", "R1"]
    assert {h.content_id: h.rule for h in decision.held_back}["B1"] == "account cap"


def test_nothing_to_offer_is_an_empty_answer() -> None:
    no_candidates = _rank(_config(), contacts=_no_contacts())
    assert no_candidates.actions == () and no_candidates.held_back == ()

    empty_catalog = prepare_catalog(_catalog().iloc[:0], PHASES)
    context = AccountContext("A1", np.array([1.0, 0.0, 0.0]), PHASES, 0.5, contacts=_no_contacts())
    none = pd.DataFrame({"contact_id": [], "content_id": [], "p_response": []})
    decision = rank_actions(
        context, none, empty_catalog, _config(), k=3, rng=np.random.default_rng(0), now=NOW
    )
    assert decision.actions == () and decision.churn_band is not None

    cold = rank_cold_start(np.array([0.2, 0.5, 0.3]), empty_catalog, {}, 3)
    assert cold.actions == () and PHASES[cold.phase] == "consideration"
