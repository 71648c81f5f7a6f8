"""Learning between retrains: Thompson sampling of the top slot on a calibration posterior
per (segment, action), seeded by the next-content model's prediction.

Each candidate's rate is its model probability ``p`` (P(response), or its uplift with a "no
action" control) times a calibration factor ``theta`` of its item in its segment (the
account's likeliest phase): ``rate = p x theta``. The factor's prior is
``Gamma(m p, m p)`` (mean 1: the model is right on average), ``m`` the prior strength in
pseudo-decisions at the candidate's own rate, and its posterior is
``Gamma(m p + s, m p + e)`` where ``s`` counts the successes the service has seen for the
item in the segment since the serving model was trained and ``e`` the successes the model
expected of those decisions (the sum of their ``p``). A multiplicative correction keeps what
the model knows about each account: the decisions pooled in a key are made for accounts the
model predicts very differently for, and an additive (Beta) update would give every account
the pool's rate. When every decision of a key had the candidate's ``p`` the posterior mean
``p (m p + s) / (m p + n p)`` is the Beta posterior's ``(m p + s) / (m + n)``. The
candidate's sampled value is that rate times the rest of its expected value
(value x fit x lever).

The top slot goes to the action that wins the draw. Rather than drawing the rates and taking
the argmax (whose win probabilities would then have to be estimated), the policy computes the
probability that each action wins the draw (:func:`win_probabilities`) and draws the top
slot from those probabilities: the logged propensity is then exactly the probability the
pick had. The win probabilities treat each sampled value as normal with the Gamma's mean and
variance (moment matching) and integrate ``P(i beats all others)`` by Gauss-Hermite
quadrature (24 nodes). They are within about 0.02 of the win probabilities of drawing the
Gamma rates themselves (Monte Carlo, see the tests): the policy is Thompson sampling up to
that approximation, and its logged propensities are exact for the policy it is. Actions
whose probability of beating the leader (the best mean) is below :data:`NEGLIGIBLE_WIN` are
left out (winning needs beating the leader, so that bounds their win probability), and at
most :data:`MAX_CONTENDERS` of the rest take part. Everything is a pure function of the
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
# An action whose probability of beating the leader (the best mean) is below this does not
# take part: it bounds the action's win probability. The quadrature's cost grows with the
# square of the contenders, and most of a ranking's actions are far below its top.
NEGLIGIBLE_WIN = 1e-6
# The most actions whose win probabilities are computed (the likeliest to beat the leader):
# the quadrature costs contenders^2 x 24 normal CDFs, and a draw among more is exploration
# the epsilon share does anyway.
MAX_CONTENDERS = 16
# A model probability of exactly 0 would give a degenerate prior (and 1 is no rate).
_P_FLOOR = 1e-4


def clip_rate(p: np.ndarray | float) -> np.ndarray:
    """Model probabilities as the posterior uses them (kept off 0 and 1); the store counts a
    decision's expected successes with the same values."""
    return np.clip(np.asarray(p, dtype=np.float64), _P_FLOOR, 1.0 - _P_FLOOR)


@dataclass(frozen=True)
class OnlinePosterior:
    """The posterior counts every worker shares: ``counts`` maps (segment, content_id) to
    (successes, expected successes) seen since the serving model was trained: the
    responses the served decisions had, and the sum of the model's probabilities for them.
    ``prior_strength`` is ``m`` (the prior's weight in pseudo-decisions). ``draw_share`` is
    the share of decisions whose top slot is drawn (the rest go to the best posterior mean,
    :func:`top_probabilities`). ``version`` changes whenever the counts do (caches key on
    it)."""

    counts: Mapping[tuple[str, str], tuple[float, float]]
    prior_strength: float
    version: int = 0
    draw_share: float = 1.0
    # (segment, catalog ids) -> (successes, expected) per catalog item, built once per state
    _per_item: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def item_counts(self, segment: str, content_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(successes, expected successes) per item of ``content_ids`` (a catalog's ids) in
        ``segment``."""
        key = (segment, id(content_ids))
        cached = self._per_item.get(key)
        if cached is None:
            pairs = [self.counts.get((segment, str(c)), (0.0, 0.0)) for c in content_ids]
            arr = np.asarray(pairs, dtype=np.float64).reshape(len(content_ids), 2)
            cached = (arr[:, 0].copy(), arr[:, 1].copy())
            self._per_item[key] = cached
        return cached


def posterior_params(
    p: np.ndarray, successes: np.ndarray, expected: np.ndarray, prior_strength: float
) -> tuple[np.ndarray, np.ndarray]:
    """The Gamma posterior (shape, rate) of each candidate's response rate ``p x theta``:
    ``theta ~ Gamma(m p + s, m p + e)``, so the rate is ``Gamma(m p + s, (m p + e) / p)``."""
    q = clip_rate(p)
    prior = prior_strength * q
    return prior + successes, (prior + expected) / q


def win_probabilities(shape: np.ndarray, rate: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """P(candidate i's sampled value ``scale_i x r_i``, r_i ~ Gamma(shape_i, rate_i), is
    the largest), per candidate; sums to 1 (see the module docstring for the approximation).
    Candidates with ``scale`` <= 0 never win unless all do (then the first wins)."""
    n = len(shape)
    out = np.zeros(n)
    if n == 0:
        return out
    shape, rate, scale = (np.asarray(v, dtype=np.float64) for v in (shape, rate, scale))
    live = np.flatnonzero(scale > 0)
    if len(live) == 0:
        out[0] = 1.0
        return out
    mean = scale * shape / rate
    sd = scale * np.sqrt(shape) / rate
    leader = live[int(np.argmax(mean[live]))]
    # P(value_i > value_leader), both normal: at least P(i wins)
    beats = ndtr((mean[live] - mean[leader]) / np.hypot(sd[live], sd[leader]).clip(1e-12))
    beats[live == leader] = 1.0
    keep = beats >= NEGLIGIBLE_WIN
    live, beats = live[keep], beats[keep]
    if len(live) > MAX_CONTENDERS:
        live = np.sort(live[np.argsort(-beats, kind="stable")[:MAX_CONTENDERS]])
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
    shape: np.ndarray, rate: np.ndarray, scale: np.ndarray, draw_share: float
) -> np.ndarray:
    """P(each candidate takes the top slot) when a ``draw_share`` of decisions draws it
    (:func:`win_probabilities`) and the rest give it to the best posterior mean value
    ``scale x shape / rate`` (the first of equals): ``draw_share x wins + (1 - draw_share)
    x [best]``. Sums to 1."""
    shape, rate, scale = (np.asarray(v, dtype=np.float64) for v in (shape, rate, scale))
    wins = win_probabilities(shape, rate, scale) if draw_share > 0 else np.zeros(len(shape))
    if draw_share >= 1 or len(shape) == 0:
        return wins
    mean = scale * shape / rate
    out = draw_share * wins
    out[int(np.argmax(mean))] += 1.0 - draw_share
    return out


def draw_top(probabilities: np.ndarray, rng: np.random.Generator) -> int:
    """A position drawn with ``probabilities`` (one uniform draw from ``rng``)."""
    cdf = np.cumsum(probabilities)
    u = float(rng.random()) * float(cdf[-1])
    return min(int(np.searchsorted(cdf, u, side="right")), len(cdf) - 1)
