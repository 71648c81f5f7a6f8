"""Learning between retrains: Thompson sampling of the top slot on a Beta posterior per
(segment, action), seeded by the next-content model's prediction.

Each candidate's rate (the ``p`` the model gives it: P(response), or its uplift with a
"no action" control) has the prior ``Beta(m p, m (1 - p))``, ``m`` the prior strength in
pseudo-decisions, and the posterior ``Beta(m p + s, m (1 - p) + f)`` where ``s`` and ``f``
are the successes and failures the service has seen for the candidate's item in its
segment (the account's likeliest phase) since the serving model was trained. The candidate's
sampled value is that rate times the rest of its expected value (value x fit x lever).

The top slot goes to the action that wins the draw. Rather than drawing the rates and taking
the argmax (whose win probabilities would then have to be estimated), the policy computes the
probability that each action wins the draw (:func:`win_probabilities`) and draws the top
slot from those probabilities: the logged propensity is then exactly the probability the
pick had. The win probabilities treat each sampled value as normal with the Beta's mean and
variance (moment matching) and integrate ``P(i beats all others)`` by Gauss-Hermite
quadrature (24 nodes). They are within about 0.015 of the win probabilities of drawing
the Beta rates themselves (Monte Carlo, see the tests): the policy is Thompson sampling up
to that approximation, and its logged propensities are exact for the policy it is. Actions
that cannot win (six standard deviations below an action's lower bound) are left out, and
at most :data:`MAX_CONTENDERS` of the rest take part. Everything is a pure function of the
posterior counts and the candidates, so the same state gives the same probabilities in every
worker.

A configurable share of decisions draws (``draw_share``, default 1: pure Thompson sampling);
the others give the top slot to the action of highest posterior mean value, which the
feedback moves as well. A draw on every decision explores wherever the posteriors overlap,
and while a key holds fewer decisions than its prior weighs, that exploration is a cost the
posterior has not yet learnt enough to repay; a smaller share explores less and learns
more slowly. The logged propensity is that of the mixture.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr

# Gauss-Hermite nodes and weights for E[g(Z)], Z standard normal: t = sqrt(2) x, w / sqrt(pi).
_GH_X, _GH_W = np.polynomial.hermite.hermgauss(24)
_GH_T = np.sqrt(2.0) * _GH_X
_GH_P = _GH_W / np.sqrt(np.pi)
# Actions more than this many standard deviations apart cannot overtake each other.
_PRUNE_SD = 6.0
# The most actions whose win probabilities are computed (the best by upper bound): the
# quadrature costs contenders^2 x 24 normal CDFs, and a draw among more is exploration the
# epsilon share does anyway.
MAX_CONTENDERS = 16
# A model probability of exactly 0 or 1 would give a degenerate prior.
_P_FLOOR = 1e-4


@dataclass(frozen=True)
class OnlinePosterior:
    """The posterior counts every worker shares: ``counts`` maps (segment, content_id) to
    (successes, failures) seen since the serving model was trained, ``prior_strength`` is
    ``m`` (the prior's weight in pseudo-decisions). ``draw_share`` is the share of decisions
    whose top slot is drawn (the rest go to the best posterior mean, :func:`top_probabilities`).
    ``version`` changes whenever the counts do (caches key on it)."""

    counts: Mapping[tuple[str, str], tuple[float, float]]
    prior_strength: float
    version: int = 0
    draw_share: float = 1.0
    # (segment, catalog ids) -> (successes, failures) per catalog item, built once per state
    _per_item: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def item_counts(self, segment: str, content_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(successes, failures) per item of ``content_ids`` (a catalog's ids) in ``segment``."""
        key = (segment, id(content_ids))
        cached = self._per_item.get(key)
        if cached is None:
            pairs = [self.counts.get((segment, str(c)), (0.0, 0.0)) for c in content_ids]
            arr = np.asarray(pairs, dtype=np.float64).reshape(len(content_ids), 2)
            cached = (arr[:, 0].copy(), arr[:, 1].copy())
            self._per_item[key] = cached
        return cached


def posterior_params(
    p: np.ndarray, successes: np.ndarray, failures: np.ndarray, prior_strength: float
) -> tuple[np.ndarray, np.ndarray]:
    """The Beta posterior (a, b) of each candidate: prior ``Beta(m p, m (1 - p))`` plus its
    item's successes and failures."""
    q = np.clip(np.asarray(p, dtype=np.float64), _P_FLOOR, 1.0 - _P_FLOOR)
    return prior_strength * q + successes, prior_strength * (1.0 - q) + failures


def win_probabilities(a: np.ndarray, b: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """P(candidate i's sampled value ``scale_i x theta_i``, theta_i ~ Beta(a_i, b_i), is the
    largest), per candidate; sums to 1 (see the module docstring for the approximation).
    Candidates with ``scale`` <= 0 never win unless all do (then the first wins)."""
    n = len(a)
    out = np.zeros(n)
    if n == 0:
        return out
    a, b, scale = (np.asarray(v, dtype=np.float64) for v in (a, b, scale))
    live = np.flatnonzero(scale > 0)
    if len(live) == 0:
        out[0] = 1.0
        return out
    total = a + b
    mean = scale * a / total
    sd = scale * np.sqrt(a * b / (total * total * (total + 1.0)))
    floor = float(np.max(mean[live] - _PRUNE_SD * sd[live]))
    upper = mean[live] + _PRUNE_SD * sd[live]
    keep = upper >= floor
    live, upper = live[keep], upper[keep]
    if len(live) > MAX_CONTENDERS:
        live = np.sort(live[np.argsort(-upper, kind="stable")[:MAX_CONTENDERS]])
    if len(live) == 1:
        out[live[0]] = 1.0
        return out
    mu, sigma = mean[live], np.maximum(sd[live], 1e-12)
    # t[i, k]: the k-th quadrature node of candidate i's value; z[i, j, k]: where it falls
    # in candidate j's distribution. P(i wins) = E_i[prod_{j != i} Phi(z_ij)].
    t = mu[:, None] + sigma[:, None] * _GH_T[None, :]
    z = (t[:, None, :] - mu[None, :, None]) / sigma[None, :, None]
    cdf = ndtr(z)
    idx = np.arange(len(live))
    cdf[idx, idx, :] = 1.0
    wins = np.prod(cdf, axis=1) @ _GH_P
    wins = np.clip(wins, 0.0, None)
    out[live] = wins / wins.sum()
    return out


def top_probabilities(
    a: np.ndarray, b: np.ndarray, scale: np.ndarray, draw_share: float
) -> np.ndarray:
    """P(each candidate takes the top slot) when a ``draw_share`` of decisions draws it
    (:func:`win_probabilities`) and the rest give it to the best posterior mean value
    ``scale x a / (a + b)`` (the first of equals): ``draw_share x wins + (1 - draw_share)
    x [best]``. Sums to 1."""
    a, b, scale = (np.asarray(v, dtype=np.float64) for v in (a, b, scale))
    wins = win_probabilities(a, b, scale) if draw_share > 0 else np.zeros(len(a))
    if draw_share >= 1 or len(a) == 0:
        return wins
    mean = scale * a / (a + b)
    out = draw_share * wins
    out[int(np.argmax(mean))] += 1.0 - draw_share
    return out


def draw_top(probabilities: np.ndarray, rng: np.random.Generator) -> int:
    """A position drawn with ``probabilities`` (one uniform draw from ``rng``)."""
    cdf = np.cumsum(probabilities)
    u = float(rng.random()) * float(cdf[-1])
    return min(int(np.searchsorted(cdf, u, side="right")), len(cdf) - 1)
