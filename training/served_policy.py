"""How a next-content challenger would have decided on the service's served log, and what
that is worth off-policy (``training.log_promotion`` says which decisions and how the
promotion reads the result).

:func:`judge` values the challenger's top-1 policy on the served decisions. With the
service's models' answers on each decision day (phase probabilities, churn risk), the
arbitration policy and the account's contacts, the challenger decides as the service would
with it (:func:`service_ranking` per contact role: expected value = P(response) x value x
phase fit x role fit x churn lever, held back by the phase and role rules) over every
contact the account had at the decision; the logged propensity is that of the served
(contact, item) among all of them. Without those it keeps the served contact and ranks by
P(response) x value among the items fitting the CRM phase and the contact's role.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.errors import InvalidInputError
from features.schema import JourneyData
from features.taxonomy import Taxonomy
from features.validate.columns import read_servable
from models import next_content as nc
from models.arbitration import (
    ACCOUNT_LEVEL,
    ArbitrationConfig,
    churn_lever,
    item_phase_fit,
    prepare_catalog,
    role_weight,
)
from training.log_promotion import (
    CHURN_RISK_COLUMN,
    PHASE_PROBA_PREFIX,
    SERVABLE_COLUMN,
    LogJudgement,
)
from training.ope import (
    LOGGING,
    MODEL,
    LoggedDecisions,
    PolicyValue,
    account_clusters,
    account_folds,
    compare_policies,
    logged_policy_value,
    paired_difference,
    policy_value,
    recalibrated_reward_model,
)
from training.policy import DECISION_PHASE_COLUMN, content_positions, phase_codes


def role_fits(catalog: pd.DataFrame, contact_role: pd.Series) -> np.ndarray:
    """decisions x items bool: the item lists the decision's contact role, the service's
    role rule (``eligibility.require_role_fit`` of the shipped arbitration); an item listing
    no role, and a contact of unknown role, fit everything."""
    roles = pd.Series(contact_role).astype(object).reset_index(drop=True)
    known = roles.notna().to_numpy()
    out = np.ones((len(roles), len(catalog)), dtype=bool)
    listed = catalog["roles"] if "roles" in catalog else pd.Series([None] * len(catalog))
    for j, item_roles in enumerate(listed):
        if item_roles is None or len(item_roles) == 0:
            continue
        out[:, j] = ~known | roles.isin([str(r) for r in item_roles]).to_numpy()
    return out


def logged_servable(
    rows: pd.DataFrame, catalog: pd.DataFrame
) -> list[dict[str, np.ndarray] | None]:
    """Per decision in ``rows``: contact_id ("" for an account-level play) -> the catalog
    positions of the items the service could serve it then, from the log's
    :data:`~training.log_promotion.SERVABLE_COLUMN` (items the catalog no longer holds are
    left out); None where the log does not say. Raises InvalidInputError naming the exposure
    whose ``servable`` is not ``{"contact_id": ["content_id", ...]}`` JSON."""
    if SERVABLE_COLUMN not in rows:
        return [None] * len(rows)
    position = {str(c): j for j, c in enumerate(catalog["content_id"].astype(str))}
    out: list[dict[str, np.ndarray] | None] = []
    for exposure, text in zip(rows["exposure_id"].astype(str), rows[SERVABLE_COLUMN], strict=True):
        if not isinstance(text, str) or not text:
            out.append(None)
            continue
        try:
            parsed = read_servable(text)
        except ValueError as exc:
            raise InvalidInputError(
                f"exposures.servable of exposure {exposure!r}: {text[:80]!r} is not "
                f'{{"contact_id": ["content_id", ...]}} JSON ({exc})'
            ) from None
        out.append(
            {
                str(contact): np.array(
                    [position[str(c)] for c in items if str(c) in position], dtype=np.int64
                )
                for contact, items in parsed.items()
            }
        )
    return out


def _contact_key(contact_id: Any) -> str:
    """A decision's contact as its servable set names it (an account-level play's is
    ``ACCOUNT_LEVEL``, as the service logs it)."""
    return ACCOUNT_LEVEL if contact_id is None or pd.isna(contact_id) else str(contact_id)


def service_ranking(
    rows: pd.DataFrame, catalog: pd.DataFrame, taxonomy: Taxonomy, config: ArbitrationConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(decisions x items weight, decisions x items eligible): what the service multiplies
    P(response) by and which items its rules let it serve, from the service models' answers
    in ``rows`` (:func:`served_decisions` with models) and the arbitration ``config``, as
    ``models.arbitration.rank_actions`` scores: value x phase fit under the predicted phase
    distribution x churn lever, held back below ``min_phase_fit`` and, with
    ``require_role_fit``, where the item does not list the contact's role. (The contact
    policy, recent consumption and dismissals are left out: where the log holds the
    decision's servable actions, :func:`judge` takes those instead.)"""
    cat = prepare_catalog(catalog, taxonomy.phases)
    proba = rows[[PHASE_PROBA_PREFIX + p for p in taxonomy.phases]].to_numpy(dtype=np.float64)
    phase_fit = item_phase_fit(cat, proba, config.weights)
    role_match = role_fits(catalog, rows["contact_role"])
    risk = rows[CHURN_RISK_COLUMN].to_numpy(dtype=np.float64)
    items = np.arange(len(cat.content_ids))
    levers = churn_lever(cat, items[None, :], risk[:, None], config.churn_lever)
    weight = cat.value[None, :] * phase_fit * role_weight(role_match, config.weights) * levers
    rules = config.eligibility
    eligible = np.ones(weight.shape, dtype=bool)
    if rules.require_phase_fit:
        eligible &= phase_fit >= rules.min_phase_fit
    if rules.require_role_fit:
        eligible &= role_match
    return weight, eligible


