"""Policy evaluation of the next-content model on logged decisions.

Every test exposure is a decision: an account, a contact, a time, and the eligible items
(the catalog items fitting the account's CRM phase at that time, the rule the logging policy
followed). A policy picks one eligible item per decision. Its value is the mean response
probability of the picked items:

- the **true value** (simulated data only) reads the simulator's response probability of the
  picked item as its sender would send it, over the channels it sends through
  (``features.simulate.truth.sent_response_probability``; the logged responses the
  off-policy estimates read came through those channels too);
- the **off-policy estimates** (any data) re-weight the logged exposures: IPS, self-normalised
  IPS and doubly robust, the latter with the model's own predictions as reward model.

Every interval is a 95 % bootstrap over accounts (a resample draws accounts with all their
decisions, as ``training.metrics.bootstrap_rows`` with ``groups``).

Policies: the model's top-1, random (uniform over eligible), most popular per CRM phase
(most responses in the training split), the hand rule (role fit + the account's share of
touches on the item's topic, ``training.baselines.hand_rule_scores``), the logging policy (the
logged item), and, with truth, the oracle: the eligible item of highest true response
probability given the latent state at the decision. In the simulator a response needs an
exposure (no exposure, no response), so the item of highest true uplift over no exposure is
the same item and the uplift oracle is this oracle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.errors import InvalidInputError
from features.simulate.truth import ResponseState, SimulationTruth
from features.taxonomy import Taxonomy
from models import next_content as nc
from training.baselines import hand_rule_scores
from training.metrics import bootstrap_rows, with_intervals
from training.ope import Z_95, PolicyValue, policy_value

DECISION_PHASE_COLUMN = "decision_crm_phase"
BOOTSTRAP_SEED = 11
# Eligible (decision, item) pairs whose true values are computed at once (true_values).
TRUTH_CHUNK_PAIRS = 1_000_000


# The parameter (``--param next-content.policy_decisions=N``; 0 = every decision) capping
# the test and validation decisions whose every eligible item is scored for the policy
# values and the gate. Above the cap, a seeded sample of whole accounts: scoring every
# eligible item (about 50 per decision) was three quarters of `nba train all` at 100,000
# accounts, and 100,000 decisions already give the policy values intervals about +-0.002
# wide. The response metrics (ROC-AUC, PR-AUC, ...) always read every test exposure.
POLICY_DECISIONS_PARAM = "policy_decisions"
POLICY_DECISIONS = 100_000
POLICY_SAMPLE_SEED = 13


class PolicyEvaluationError(InvalidInputError):
    """Decisions cannot be evaluated as given; the message names the column and value."""


@dataclass
class Decisions:
    """Logged decisions with everything the policies and estimators need.

    ``eligible`` (decisions x items) marks the items each decision could pick, ``logged``
    the column of the logged item, ``propensity`` its logged probability, ``reward`` the
    observed response (0/1), ``scores`` the model's predicted response per item.
    """

    frame: pd.DataFrame
    eligible: np.ndarray
    logged: np.ndarray
    propensity: np.ndarray
    reward: np.ndarray
    scores: np.ndarray


def content_positions(content: pd.DataFrame, content_ids: pd.Series) -> np.ndarray:
    """Row position of each id in ``content`` (raises for ids outside the catalog)."""
    pos = pd.Index(content["content_id"].astype(str)).get_indexer(pd.Index(content_ids.astype(str)))
    if (pos < 0).any():
        bad = content_ids[pos < 0].astype(str).unique()[:5].tolist()
        raise PolicyEvaluationError(
            f"column 'content_id': {bad} are not in the content catalog; expected catalog ids"
        )
    return pos


def phase_codes(values: pd.Series, taxonomy: Taxonomy) -> np.ndarray:
    """Codes into ``taxonomy.phases`` (-1 for NaN or unknown)."""
    text = pd.Series(values).astype(object)
    present = text.notna().to_numpy()
    codes = np.full(len(text), -1, dtype=np.int64)
    codes[present] = pd.Index(taxonomy.phases).get_indexer(pd.Index(text[present].astype(str)))
    return codes


def build_decisions(
    estimator: Any,
    rows: pd.DataFrame,
    feature_columns: list[str],
    label_column: str,
    content: pd.DataFrame,
    taxonomy: Taxonomy,
) -> Decisions:
    """Decisions from training-set rows (one per logged exposure): scores every catalog item
    with the model (``models.next_content.score_candidates``) and marks the eligible ones by
    the ``decision_crm_phase`` column, plus the item shown."""
    for c in (DECISION_PHASE_COLUMN, "content_id", "propensity", "contact_role", label_column):
        if c not in rows.columns:
            raise PolicyEvaluationError(
                f"decision rows lack column {c!r}; expected a next-content training set"
            )
    eligible = nc.eligible_items(
        content, phase_codes(rows[DECISION_PHASE_COLUMN], taxonomy), taxonomy
    )
    logged = content_positions(content, rows["content_id"])
    # What was shown could be shown: the service decides on the predicted phase, so its
    # decisions (in the rows once training reaches the served log) may name an item outside
    # the CRM phase's (the served-log promotion's rule, training.log_promotion).
    eligible[np.arange(len(rows)), logged] = True
    account_cols = [c for c in nc.account_input_columns(taxonomy) if c in rows.columns]
    # A row's account inputs are its account's features as of its as-of date, so decisions
    # of one account, as-of date and contact role score every item alike: each such group
    # is scored once, over the items any of its decisions could pick.
    group, first = _decision_groups(rows)
    group_eligible = np.zeros((len(first), eligible.shape[1]), dtype=bool)
    np.logical_or.at(group_eligible, group, eligible)
    group_scores = nc.score_candidates(
        estimator,
        rows[account_cols].iloc[first].reset_index(drop=True),
        rows["contact_role"].iloc[first].reset_index(drop=True),
        content,
        taxonomy,
        feature_columns,
        eligible=group_eligible,
    )
    scores = np.where(eligible, group_scores[group], np.nan)
    return Decisions(
        frame=rows.reset_index(drop=True),
        eligible=eligible,
        logged=logged,
        propensity=rows["propensity"].to_numpy(dtype=np.float64),
        reward=rows[label_column].to_numpy(dtype=np.float64),
        scores=scores,
    )


def _decision_groups(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(group of each row, position of each group's first row): rows sharing account_id,
    as_of and contact_role (missing values group together) are one group."""
    codes = [
        pd.factorize(rows[c], use_na_sentinel=False)[0].astype(np.int64)
        for c in ("account_id", "as_of", "contact_role")
    ]
    key = np.ravel_multi_index(codes, [int(c.max(initial=0)) + 1 for c in codes])
    _, first, group = np.unique(key, return_index=True, return_inverse=True)
    return group.reshape(-1), first


