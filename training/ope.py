"""Off-policy values of next-action policies with 95 % intervals, on logged decisions.

A decision is one logged action (an item, or "no action" where the data have a control)
with its logging propensity and the reward observed after it. A policy is valued three ways
(``training.metrics`` holds the point estimators): inverse propensity scoring (IPS),
self-normalised IPS (SNIPS) and doubly robust (DR, with the model's predicted rewards as
the reward model). Each is a mean of per-decision terms (SNIPS a ratio of two sums). With
each decision's account (``LoggedDecisions.groups``) the 95 % intervals are a percentile
bootstrap over accounts, as every other interval of the project (``training.metrics``:
200 resamples, seed 11): an account's decisions are not independent, so resampling them
one by one would narrow the interval; every policy is valued on the same resampled
accounts, so paired differences stay paired. Without accounts, or with one decision per
account, the terms are independent: the mean +- 1.96 standard errors (SNIPS: by the delta
method, terms ``w (r - V) / mean(w)``).

Policies compared: the learned policy (a pick per decision), every single action ("always
a" where a is eligible; where it is not, whatever the logging policy does, valued by the
observed reward, so every policy answers every decision), random (uniform over the
eligible actions) and the logging policy (the observed mean reward: its own value, needing
no weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models import churn
from training.metrics import MetricError, doubly_robust_value, ips_value, snips_value
from training.result import Gate

Z_95 = 1.959963984540054
LOGGING = "logging"
RANDOM = "random"
MODEL = "model"
GATE_METRIC = "policy_value_dr"
# The bootstrap over accounts, as training.metrics.bootstrap_rows everywhere else.
BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 11


@dataclass(frozen=True)
class Estimate:
    """A point value and its 95 % interval."""

    value: float
    low: float
    high: float

    def covers(self, truth: float) -> bool:
        """Whether the interval holds ``truth``."""
        return bool(self.low <= truth <= self.high)

    def as_metrics(self, key: str) -> dict[str, float]:
        """``key`` with the value, ``key_ci_low`` and ``key_ci_high`` with the interval (the
        metric names every report reads intervals by)."""
        return {key: self.value, f"{key}_ci_low": self.low, f"{key}_ci_high": self.high}


class Clusters:
    """The decisions' accounts, for a percentile bootstrap over accounts of sums of
    per-decision terms: each resample draws as many accounts as there are, with replacement,
    with all their decisions (the cluster bootstrap of ``training.metrics.bootstrap_rows``,
    held as how often each account is drawn, so that one matrix product values a statistic
    on every resample)."""

    def __init__(self, codes: np.ndarray) -> None:
        # ``codes``: each decision's account as 0 .. accounts - 1 (np.unique's inverse)
        self.codes = codes
        self.n_groups = int(codes.max()) + 1
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        # resamples x accounts: how often each account is drawn
        self.draws = rng.multinomial(
            self.n_groups, np.full(self.n_groups, 1.0 / self.n_groups), size=BOOTSTRAP_RESAMPLES
        ).astype(np.float32)

    def __len__(self) -> int:
        return len(self.codes)

    def sums(self, terms: np.ndarray) -> np.ndarray:
        """Each account's sum of ``terms`` (one per decision)."""
        return np.bincount(self.codes, weights=terms, minlength=self.n_groups)

    def ratio_interval(self, numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float]:
        """The 95 % percentile interval of sum(numerator) / sum(denominator) (per decision)
        over the resamples."""
        num = self.draws @ self.sums(numerator).astype(np.float32)
        den = self.draws @ self.sums(denominator).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            stats = num.astype(np.float64) / den
        stats = stats[np.isfinite(stats)]
        if not len(stats):
            return float("nan"), float("nan")
        low, high = np.percentile(stats, [2.5, 97.5])
        return float(low), float(high)


@dataclass(frozen=True)
class PolicyValue:
    """One policy's IPS, SNIPS and DR values; ``dr_terms`` are the per-decision DR terms
    (their mean is the DR value), kept for paired differences between policies, and
    ``clusters`` the decisions' accounts their intervals resampled (None: independent)."""

    ips: Estimate
    snips: Estimate
    dr: Estimate
    dr_terms: np.ndarray
    clusters: Clusters | None = None