def judge(
    estimator: Any,
    rows: pd.DataFrame,
    feature_columns: list[str],
    content: pd.DataFrame,
    taxonomy: Taxonomy,
    config: ArbitrationConfig | None = None,
    contacts: pd.DataFrame | None = None,
    champion: Any | None = None,
) -> LogJudgement:
    """The challenger ``estimator``'s top-1 policy valued on the decision ``rows``
    (:func:`served_decisions`), beside the value of what was served and, with the
    ``champion`` model, beside the champion's own top-1 policy decided the same way: the
    bar a challenger must clear (what was served also paid for exploration, so a copy of
    the champion would look better than it). Both policies are valued with one reward
    model, so a decision both policies take alike adds exactly 0 to their paired
    difference: the champion's predictions recalibrated on the log
    (:func:`training.ope.recalibrated_reward_model`, cross-fitted over accounts; the
    challenger's without a champion model). Not the challenger's own predictions: it picks
    what they rate highest, so an overconfident challenger's predictions overrate its
    picks, and where the log holds little evidence of a pick (served with a small
    propensity, or not servable then) the DR value is nearly that model term alone. The
    champion's predictions did not pick the challenger's picks, and its own picks are what
    the service served most, so the log's weights correct their model term; recalibrated,
    a champion whose probabilities are off in scale (or reversed) values them as the log
    says they pay.

    With the arbitration ``config``, rows holding the service models' answers and the
    account's ``contacts`` (account_id, role, first_seen: :func:`known_contacts`), the
    challenger decides as the service would with it: the best (contact, item) pair over
    the contacts the account had at the decision (:func:`service_ranking` per role; the
    model tells contacts apart by role only, so among contacts of one role it takes each
    alike, with probability 1 / their number). The logged propensities are those of the
    served (contact, item) among all of them, so a challenger that kept the served contact
    would be given weights inflated by the inverse of the contact's share. Otherwise it keeps
    the served contact and ranks by P(response) x value among the items fitting the CRM
    phase and the contact's role."""
    if config is not None and contacts is not None and CHURN_RISK_COLUMN in rows:
        return _judge_as_served(
            estimator, rows, feature_columns, content, taxonomy, config, contacts, champion
        )
    catalog = content.reset_index(drop=True)
    n = len(rows)
    eligible = nc.eligible_items(
        catalog, phase_codes(rows[DECISION_PHASE_COLUMN], taxonomy), taxonomy
    )
    eligible &= role_fits(catalog, rows["contact_role"])
    # where the log says what the service could serve the contact then, exactly that
    for i, servable in enumerate(logged_servable(rows, catalog)):
        if servable is not None:
            eligible[i] = False
            eligible[i, servable.get(_contact_key(rows["contact_id"].iat[i]), [])] = True
    logged = content_positions(catalog, rows["content_id"])
    eligible[np.arange(n), logged] = True  # what was served could be served
    account_cols = [c for c in nc.account_input_columns(taxonomy) if c in rows.columns]

    def score(model: Any) -> np.ndarray:
        return nc.score_candidates(
            model, rows[account_cols], rows["contact_role"], catalog, taxonomy,
            feature_columns, eligible=eligible,
        )  # fmt: skip

    scores = score(estimator)
    champion_scores = None if champion is None else score(champion)
    reward = rows[nc.LABEL_COLUMN].to_numpy(dtype=np.float64)
    groups = rows["account_id"].astype(str).to_numpy()
    at = np.arange(n)
    # the one reward model of both policies (see above)
    base = scores if champion_scores is None else champion_scores
    q = recalibrated_reward_model(base, base[at, logged], reward, account_folds(groups))
    decisions = LoggedDecisions(
        q=q,
        eligible=eligible,
        logged=logged,
        propensity=rows["propensity"].to_numpy(dtype=np.float64),
        reward=reward,
        actions=catalog["content_id"].astype(str).tolist(),
        groups=groups,
    )
    # The service ranks by expected value, P(response) x the item's value
    # (models.arbitration; 1 without one): a top-1 by P alone would value a policy nobody
    # serves.
    value = (
        catalog["value"].to_numpy(dtype=np.float64, na_value=1.0)
        if "value" in catalog
        else np.ones(len(catalog))
    )
    pick = nc.top1(scores * value[None, :], eligible)
    values = compare_policies(decisions, pick)
    ids = catalog["content_id"].astype(str).to_numpy()
    picks = _picks(rows, ids[logged], ids[pick], [""] * n, (pick == logged).astype(float))
    own: PolicyValue | None = None
    if champion_scores is not None:
        kept = nc.top1(champion_scores * value[None, :], eligible)
        target = (kept == logged).astype(float)
        own = policy_value(
            decisions.reward,
            decisions.propensity,
            target,
            np.nan_to_num(q[at, logged]),
            np.nan_to_num(q[at, kept]),
            decisions.clusters(),
        )
        picks = _with_champion_picks(picks, ids[kept], [""] * n, target)
    return _judgement(values[MODEL], values[LOGGING], picks, own)


