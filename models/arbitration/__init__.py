"""Arbitration: three model outputs -> ranked next actions for one account.

Inputs per account: the phase model's probabilities over the taxonomy phases, the churn
model's calibrated churn risk and the next-content model's P(response) for each
(contact, content item) candidate. Each candidate gets

    expected value = P(response) x value(item) x fit x churn lever

where fit = phase fit (the item's phases weighted by the predicted phase distribution) x
role fit (does the item list the contact's role) and the churn lever multiplies retention
plays by ``1 + lever_strength x churn risk``. Eligibility rules (request channel, dismissed
or consumed recently, wrong phase, wrong role) and the contact policy (distinct actions per
account and per contact per week) hold candidates back; :attr:`Decision.held_back` says which
and why ("why not?"). An account without current contacts gets account-level plays: one
addressee :data:`ACCOUNT_LEVEL` without a role (:func:`addressees`), whose items need no role
fit and are bounded by the account cap alone.

The policy is epsilon-greedy: with probability ``exploration_rate`` the top-1 slot is drawn
uniformly from the actions that could fill it, otherwise it is the highest expected value;
the other slots are filled greedily. Every action carries its propensity under that mixture
(exactly, for every slot), so later policies can be evaluated off-policy from the logs.
With an online posterior (learning between retrains, ``thompson``) the top slot not explored
is drawn by Thompson sampling on a calibration posterior per (phase, item) that scales each
account's own prediction, with each action's exact probability of being drawn as its
propensity.

Everything here is pure: no I/O except :func:`load_arbitration_config`.

One module per concern, each importing only those before it: ``errors``, ``config`` (the
policy file), ``catalog`` (the content catalog as arrays), ``candidates`` (account context,
candidates, filters and eligibility rules), ``caps`` (the contact policy and greedy slot
filling), ``decision`` (what is returned), ``thompson`` (the online posterior and each action's
probability of winning its draw), ``holdback`` (exploration with propensities and the
"why not?" list) and ``rank`` (expected value and :func:`rank_actions`).
"""

from models.arbitration.candidates import (
    ACCOUNT_LEVEL,
    HOLD_RULES,
    AccountContext,
    HoldRule,
    PreparedCandidates,
    Recent,
    addressees,
    prepare_candidates,
    prepare_contact_grid,
    prepare_grid,
)
from models.arbitration.caps import _Greedy as _Greedy  # checked by the tests
from models.arbitration.catalog import PreparedCatalog, prepare_catalog
from models.arbitration.config import (
    DEFAULT_ARBITRATION_PATH,
    ArbitrationConfig,
    ChurnBand,
    churn_band,
    load_arbitration_config,
)
from models.arbitration.decision import Action, Decision, HeldBack, decision_record, servable_json
from models.arbitration.errors import ArbitrationConfigError, ArbitrationError
from models.arbitration.holdback import _draw_groups as _draw_groups  # checked by the tests
from models.arbitration.rank import (
    CHALLENGER_SUFFIX,
    THOMPSON_SUFFIX,
    ServableActions,
    churn_lever,
    item_phase_fit,
    rank_actions,
    role_weight,
    segment_of,
    servable_actions,
)
from models.arbitration.thompson import OnlinePosterior, top_probabilities, win_probabilities

__all__ = [
    "ACCOUNT_LEVEL",
    "CHALLENGER_SUFFIX",
    "DEFAULT_ARBITRATION_PATH",
    "HOLD_RULES",
    "AccountContext",
    "Action",
    "ArbitrationConfig",
    "ArbitrationConfigError",
    "ArbitrationError",
    "ChurnBand",
    "Decision",
    "HeldBack",
    "HoldRule",
    "OnlinePosterior",
    "THOMPSON_SUFFIX",
    "PreparedCandidates",
    "PreparedCatalog",
    "Recent",
    "ServableActions",
    "addressees",
    "churn_band",
    "churn_lever",
    "decision_record",
    "servable_json",
    "item_phase_fit",
    "load_arbitration_config",
    "prepare_candidates",
    "prepare_contact_grid",
    "prepare_grid",
    "prepare_catalog",
    "rank_actions",
    "role_weight",
    "segment_of",
    "servable_actions",
    "top_probabilities",
    "win_probabilities",
]