@dataclass(frozen=True)
class LoggedDecisions:
    """Decisions as arrays: ``q`` (decisions x actions) the model's predicted reward of
    every action, ``eligible`` (same shape) the actions each decision could take,
    ``logged`` the column of the logged action, ``propensity`` its logging probability
    (in (0, 1]) and ``reward`` what followed. ``actions`` names the columns; ``groups``
    each decision's account (None: the decisions are taken as independent)."""

    q: np.ndarray
    eligible: np.ndarray
    logged: np.ndarray
    propensity: np.ndarray
    reward: np.ndarray
    actions: list[str]
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        n, a = self.q.shape
        if self.eligible.shape != (n, a) or len(self.actions) != a:
            raise MetricError(
                f"q has shape {(n, a)}, eligible {self.eligible.shape} and {len(self.actions)} "
                "action names; expected (decisions, actions) for both and one name per action"
            )
        for name in ("logged", "propensity", "reward"):
            if len(getattr(self, name)) != n:
                raise MetricError(f"{name} has {len(getattr(self, name))} values; expected {n}")
        if n < 2:
            raise MetricError(f"{n} decisions; expected at least 2 to put an interval on a value")
        if self.groups is not None and len(self.groups) != n:
            raise MetricError(f"groups has {len(self.groups)} values; expected {n}")

    def clusters(self) -> Clusters | None:
        """The decisions' accounts for the intervals (:func:`account_clusters`)."""
        return account_clusters(self.groups)


def account_clusters(groups: np.ndarray | None) -> Clusters | None:
    """The decisions' accounts (``groups``, one per decision) for the intervals; None when
    not given, or when every account has one decision: the terms are then independent, and
    their normal interval is the one independent terms always get (a per-decision log such
    as a randomised e-mail campaign keeps the intervals it was judged with)."""
    if groups is None:
        return None
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    if int(codes.max()) + 1 == len(codes):
        return None
    return Clusters(codes)


def mean_estimate(terms: np.ndarray, clusters: Clusters | None = None) -> Estimate:
    """The mean of per-decision terms with its 95 % interval: the bootstrap over
    ``clusters`` (the decisions' accounts), else the normal one of independent terms."""
    t = np.asarray(terms, dtype=np.float64)
    mean = float(t.mean())
    if clusters is not None:
        low, high = clusters.ratio_interval(t, np.ones_like(t))
        return Estimate(mean, low, high)
    half = Z_95 * float(t.std(ddof=1)) / np.sqrt(len(t)) if len(t) > 1 else float("nan")
    return Estimate(mean, mean - half, mean + half)


def policy_value(
    reward: np.ndarray,
    propensity: np.ndarray,
    target_propensity: np.ndarray,
    q_logged: np.ndarray,
    q_target: np.ndarray,
    clusters: Clusters | None = None,
) -> PolicyValue:
    """IPS, SNIPS and DR values of a target policy giving the logged action
    ``target_propensity``, whose expected predicted reward per decision is ``q_target``
    (``q_logged``: the prediction for the logged action); intervals over ``clusters``
    (the decisions' accounts) when given."""
    w = target_propensity / propensity
    ips = ips_value(reward, propensity, target_propensity)
    snips = snips_value(reward, propensity, target_propensity)
    dr_terms = q_target + w * (reward - q_logged)
    dr = doubly_robust_value(reward, propensity, target_propensity, q_logged, q_target)
    if np.isnan(snips):
        snips_ci = Estimate(float("nan"), float("nan"), float("nan"))
    elif clusters is not None:
        snips_ci = Estimate(snips, *clusters.ratio_interval(w * reward, w))
    else:
        # Delta method for a ratio of means: the terms' spread around the estimate.
        snips_terms = w * (reward - snips) / w.mean()
        half = Z_95 * float(snips_terms.std(ddof=1)) / np.sqrt(len(w))
        snips_ci = Estimate(snips, snips - half, snips + half)
    ips_ci = mean_estimate(w * reward, clusters)
    dr_ci = mean_estimate(dr_terms, clusters)
    return PolicyValue(
        ips=Estimate(ips, ips_ci.low, ips_ci.high),
        snips=snips_ci,
        dr=Estimate(dr, dr_ci.low, dr_ci.high),
        dr_terms=dr_terms,
        clusters=clusters,
    )


def logged_policy_value(reward: np.ndarray, clusters: Clusters | None = None) -> PolicyValue:
    """The logging policy's own value: the observed mean reward for all three estimators
    (its importance weights are all 1)."""
    r = np.asarray(reward, dtype=np.float64)
    observed = mean_estimate(r, clusters)
    return PolicyValue(ips=observed, snips=observed, dr=observed, dr_terms=r, clusters=clusters)


def paired_difference(a: PolicyValue, b: PolicyValue) -> Estimate:
    """DR value of ``a`` minus that of ``b`` on the same decisions, with the 95 % interval
    of the paired per-decision differences (tighter than two separate intervals)."""
    return mean_estimate(a.dr_terms - b.dr_terms, a.clusters)


