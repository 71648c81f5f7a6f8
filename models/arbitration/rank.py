"""Ranking: expected value (P(response) x value x fit x churn lever) per candidate, and
:func:`rank_actions`, which runs one decision from the inputs to the :class:`Decision`."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from features.timestamps import to_ns
from models.arbitration.candidates import (
    AccountContext,
    CandidateRows,
    PreparedCandidates,
    candidates_for,
    eligibility_rules,
    select_rows,
)
from models.arbitration.caps import WeekCaps, greedy_over, servable_order, week_caps
from models.arbitration.catalog import PreparedCatalog, prepare_catalog
from models.arbitration.config import ArbitrationConfig, ChurnLever, Weights, churn_band
from models.arbitration.decision import Action, Decision
from models.arbitration.errors import ArbitrationError
from models.arbitration.holdback import Slots, fill_slots, held_back
from models.arbitration.thompson import OnlinePosterior, posterior_params, top_probabilities

# The policy name's suffix when the top slot is drawn from the online posterior (every
# decision draws); a smaller draw share is named with it (online_suffix).
THOMPSON_SUFFIX = "/thompson"


# The policy name's suffix when a share of decisions goes to the challenger's pick
# (challenger_suffix).
CHALLENGER_SUFFIX = "+challenger"


def challenger_suffix(share: float, version: str = "") -> str:
    """The policy name's suffix of decisions whose top slot went to the challenger
    ``version`` in ``share`` of them: ``+challenger-v<version>-<share>`` (without a version
    ``+challenger-<share>``), so the served log tells each trial apart."""
    tried = f"-v{version}" if version else ""
    return f"{CHALLENGER_SUFFIX}{tried}-{share:g}"


def online_suffix(draw_share: float) -> str:
    """The policy name's suffix of the online policy with ``draw_share``: ``/thompson`` when
    every decision draws, ``/thompson-<share>`` otherwise (``/thompson-0``: the best
    posterior mean, no draw), so the served log tells the policies apart."""
    return THOMPSON_SUFFIX if draw_share >= 1 else f"{THOMPSON_SUFFIX}-{draw_share:g}"


class Scores(NamedTuple):
    """Per candidate row: the expected value and its factors."""

    value: np.ndarray
    phase_fit: np.ndarray
    role_match: np.ndarray  # bool: the item lists the contact's role
    role_fit: np.ndarray
    lever: np.ndarray
    fit: np.ndarray  # phase_fit x role_fit
    ev: np.ndarray  # p x value x fit x lever


def score(
    rows: CandidateRows,
    prepared: PreparedCandidates,
    cat: PreparedCatalog,
    proba: np.ndarray,
    risk: float,
    config: ArbitrationConfig,
) -> Scores:
    """The expected value of each candidate row: ``p x value x fit x lever``, where fit is
    the item's phase fit under the phase distribution ``proba`` times the contact's role
    fit, and the lever is the churn lever at churn risk ``risk``."""
    item = rows.item
    phase_fit = item_phase_fit(cat, proba, config.weights)[item]
    cand_role = prepared.role_code[rows.contact]
    role_match = (cand_role >= 0) & cat.role_fit[item, np.maximum(cand_role, 0)]
    role_match |= cat.any_role[item]  # an item for every role fits any contact
    # An account-level action has no contact whose role it could miss: its fit is the
    # phase fit alone (as for a cold start), and the role rule does not hold it back.
    role_match |= rows.contact == prepared.account_level
    role_fit = role_weight(role_match, config.weights)
    lever = churn_lever(cat, item, risk, config.churn_lever)
    value = cat.value[item]
    fit = phase_fit * role_fit
    return Scores(
        value=value,
        phase_fit=phase_fit,
        role_match=role_match,
        role_fit=role_fit,
        lever=lever,
        fit=fit,
        ev=rows.p * value * fit * lever,
    )


def item_phase_fit(cat: PreparedCatalog, proba: np.ndarray, weights: Weights) -> np.ndarray:
    """Each item's phase weight (exact, adjacent or none) averaged over the predicted phase
    distribution ``proba``: items float for one distribution (phases), decisions x items
    for one per decision (decisions x phases)."""
    w = weights.phase_fit
    weight = cat.phase_weight(w.exact, w.adjacent, w.none)
    return (weight @ proba.T).T


def role_weight(role_match: np.ndarray, weights: Weights) -> np.ndarray:
    """The role fit of each ``role_match`` (the item lists the contact's role, or needs
    none): the policy's ``match`` weight, else its ``no_match``."""
    w = weights.role_fit
    return np.where(role_match, w.match, w.no_match)