def _judgement(
    challenger: PolicyValue,
    served: PolicyValue,
    picks: pd.DataFrame,
    champion: PolicyValue | None = None,
) -> LogJudgement:
    """The judgement of ``challenger``'s values beside what was ``served`` and, when
    known, the ``champion``'s own policy on the same decisions (``picks``: one row each);
    the paired difference is against the champion's policy when known, else against what
    was served."""
    bar = champion if champion is not None else served
    return LogJudgement(
        decisions=len(picks),
        ips=challenger.ips,
        snips=challenger.snips,
        dr=challenger.dr,
        champion=served.dr,
        difference=paired_difference(challenger, bar),
        champion_policy=None if champion is None else champion.dr,
        picks=picks,
    )


def _with_champion_picks(
    picks: pd.DataFrame,
    content_ids: np.ndarray,
    role: list[str] | np.ndarray,
    target_propensity: np.ndarray,
) -> pd.DataFrame:
    """``picks`` with the champion's own pick per decision (its item, role and probability
    of serving what was served)."""
    return picks.assign(
        champion_content_id=content_ids,
        champion_role=role,
        champion_propensity=target_propensity,
    )


def _picks(
    rows: pd.DataFrame,
    served: np.ndarray,
    challenger: np.ndarray,
    role: list[str] | np.ndarray,
    target_propensity: np.ndarray,
) -> pd.DataFrame:
    """The :data:`PICKS_ARTIFACT` frame of the judged ``rows``."""
    return pd.DataFrame(
        {
            "exposure_id": rows["exposure_id"].astype(str).to_numpy(),
            "account_id": rows["account_id"].astype(str).to_numpy(),
            "contact_id": rows["contact_id"].to_numpy(),
            "ts": rows["ts"].to_numpy(),
            "served_content_id": served,
            "challenger_content_id": challenger,
            "challenger_role": role,
            "challenger_propensity": target_propensity,
            "champion_content_id": "",
            "champion_role": "",
            "champion_propensity": np.nan,
            "propensity": rows["propensity"].to_numpy(dtype=np.float64),
            "reward": rows[nc.LABEL_COLUMN].to_numpy(dtype=np.float64),
        }
    )