def popular_items(
    train: pd.DataFrame, label_column: str, content: pd.DataFrame, taxonomy: Taxonomy
) -> np.ndarray:
    """phases x items matrix of response counts in ``train`` per decision CRM phase, plus a
    tie-breaking 1e-6 x the item's responses over all phases (so a phase without responses
    falls back to the overall most popular eligible item)."""
    n_p, n_i = len(taxonomy.phases), len(content)
    responded = train[label_column].to_numpy() == 1
    ph = phase_codes(train[DECISION_PHASE_COLUMN], taxonomy)[responded]
    it = content_positions(content, train["content_id"][responded])
    ok = ph >= 0
    counts = np.bincount(ph[ok] * n_i + it[ok], minlength=n_p * n_i).reshape(n_p, n_i)
    overall = np.bincount(it, minlength=n_i)
    return counts + 1e-6 * overall[None, :]


def evaluate_policies(
    decisions: Decisions,
    popularity: np.ndarray,
    content: pd.DataFrame,
    taxonomy: Taxonomy,
    truth: SimulationTruth | None = None,
) -> dict[str, float]:
    """Metrics ``"<who>.<metric>"`` of every policy on the decisions: off-policy estimates
    (``ips_value``, ``snips_value``, ``dr_value``, each with its 95 % interval
    ``_ci_low``/``_ci_high``) of model, random, popular and the hand rule, the logging
    policy's observed reward; with ``truth`` (:func:`true_policy_metrics`) the true values,
    the oracle's, the shares of the random-to-oracle gain and the doubly robust estimate's
    error against the true value."""
    d = decisions
    n = len(d.logged)
    rows = np.arange(n)
    elig = d.eligible
    n_elig = elig.sum(axis=1)
    q = np.nan_to_num(d.scores)
    q_logged = q[rows, d.logged]
    ph = phase_codes(d.frame[DECISION_PHASE_COLUMN], taxonomy)
    picks = {
        "model": nc.top1(d.scores, elig),
        "baseline_popular": nc.top1(popularity[np.maximum(ph, 0)], elig),
        "baseline_hand_rule": nc.top1(hand_rule_scores(d.frame, content, taxonomy), elig),
    }
    q_target = {who: q[rows, pick] for who, pick in picks.items()}
    q_target["baseline_random"] = np.where(elig, q, 0.0).sum(axis=1) / n_elig
    target = {who: (pick == d.logged).astype(np.float64) for who, pick in picks.items()}
    target["baseline_random"] = 1.0 / n_elig
    values = {
        who: policy_value(d.reward, d.propensity, target[who], q_logged, q_target[who])
        for who in q_target
    }
    accounts = d.frame["account_id"].astype(str).to_numpy()
    out = off_policy_metrics(values, d.reward, target, d.propensity, groups=accounts)
    for who in q_target:
        out[f"{who}.predicted_value"] = float(q_target[who].mean())
    # The standard error the account bootstrap's interval implies.
    dr_low, dr_high = out["model.dr_value_ci_low"], out["model.dr_value_ci_high"]
    out["model.dr_stderr"] = (dr_high - dr_low) / (2 * Z_95)
    out["model.match_rate"] = float((picks["model"] == d.logged).mean())
    out["decisions"] = float(n)
    out["mean_eligible_items"] = float(n_elig.mean())
    if truth is None:
        return out
    true = true_values(d, content, truth)
    per_decision = {who: true[rows, pick] for who, pick in picks.items()}
    per_decision["baseline_random"] = np.where(elig, np.nan_to_num(true), 0.0).sum(axis=1) / n_elig
    per_decision["baseline_logging"] = true[rows, d.logged]
    per_decision["oracle"] = np.where(elig, true, -np.inf).max(axis=1)
    out.update(
        true_policy_metrics(
            per_decision, values["model"], groups=accounts, dr_interval=(dr_low, dr_high)
        )
    )
    if 0 < d.reward.sum() < n:
        # The best achievable ranking of the logged exposures: by their true probability.
        out["oracle.roc_auc"] = float(roc_auc_score(d.reward, true[rows, d.logged]))
    return out