def churn_lever(
    cat: PreparedCatalog, item: np.ndarray, risk: float | np.ndarray, lever: ChurnLever
) -> np.ndarray:
    """Per candidate row: ``1 + lever_strength x risk`` for a retention play (its content
    type is one of ``retention_content_types``), 1 otherwise; ``item`` and an array of
    risks broadcast (decisions x items from items in a row and risks in a column)."""
    retention = cat.is_retention(lever.retention_content_types)
    return np.where(retention[item], 1.0 + lever.lever_strength * risk, 1.0)


def rank_actions(
    context: AccountContext,
    candidates: pd.DataFrame | PreparedCandidates,
    catalog: pd.DataFrame | PreparedCatalog,
    config: ArbitrationConfig,
    *,
    k: int,
    rng: np.random.Generator,
    now: pd.Timestamp,
    explore: bool | None = None,
    online: OnlinePosterior | None = None,
    challenger_share: float = 0.0,
    challenger_version: str = "",
) -> Decision:
    """The top ``k`` next actions for ``context``'s account, held-back candidates and the
    policy's propensities.

    ``candidates`` has one row per (contact_id, content_id) with ``p_response`` (the
    next-content model's probability; rows with NaN are not candidates). Every content_id
    must be in ``catalog`` and every contact_id in ``context.contacts``. Candidates prepared
    by :func:`prepare_candidates` (against the same catalog and contacts) skip that
    preparation. ``now`` is the decision time: "recently" and "this week" count back from it.

    Returns at most ``k`` actions, fewer when fewer pass the rules and caps; equal expected
    values keep the candidates' row order. Caps count distinct (contact, content) actions
    served in the 7 days before ``now``; an action already among them may be served again
    without using a slot, so repeated requests in one week return a stable list.

    ``explore`` None draws the epsilon-greedy coin from ``rng`` (probability
    ``config.exploration_rate``), except when a servable action was served this week
    already (a repeat view of a standing decision): then nothing is drawn, the answer is
    greedy and every propensity is that of the greedy rule (``Decision.exploration_rate`` 0).
    True / False force the coin's outcome (for callers that draw it themselves at the
    configured rate); propensities are then those of the configured mixture. Set
    ``exploration_rate`` to 0 for a purely greedy policy. Each action says whether it was
    served this week already (``Action.repeat``: an impression of that decision).

    ``online`` (learning between retrains, :mod:`models.arbitration.thompson`): when the
    coin is drawn here (``explore`` None) and the decision does not stand, the top slot not
    explored goes to a draw from each action's probability of winning the posterior draw of
    its rate (the account's segment is its likeliest phase) instead of to the best expected
    value, in ``online.draw_share`` of the decisions; in the others to the best posterior
    mean (:func:`~models.arbitration.thompson.top_probabilities`); propensities are those
    of that mixture and the policy is named ``<policy_name>`` + :func:`online_suffix`.

    ``challenger_share`` (a next-content version under trial, its predictions in the
    candidates' ``p_challenger``): when the coin is drawn here and the decision does not
    stand, the top slot not explored goes in that share of the decisions to the
    challenger's own pick (the servable action of highest expected value on its
    predictions) and in the others as above; propensities are those of that mixture, the
    policy is named with :func:`challenger_suffix` (of ``challenger_version``, the version
    on trial) and ``Decision.challenger`` says when
    the top slot is the challenger's pick and not what the champion's policy would serve
    without it. Its decisions are the on-policy evidence ``nba promote`` judges it on.
    """
    if k < 1:
        raise ArbitrationError(f"k = {k}; expected at least 1 action")
    risk = float(context.churn_risk)
    band = churn_band(risk, config)
    cat, prepared, rows, scores, rule, caps, servable = _eligible(
        context, candidates, catalog, config, now
    )
    ranker = greedy_over(servable, rows, caps, distinct=config.contact_policy.distinct_content)
    # A request for an account with a servable action decided this week already looks
    # again at a standing decision (a widget reloaded, a page opened again): it draws no
    # exploration, so looking again explores nothing new and re-shows what stands without
    # using a cap slot; its answer is the greedy one, each action in it served with
    # certainty under that rule (an account explores at most once while decisions stand).
    standing = explore is None and bool(caps.already[servable].any())
    eps = 0.0 if standing else config.exploration_rate
    sampled = None
    drawn = explore is None and not standing and len(servable) > 1
    if online is not None and drawn:
        sampled = _win_probabilities(online, context, servable, rows, scores, cat)
    trial = drawn and challenger_share > 0 and rows.p_challenger is not None
    challenger_top = -1
    if trial:
        sampled, challenger_top = _with_challenger(
            sampled, servable, rows, scores, challenger_share
        )
    slots = fill_slots(
        ranker, k, eps, rng=rng, explore=False if standing else explore, sampled=sampled
    )
    for pos, code in slots.capped:
        rule[servable[pos]] = code
    policy = config.policy_name
    if online is not None:
        policy += online_suffix(online.draw_share)
    if trial:
        policy += challenger_suffix(challenger_share, challenger_version)
    return Decision(
        account_id=context.account_id,
        actions=_actions(slots, servable, rows, scores, cat, prepared, caps.already),
        held_back=held_back(rule, scores.ev, rows, cat, prepared, config.held_back_per_rule),
        policy=policy,
        churn_band=band,
        churn_risk=risk,
        exploration_rate=eps,
        explored=slots.explored,
        n_eligible=len(servable),
        segment=None if online is None else segment_of(context),
        servable=_servable_by_contact(servable, rows, cat, prepared),
        # the champion's greedy pick is position 0: the challenger's own pick elsewhere
        challenger=bool(
            challenger_top > 0 and not slots.explored and slots.picks[0] == challenger_top
        ),
    )


