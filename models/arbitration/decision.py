"""What arbitration returns: the ranked :class:`Action` list and the :class:`HeldBack`
candidates of one :class:`Decision`, and the decision as plain data
(:func:`decision_record`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from models.arbitration.candidates import HoldRule
from models.arbitration.config import ChurnBand


@dataclass(frozen=True)
class Action:
    """One ranked next action: send ``content_id`` to ``contact_id`` (rank 1 = best)."""

    content_id: str
    contact_id: str
    role: str
    title: str
    content_type: str
    channel: str
    expected_value: float
    p_response: float
    value: float
    fit: float
    phase_fit: float
    role_fit: float
    lever: float
    propensity: float
    rank: int
    explored: bool
    # Served to this contact as a decision in the week before already: this serving re-shows
    # that decision (an impression); it uses no cap slot and is no new decision to evaluate.
    repeat: bool = False


@dataclass(frozen=True)
class HeldBack:
    """A candidate that was not served and the rule that held it back."""

    content_id: str
    contact_id: str
    role: str
    title: str
    content_type: str
    rule: HoldRule
    expected_value: float


@dataclass(frozen=True)
class Decision:
    """The ranked actions for one account, the held-back candidates ("why not?", the best
    few per rule, best expected value first), the policy that decided and the churn band.
    ``n_eligible`` is the number of actions that could have filled the top-1 slot (the
    exploration draws among them)."""

    account_id: str
    actions: tuple[Action, ...]
    held_back: tuple[HeldBack, ...]
    policy: str
    churn_band: ChurnBand
    churn_risk: float
    exploration_rate: float
    explored: bool
    n_eligible: int
    # The online posterior's segment the decision counts in (None: decided without one).
    segment: str | None = None
    # What could have filled the top slot: contact_id ("" for an account-level play) ->
    # content_ids, best expected value first. Logged with the decision, so another policy
    # judged on the log chooses among what this one could (``servable_json``).
    servable: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The top slot is the challenger's own pick (a version under trial), not what the
    # champion's policy would have served without the trial.
    challenger: bool = False

    def actions_frame(self) -> pd.DataFrame:
        """The actions as a DataFrame, one row per action in rank order."""
        columns = list(Action.__dataclass_fields__)
        return pd.DataFrame([a.__dict__ for a in self.actions], columns=columns)

    def held_back_frame(self) -> pd.DataFrame:
        """The held-back candidates as a DataFrame."""
        columns = list(HeldBack.__dataclass_fields__)
        return pd.DataFrame([h.__dict__ for h in self.held_back], columns=columns)


def servable_json(servable: Mapping[str, Sequence[str]]) -> str:
    """A decision's servable actions as the JSON text the log keeps (the ``servable``
    column of the data contract's exposures): ``{"contact_id": ["content_id", ...]}``."""
    return json.dumps({c: list(items) for c, items in servable.items()}, separators=(",", ":"))


def decision_record(decision: Decision) -> dict[str, Any]:
    """The decision as plain JSON-able data (for logs and API responses)."""
    return {
        "account_id": decision.account_id,
        "policy": decision.policy,
        "churn_band": decision.churn_band,
        "churn_risk": decision.churn_risk,
        "exploration_rate": decision.exploration_rate,
        "explored": decision.explored,
        "n_eligible": decision.n_eligible,
        "actions": [a.__dict__ for a in decision.actions],
        "held_back": [h.__dict__ for h in decision.held_back],
    }