def off_policy_metrics(
    values: dict[str, PolicyValue],
    reward: np.ndarray,
    target: dict[str, np.ndarray],
    propensity: np.ndarray,
    *,
    groups: np.ndarray,
) -> dict[str, float]:
    """``<who>.ips_value``, ``.snips_value`` and ``.dr_value`` of each policy of ``values``
    (``target``: the probability it gives each logged item) and the logging policy's
    ``baseline_logging.observed_value``, each with a 95 % bootstrap interval over accounts
    (``groups``: each decision's account). An account's decisions share its latent state,
    so they are not independent: intervals from the decisions' spread
    (``PolicyValue``'s) come out too narrow."""
    r = np.asarray(reward, dtype=np.float64)
    weights = {who: target[who] / propensity for who in values}

    def statistics(rows: np.ndarray) -> dict[str, float]:
        out = {"baseline_logging.observed_value": float(r[rows].mean())}
        for who, v in values.items():
            w, wr = weights[who][rows], weights[who][rows] * r[rows]
            out[f"{who}.ips_value"] = float(wr.mean())
            out[f"{who}.snips_value"] = float(wr.sum() / w.sum()) if w.sum() > 0 else np.nan
            out[f"{who}.dr_value"] = float(v.dr_terms[rows].mean())
        return out

    out = statistics(np.arange(len(r)))
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    found = bootstrap_rows(len(r), statistics, rng=rng, n_resamples=200, groups=groups)
    out.update(with_intervals(found))
    return out


