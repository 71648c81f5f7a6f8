"""What scoring one account returns, and the error for a request that cannot be scored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from features.errors import InvalidInputError
from models.arbitration import Action, ChurnBand, HeldBack
from models.explain import Reason, WhyNow


class ScoringError(InvalidInputError):
    """A request that cannot be scored; the message names the table, column and value."""


@dataclass(frozen=True)
class ScoredAction:
    """One ranked action with the reasons the next-content model gives for it."""

    action: Action
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class AccountScore:
    """Everything one recommendation answer holds.

    ``phase_proba`` maps each taxonomy phase (default phase model) to its probability
    (they sum to 1); ``churn_risk`` is calibrated (None for a cold start: nothing is known
    about the account); ``actions`` are in rank order with their propensities under the
    policy; ``held_back`` the "why not?" list; ``versions`` the model versions used;
    ``why_now`` what makes this the moment to act (``models.explain.why_now``);
    ``outcomes`` outcome name -> calibrated probability of each binary outcome model served
    (``churn`` too); ``missing`` answer part (``phase``, ``risk``, ``next_actions``) -> why
    it is absent (no model of it is served); ``known`` is False for an account the data
    do not hold (a cold start; nothing about it is stored).
    """

    account_id: str
    as_of: pd.Timestamp
    phase_proba: dict[str, float]  # empty without a phase model
    phase: str | None  # None without a phase model
    phase_reasons: tuple[Reason, ...]
    churn_risk: float | None
    churn_band: ChurnBand | None
    churn_reasons: tuple[Reason, ...]
    actions: tuple[ScoredAction, ...]
    held_back: tuple[HeldBack, ...]
    policy: str
    explored: bool
    versions: Mapping[str, str]
    cold_start: bool
    cache_hit: bool
    known: bool = True
    outcomes: Mapping[str, float] = field(default_factory=dict)
    missing: Mapping[str, str] = field(default_factory=dict)
    # The online posterior's segment the answer's decisions count in (None: none).
    segment: str | None = None
    why_now: tuple[WhyNow, ...] = ()
    # What could have filled the top slot (``models.arbitration.Decision.servable``; empty:
    # not known, e.g. a cold start), logged with the top-slot decision.
    servable: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