def compare_policies(d: LoggedDecisions, model_pick: np.ndarray) -> dict[str, PolicyValue]:
    """Values of the learned policy (``model_pick``: its action column per decision), each
    single action (keyed by its name), random and the logging policy."""
    n = len(d.logged)
    rows = np.arange(n)
    q = np.nan_to_num(d.q)
    q_logged = q[rows, d.logged]
    clusters = d.clusters()
    out: dict[str, PolicyValue] = {}
    out[MODEL] = policy_value(
        d.reward,
        d.propensity,
        (model_pick == d.logged).astype(np.float64),
        q_logged,
        q[rows, model_pick],
        clusters,
    )
    for a, name in enumerate(d.actions):
        can = d.eligible[:, a]
        if not can.any():
            continue
        # Where the action cannot be taken the policy does what the logging policy does: it
        # gives the logged action the logged propensity (weight 1, the observed reward).
        pi = np.where(can, (d.logged == a).astype(np.float64), d.propensity)
        out[name] = policy_value(
            d.reward, d.propensity, pi, q_logged, np.where(can, q[:, a], q_logged), clusters
        )
    n_eligible = d.eligible.sum(axis=1)
    pi_random = d.eligible[rows, d.logged] / n_eligible
    q_random = np.where(d.eligible, q, 0.0).sum(axis=1) / n_eligible
    out[RANDOM] = policy_value(d.reward, d.propensity, pi_random, q_logged, q_random, clusters)
    out[LOGGING] = logged_policy_value(d.reward, clusters)
    return out


def best_single_action(values: dict[str, PolicyValue], actions: list[str]) -> str:
    """The single action whose DR value is highest at the low end of its 95 % interval
    (first listed on ties). By point value alone the pick among many actions would be the
    luckiest: an action logged a few times with small propensities can show a value far
    above any real one (on the simulator, above 1 for a 0/1 reward)."""
    valued = [a for a in actions if a in values and np.isfinite(values[a].dr.low)]
    if not valued:
        raise MetricError("no single action is eligible in any decision")
    return max(valued, key=lambda a: (values[a].dr.low, -valued.index(a)))


def gate_of(values: dict[str, PolicyValue], actions: list[str]) -> Gate:
    """The learned policy's DR value against the stronger of the best single action and the
    logging policy (validation split), with their paired difference."""
    best = best_single_action(values, actions)
    baseline = best if values[best].dr.value >= values[LOGGING].dr.value else LOGGING
    name = "logging policy" if baseline == LOGGING else f"best single action: {best}"
    difference = paired_difference(values[MODEL], values[baseline])
    return Gate(
        metric=GATE_METRIC,
        model=values[MODEL].dr.value,
        baseline=name,
        baseline_value=values[baseline].dr.value,
        model_ci=(values[MODEL].dr.low, values[MODEL].dr.high),
        baseline_ci=(values[baseline].dr.low, values[baseline].dr.high),
        difference_ci=(difference.low, difference.high),
    )


# A reward model recalibrated on the log needs responses on both sides of each fold.
MIN_CALIBRATION_RESPONSES = 10


def account_folds(groups: np.ndarray) -> np.ndarray:
    """Each decision's fold (0 or 1) by a stable hash of its account: an account's decisions
    share a fold, as they share a bootstrap draw."""
    hashed = pd.util.hash_pandas_object(pd.Series(groups).astype(str), index=False)
    return (hashed.to_numpy() % np.uint64(2)).astype(np.int64)


def recalibrated_reward_model(
    q: np.ndarray, q_logged: np.ndarray, reward: np.ndarray, folds: np.ndarray
) -> np.ndarray:
    """The reward model ``q`` (decisions first, any further axes) recalibrated on the log:
    the Platt scaling of the churn model (:func:`models.churn.fit_calibration`, ``sigmoid(a
    logit(q) + b)``) fitted on each logged reward against its logged action's ``q_logged``,
    cross-fitted (a decision's (a, b) come from the other fold's decisions, so a DR term
    never uses a fit of its own reward). A model that ranks well but states its differences
    too flatly (or too steeply) then values the policies' picks as the log says they pay; a
    fold with fewer than :data:`MIN_CALIBRATION_RESPONSES` responses or non-responses keeps
    ``q`` as it is."""
    out = np.array(q, dtype=np.float64, copy=True)
    for fold in (0, 1):
        fit_on = folds != fold
        r = reward[fit_on]
        if min(r.sum(), (1.0 - r).sum()) < MIN_CALIBRATION_RESPONSES:
            continue
        mine = folds == fold
        out[mine] = churn.calibrate(out[mine], churn.fit_calibration(q_logged[fit_on], r))
    return np.where(np.isnan(q), np.nan, out)