def true_policy_metrics(
    per_decision: dict[str, np.ndarray],
    model: PolicyValue,
    *,
    groups: np.ndarray,
    dr_interval: tuple[float, float],
) -> dict[str, float]:
    """From each policy's true expected response per decision (``model``, ``baseline_*``,
    ``oracle``): each ``true_value``; the model's and the hand rule's ``share_of_oracle_gain``
    (from random to the oracle); the model's ``lift_over_logging`` and ``gain_over_hand_rule``
    (its gain over random divided by the hand rule's); and the doubly robust estimate
    against the true value, ``dr_error`` (DR minus true, paired per decision); each with a
    95 % bootstrap interval over accounts (``groups``: each decision's account; an account
    holds several). Then ``dr_relative_error``, and, from ``dr_interval`` (the DR value's
    95 % interval), ``dr_z`` and ``dr_covers_truth`` (1 when it holds the true value)."""
    true_model = per_decision["model"]

    def statistics(rows: np.ndarray) -> dict[str, float]:
        v = {who: float(x[rows].mean()) for who, x in per_decision.items()}
        out = {f"{who}.true_value": value for who, value in v.items()}
        out["model.dr_error"] = float((model.dr_terms[rows] - true_model[rows]).mean())
        gain = v["oracle"] - v["baseline_random"]
        for who in ("model", "baseline_hand_rule"):
            share = (v[who] - v["baseline_random"]) / gain if gain > 0 else float("nan")
            out[f"{who}.share_of_oracle_gain"] = share
        out["model.lift_over_logging"] = v["model"] / v["baseline_logging"]
        hand_gain = v["baseline_hand_rule"] - v["baseline_random"]
        out["model.gain_over_hand_rule"] = (
            (v["model"] - v["baseline_random"]) / hand_gain if hand_gain > 0 else float("nan")
        )
        return out

    n = len(per_decision["model"])
    out = statistics(np.arange(n))
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    found = bootstrap_rows(n, statistics, rng=rng, n_resamples=200, groups=groups)
    out.update(with_intervals(found))
    truth = out["model.true_value"]
    low, high = dr_interval
    se = (high - low) / (2 * Z_95)
    out["model.dr_relative_error"] = abs(model.dr.value - truth) / truth
    out["model.dr_z"] = (model.dr.value - truth) / se if se > 0 else 0.0
    out["model.dr_covers_truth"] = float(low <= truth <= high)
    out["model.ips_relative_error"] = abs(model.ips.value - truth) / truth
    return out


def true_values(d: Decisions, content: pd.DataFrame, truth: SimulationTruth) -> np.ndarray:
    """decisions x items: the simulator's response probability of each eligible item for the
    decision's account, contact and time, sent as its sender sends
    (``sent_response_probability``); NaN where not eligible."""
    di, ii = np.nonzero(d.eligible)
    # What the response model reads of a decision is looked up once per decision, not once
    # per eligible item: the pairs of 100,000 accounts' test decisions are tens of millions.
    state = ResponseState.of(
        truth,
        pd.DataFrame(
            {
                "account_id": d.frame["account_id"].astype(str).to_numpy(),
                "contact_id": d.frame["contact_id"].astype(str).to_numpy(),
                "ts": d.frame["ts"].to_numpy(),
            }
        ),
    )
    # Only the items some decision could pick must be in the simulated catalog.
    picked = np.unique(ii)
    item_of_column = np.full(len(content), -1, dtype=np.int64)
    item_of_column[picked] = state.item_positions(content["content_id"].astype(str).iloc[picked])
    out = np.full(d.eligible.shape, np.nan)
    for lo in range(0, len(di), TRUTH_CHUNK_PAIRS):  # bounds the pairs' temporary arrays
        dc, ic = di[lo : lo + TRUTH_CHUNK_PAIRS], ii[lo : lo + TRUTH_CHUNK_PAIRS]
        out[dc, ic] = state.sent_probability(dc, item_of_column[ic])
    return out


def decision_sample(rows: pd.DataFrame, cap: int) -> pd.DataFrame:
    """``rows`` when they hold at most ``cap`` decisions (or ``cap`` is 0), else the rows of
    whole accounts drawn in a seeded random order (``POLICY_SAMPLE_SEED``) up to ``cap``
    decisions: an account's decisions share its latent state, so the intervals resample
    accounts and the sample keeps them whole."""
    if cap <= 0 or len(rows) <= cap:
        return rows
    accounts = rows["account_id"].astype(str).to_numpy()
    names, of_row = np.unique(accounts, return_inverse=True)
    order = np.random.default_rng(POLICY_SAMPLE_SEED).permutation(len(names))
    counts = np.bincount(of_row, minlength=len(names))[order]
    taken = np.zeros(len(names), dtype=bool)
    taken[order[np.cumsum(counts) <= cap]] = True
    return rows.loc[taken[of_row.reshape(-1)]]