def _with_challenger(
    sampled: np.ndarray | None,
    servable: np.ndarray,
    rows: CandidateRows,
    scores: Scores,
    share: float,
) -> tuple[np.ndarray, int]:
    """(the top slot's probabilities per servable position with ``share`` of them moved to
    the challenger's pick, that pick's position). Without an online draw the champion's
    part is its greedy pick (position 0); ties go to the first in the champion's order."""
    assert rows.p_challenger is not None  # checked by the caller
    at = servable
    challenger_ev = rows.p_challenger[at] * (scores.value * scores.fit * scores.lever)[at]
    top = int(np.argmax(challenger_ev))
    champion = np.zeros(len(at)) if sampled is None else (1.0 - share) * sampled
    if sampled is None:
        champion[0] = 1.0 - share
    champion[top] += share
    return champion, top


class _Eligible(NamedTuple):
    cat: PreparedCatalog
    prepared: PreparedCandidates
    rows: CandidateRows
    scores: Scores
    rule: np.ndarray  # per row: 0 eligible, else the code of the rule or cap holding it
    caps: WeekCaps
    servable: np.ndarray  # the rows that could fill the top slot, best expected value first


def _eligible(
    context: AccountContext,
    candidates: pd.DataFrame | PreparedCandidates,
    catalog: pd.DataFrame | PreparedCatalog,
    config: ArbitrationConfig,
    now: pd.Timestamp,
) -> _Eligible:
    """The candidate rows scored, the rules and caps applied, and the servable rows."""
    cat, proba = _catalog_and_proba(context, catalog)
    now_ns = to_ns(now)
    prepared = candidates_for(context, candidates, cat)
    rows = select_rows(prepared, context)
    scores = score(rows, prepared, cat, proba, float(context.churn_risk), config)
    rule = eligibility_rules(
        rows,
        context,
        cat,
        prepared,
        config.eligibility,
        phase_fit=scores.phase_fit,
        role_match=scores.role_match,
        now_ns=now_ns,
    )
    caps = week_caps(context.served_last_week, rows, cat, prepared, config.contact_policy, now_ns)
    servable = servable_order(rule, scores.ev, rows.contact, caps)
    return _Eligible(cat, prepared, rows, scores, rule, caps, servable)


class ServableActions(NamedTuple):
    """The actions that could fill a decision's top slot after the eligibility rules and
    the contact caps, best expected value first: who and what, the model's P(response) and
    the rest of the expected value (value x fit x lever), so that ``p x rest`` is what
    arbitration ranks by."""

    contact_ids: list[str]
    content_ids: list[str]
    p: np.ndarray
    rest: np.ndarray