def known_contacts(data: JourneyData) -> pd.DataFrame:
    """contact_id, account_id, role ("" unknown) and first_seen (the contact's first
    touchpoint or exposure; NaT: none) of every contact: the contacts a decision could
    address are its account's contacts first seen by then."""
    seen = pd.concat(
        [
            data.touchpoints[["contact_id", "ts"]].dropna(subset=["contact_id"]),
            data.exposures[["contact_id", "ts"]].dropna(subset=["contact_id"]),
        ]
    )
    first = seen.groupby(seen["contact_id"].astype(str))["ts"].min()
    contacts = data.contacts
    ids = contacts["contact_id"].astype(str)
    role = contacts["role"].astype(object) if "role" in contacts else pd.Series([None] * len(ids))
    return pd.DataFrame(
        {
            "contact_id": ids.to_numpy(),
            "account_id": contacts["account_id"].astype(str).to_numpy(),
            "role": role.where(role.notna(), "").astype(str).to_numpy(),
            "first_seen": ids.map(first).to_numpy(),
        }
    )


def _role_names(role: pd.Series) -> np.ndarray:
    """Each contact role as a string, "" for an unknown one."""
    named = role.astype(object)
    return named.where(named.notna(), "").astype(str).to_numpy()


def roles_at_decisions(rows: pd.DataFrame, contacts: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """(roles, decisions x roles count): how many of the account's contacts known at each
    decision hold each role ("" unknown); the served contact counts at least once."""
    decisions = pd.DataFrame(
        {"account_id": rows["account_id"].astype(str).to_numpy(), "ts": rows["ts"].to_numpy()}
    ).reset_index(names="decision")
    known = decisions.merge(contacts, on="account_id")
    first = pd.to_datetime(known["first_seen"], utc=True)
    known = known.loc[(first.isna() | (first <= known["ts"])).to_numpy()]
    served_role = _role_names(rows["contact_role"])
    roles = sorted(set(known["role"]) | set(served_role))
    code = {r: j for j, r in enumerate(roles)}
    counts = np.zeros((len(rows), len(roles)))
    np.add.at(counts, (known["decision"].to_numpy(), known["role"].map(code).to_numpy()), 1.0)
    served = np.array([code[r] for r in served_role], dtype=np.int64)
    at = np.arange(len(rows))
    counts[at, served] = np.maximum(counts[at, served], 1.0)
    return roles, counts


def _servable_by_role(
    rows: pd.DataFrame, catalog: pd.DataFrame, contacts: pd.DataFrame, roles: list[str]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(``roles`` with any role only the logged servable sets name appended, decisions
    whose servable set the log holds, roles x decisions x items: how many of the account's
    contacts of each role the service could serve each item at the decision)."""
    servable = logged_servable(rows, catalog)
    said = np.array([s is not None for s in servable], dtype=bool)
    role_of = dict(zip(contacts["contact_id"].astype(str), contacts["role"], strict=True))
    named = {role_of.get(c, "") for s in servable if s is not None for c in s}
    roles = roles + sorted(named - set(roles))
    code = {r: j for j, r in enumerate(roles)}
    out = np.zeros((len(roles), len(rows), len(catalog)))
    for i, by_contact in enumerate(servable):
        for contact, items in (by_contact or {}).items():
            out[code[role_of.get(contact, "")], i, items] += 1.0  # a contact counts once
    return roles, said, out


def _judge_as_served(
    estimator: Any,
    rows: pd.DataFrame,
    feature_columns: list[str],
    content: pd.DataFrame,
    taxonomy: Taxonomy,
    config: ArbitrationConfig,
    contacts: pd.DataFrame,
    champion: Any | None = None,
) -> LogJudgement:
    """:func:`judge` with the challenger (and the ``champion``) choosing the contact too
    (see there)."""
    catalog = content.reset_index(drop=True)
    n, n_items = len(rows), len(catalog)
    roles, counts = roles_at_decisions(rows, contacts)
    served_role_code = np.array([roles.index(r) for r in _role_names(rows["contact_role"])])
    logged = content_positions(catalog, rows["content_id"])
    at = np.arange(n)
    # where the log says what the service could serve then: per role, decision and item,
    # how many of the account's contacts of that role it could serve the item
    roles, said, servable_by_role = _servable_by_role(rows, catalog, contacts, roles)
    counts = np.pad(counts, ((0, 0), (0, len(roles) - counts.shape[1])))
    # among the contacts of the served role, how many a policy picking the served item
    # takes alike (its probability of what was served is one over that)
    alike = counts[at, served_role_code]
    alike[said] = np.maximum(servable_by_role[served_role_code, at, logged][said], 1.0)
    account_cols = [c for c in nc.account_input_columns(taxonomy) if c in rows.columns]
    # the service models' answers alone: the ranking per role needs no feature column
    answers = rows[[PHASE_PROBA_PREFIX + ph for ph in taxonomy.phases] + [CHURN_RISK_COLUMN]]
    p = np.full((len(roles), n, n_items), np.nan)
    ev = np.full((len(roles), n, n_items), -np.inf)
    ev_champion = np.full((len(roles), n, n_items), -np.inf)
    # the predictions the reward model recalibrates: the champion's when given (see judge)
    base = p if champion is None else np.full((len(roles), n, n_items), np.nan)
    for j, role in enumerate(roles):
        as_role = pd.Series([role or None] * n, dtype=object)
        weight, eligible = service_ranking(
            answers.assign(contact_role=as_role.to_numpy()), catalog, taxonomy, config
        )
        eligible &= counts[:, j : j + 1] > 0
        eligible[said] = servable_by_role[j, said] > 0
        mine = served_role_code == j
        eligible[at[mine], logged[mine]] = True  # what was served could be served
        p[j] = nc.score_candidates(
            estimator, rows[account_cols], as_role, catalog, taxonomy, feature_columns,
            eligible=eligible,
        )  # fmt: skip
        ev[j] = np.where(eligible, p[j] * weight, -np.inf)
        if champion is not None:
            theirs = nc.score_candidates(
                champion, rows[account_cols], as_role, catalog, taxonomy, feature_columns,
                eligible=eligible,
            )  # fmt: skip
            ev_champion[j] = np.where(eligible, theirs * weight, -np.inf)
            base[j] = theirs
    reward = rows[nc.LABEL_COLUMN].to_numpy(dtype=np.float64)
    groups = rows["account_id"].astype(str).to_numpy()
    clusters = account_clusters(groups)
    propensity = rows["propensity"].to_numpy(dtype=np.float64)
    # the one reward model of both policies, decisions first (see judge)
    q = recalibrated_reward_model(
        base.transpose(1, 0, 2), base[served_role_code, at, logged], reward, account_folds(groups)
    ).transpose(1, 0, 2)

    def top(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, PolicyValue]:
        """A policy's (role, item, probability of what was served, value) from its
        expected values per role; valued with the reward model ``q``."""
        flat = values.transpose(1, 0, 2).reshape(n, -1).argmax(axis=1)
        role_at, item_at = flat // n_items, flat % n_items
        same = (role_at == served_role_code) & (item_at == logged)
        target = np.where(same, 1.0 / alike, 0.0)
        value = policy_value(
            reward,
            propensity,
            target,
            q[served_role_code, at, logged],
            q[role_at, at, item_at],
            clusters,
        )
        return role_at, item_at, target, value

    pick_role, pick_item, target, challenger = top(ev)
    ids = catalog["content_id"].astype(str).to_numpy()
    picks = _picks(rows, ids[logged], ids[pick_item], np.asarray(roles)[pick_role], target)
    own: PolicyValue | None = None
    if champion is not None:
        kept_role, kept_item, kept_target, own = top(ev_champion)
        picks = _with_champion_picks(
            picks, ids[kept_item], np.asarray(roles)[kept_role], kept_target
        )
    return _judgement(challenger, logged_policy_value(reward, clusters), picks, own)