def servable_actions(
    context: AccountContext,
    candidates: pd.DataFrame | PreparedCandidates,
    catalog: pd.DataFrame | PreparedCatalog,
    config: ArbitrationConfig,
    *,
    now: pd.Timestamp,
) -> ServableActions:
    """What :func:`rank_actions` could put in the top slot for ``context`` at ``now`` (the
    same rules, caps and scores, nothing drawn): what a policy restricted to the service's
    rules may serve."""
    e = _eligible(context, candidates, catalog, config, now)
    at = e.servable
    return ServableActions(
        contact_ids=[str(c) for c in e.prepared.contact_ids[e.rows.contact[at]]],
        content_ids=[str(c) for c in e.cat.content_ids[e.rows.item[at]]],
        p=e.rows.p[at],
        rest=(e.scores.value * e.scores.fit * e.scores.lever)[at],
    )


def _servable_by_contact(
    servable: np.ndarray, rows: CandidateRows, cat: PreparedCatalog, prepared: PreparedCandidates
) -> dict[str, tuple[str, ...]]:
    """contact_id -> the content_ids of the ``servable`` rows addressed to it, best expected
    value first (:attr:`Decision.servable`)."""
    contact = rows.contact[servable]
    items = cat.content_ids[rows.item[servable]]
    # per contact (a handful), not per action (about a hundred): this runs on every answer
    return {
        str(prepared.contact_ids[c]): tuple(str(i) for i in items[contact == c].tolist())
        for c in dict.fromkeys(contact.tolist())
    }


def segment_of(context: AccountContext) -> str:
    """The account's segment for the online posterior: its likeliest phase."""
    proba = np.asarray(context.phase_proba, dtype=np.float64).ravel()
    return str(context.phase_names[int(np.argmax(proba))]) if len(proba) else ""


def _win_probabilities(
    online: OnlinePosterior,
    context: AccountContext,
    servable: np.ndarray,
    rows: CandidateRows,
    scores: Scores,
    cat: PreparedCatalog,
) -> np.ndarray:
    """Per servable row: its probability of taking the top slot (of winning the posterior
    draw, or of the best posterior mean in the share of decisions that do not draw)."""
    item = rows.item[servable]
    successes, expected = online.item_counts(segment_of(context), cat.content_ids)
    shape, rate = posterior_params(
        rows.p[servable], successes[item], expected[item], online.prior_strength
    )
    rest = (scores.value * scores.fit * scores.lever)[servable]
    return top_probabilities(shape, rate, rest, online.draw_share)


def _catalog_and_proba(
    context: AccountContext, catalog: pd.DataFrame | PreparedCatalog
) -> tuple[PreparedCatalog, np.ndarray]:
    """(the catalog prepared for the context's phases, its phase probabilities as a flat
    float array). Raises :class:`ArbitrationError` when either does not match the phases."""
    phases = tuple(str(p) for p in context.phase_names)
    cat = catalog if isinstance(catalog, PreparedCatalog) else prepare_catalog(catalog, phases)
    if cat.phase_names != phases:
        raise ArbitrationError(
            f"the prepared catalog's phases {list(cat.phase_names)} differ from the "
            f"context's phase_names {list(phases)}"
        )
    proba = np.asarray(context.phase_proba, dtype=np.float64).ravel()
    if len(proba) != len(phases):
        raise ArbitrationError(
            f"phase_proba has {len(proba)} values for {len(phases)} phase_names {list(phases)}"
        )
    return cat, proba


def _actions(
    slots: Slots,
    servable: np.ndarray,
    rows: CandidateRows,
    scores: Scores,
    cat: PreparedCatalog,
    prepared: PreparedCandidates,
    already: np.ndarray,
) -> tuple[Action, ...]:
    """The filled slots as actions, rank 1 first; ``already`` marks the candidate rows
    decided this week already (repeats)."""
    item, contact = rows.item, rows.contact
    return tuple(
        Action(
            content_id=str(cat.content_ids[item[r]]),
            contact_id=str(prepared.contact_ids[contact[r]]),
            role=str(prepared.contact_roles[contact[r]]),
            title=str(cat.title[item[r]]),
            content_type=str(cat.content_type[item[r]]),
            channel=str(cat.channel[item[r]]),
            expected_value=float(scores.ev[r]),
            p_response=float(rows.p[r]),
            value=float(scores.value[r]),
            fit=float(scores.fit[r]),
            phase_fit=float(scores.phase_fit[r]),
            role_fit=float(scores.role_fit[r]),
            lever=float(scores.lever[r]),
            propensity=slots.propensity[slot],
            rank=slot + 1,
            explored=slots.explored and slot == 0,
            repeat=bool(already[r]),
        )
        for slot, r in enumerate(int(servable[pos]) for pos in slots.picks)
    )
