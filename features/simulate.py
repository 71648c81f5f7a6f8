"""A seeded simulator of B2B customer journeys, with ground truth.

``simulate(n_accounts, seed)`` returns the six input tables of the data contract
(``features.schema``) in canonical dtypes plus a :class:`SimulationTruth` that only evaluation
may read. The same seed gives the same tables.

The model, stepped WEEKLY over all accounts at once (numpy arrays of length n_accounts; every
per-event attribute is drawn in bulk, never in a per-account or per-event Python loop):

- a latent phase process over the taxonomy's eight default phases (trigger = out of market,
  awareness, consideration, selection, purchase, onboarding, impact, expansion) with
  covariate-dependent weekly hazards (size, industry, an account velocity); lost deals fall
  back to trigger; entering onboarding is a purchase, yearly contracts renew, expansion deals
  close as purchases, customers churn back to trigger. Phase changes happen at week starts.
- organic touchpoints whose rate, channel, event type, content and contact role depend on the
  latent phase, with organic noise;
- exposures: at weekly decision points a stochastic logging policy picks content by the
  CRM-recorded phase (softmax over eligible items mixed with uniform, every eligible item
  >= 0.01), and records the chosen item's propensity exactly;
- responses with P = sigmoid(base + phase fit vs the TRUE phase + role fit + topic interest
  - fatigue); responding to content that fits the true phase raises the hazard of advancing
  to the next phase (the lever a next-best-action policy pulls);
- a customer churn hazard driven by onboarding (trainings), support tickets, usage trend,
  engagement decline and champion departure;
- a CRM (``stages``) that records phase changes late (lognormal lag, median ~14 days) and
  about 10 % of the time as a neighbouring phase.

The ``truth`` functions (:func:`true_phases`, :func:`true_churn_probability`,
:func:`true_response_probability`) give the best achievable predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa

from features.errors import InvalidInputError
from features.load import write_data_dir
from features.schema import TABLES, JourneyData, column_dtype
from features.taxonomy import Taxonomy, load_taxonomy
from features.timestamps import column_ns, to_ns, to_utc

DAY_NS = 86_400 * 10**9
WEEK_NS = 7 * DAY_NS
SECOND_NS = 10**9
_STR = pd.StringDtype("pyarrow", na_value=np.nan)

# The semantic slots of the default 8-phase model, by position.
TRIGGER, AWARENESS, CONSIDERATION, SELECTION, PURCHASE, ONBOARDING, IMPACT, EXPANSION = range(8)
CUSTOMER_PHASES = (ONBOARDING, IMPACT, EXPANSION)
N_PHASES = 8
MAX_CONTACTS = 8  # buying-center slots per account


class SimulationError(InvalidInputError):
    """The simulator cannot run with these arguments or this taxonomy."""


@dataclass(frozen=True)
class SimulationParams:
    """Knobs of the generative model. Defaults give ~100 touchpoints per account over 24
    months and 40-90 touchpoints from first touch to purchase."""

    # Weekly hazard of advancing to the next phase, per phase (expansion: the deal closes
    # or stops and the account returns to impact).
    advance_hazard: tuple[float, ...] = (0.035, 0.11, 0.09, 0.10, 0.35, 0.08, 0.02, 0.15)
    # Weekly hazard of a lost deal (back to trigger), per phase.
    loss_hazard: tuple[float, ...] = (0.0, 0.015, 0.02, 0.035, 0.04, 0.0, 0.0, 0.0)
    # Organic touchpoints per week, per phase (before account engagement multipliers).
    touch_rate: tuple[float, ...] = (0.25, 1.0, 1.65, 2.2, 2.2, 1.2, 0.3, 0.8)
    # Share of accounts in each phase at the start.
    initial_phase_share: tuple[float, ...] = (0.5, 0.12, 0.08, 0.05, 0.02, 0.03, 0.15, 0.05)
    # The lever: log-hazard of advancing rises by this much per unit of "momentum" (fitting
    # responses, decaying by boost_decay each week).
    response_boost: float = 0.7
    boost_decay: float = 0.7
    expansion_close_share: float = 0.6
    rebuy_after_churn: float = 0.3  # trigger-advance multiplier for accounts that churned
    organic_noise: float = 0.1  # share of content touchpoints picked from the whole catalog
    # Response model: logit = base + phase_fit * F + role_fit * R + topic * interest
    # - fatigue * exposures of the contact in the last fatigue_window_days.
    response_base: float = -3.5
    response_phase_fit: float = 1.8
    adjacent_phase_fit: float = 0.35  # F for an item fitting a neighbouring phase
    response_role_fit: float = 0.8
    response_topic: float = 0.5
    response_fatigue: float = 0.45
    fatigue_window_days: int = 14
    # Exposures: probability of a decision point per week (trigger, buying, customer) and of
    # a second exposure in the same week.
    exposure_rate: tuple[float, float, float] = (0.25, 0.6, 0.4)
    second_exposure: float = 0.35
    policy_uniform_mix: float = 0.3
    # CRM recording.
    stage_lag_median_days: float = 14.0
    stage_lag_sigma: float = 0.6
    stage_error_rate: float = 0.1
    # Contacts.
    contact_leave_weekly: float = 0.0025
    contact_replaced_share: float = 0.8
    # Churn: weekly hazard = sigmoid(logit).
    churn_base: float = -6.6
    churn_few_trainings: float = 0.9
    churn_per_ticket: float = 0.25
    churn_usage_decline: float = 1.5
    churn_engagement_decline: float = 1.0
    churn_champion_left: float = 1.5
    churn_frailty: float = 0.6
    churn_health: float = 0.8


# Channel / event type templates of organic touchpoints without content, per phase:
# (channel, event_type, weight, probability that no contact is known). The remaining share
# (content_share) are content touchpoints picked from the catalog.
_CONTENT_SHARE = (0.45, 0.55, 0.6, 0.55, 0.5, 0.65, 0.55, 0.5)
_TEMPLATES: tuple[tuple[tuple[str, str, float, float], ...], ...] = (
    (
        ("search_ads", "click", 0.3, 0.6),
        ("social_ads", "click", 0.3, 0.5),
        ("print_media", "view", 0.15, 0.9),
        ("website", "view", 0.15, 0.6),
        ("trade_fair", "attend", 0.1, 0.0),
    ),
    (
        ("search_ads", "click", 0.3, 0.5),
        ("social_ads", "click", 0.2, 0.5),
        ("website", "view", 0.3, 0.4),
        ("trade_fair", "attend", 0.1, 0.0),
        ("print_media", "view", 0.1, 0.9),
    ),
    (
        ("review_portal", "view", 0.35, 0.3),
        ("trade_portal", "view", 0.15, 0.3),
        ("website", "view", 0.2, 0.3),
        ("search_ads", "click", 0.1, 0.5),
        ("conference", "attend", 0.1, 0.0),
        ("referral", "reply", 0.1, 0.0),
    ),
    (
        ("sales_call", "meeting", 0.3, 0.0),
        ("meeting", "meeting", 0.3, 0.0),
        ("review_portal", "view", 0.1, 0.3),
        ("website", "view", 0.1, 0.2),
        ("email", "reply", 0.2, 0.0),
    ),
    (
        ("sales_call", "meeting", 0.35, 0.0),
        ("meeting", "meeting", 0.25, 0.0),
        ("email", "reply", 0.3, 0.0),
        ("web_shop", "view", 0.1, 0.2),
    ),
    (
        ("email", "reply", 0.3, 0.0),
        ("customer_service", "meeting", 0.2, 0.0),
        ("website", "view", 0.3, 0.2),
        ("webinar", "attend", 0.2, 0.0),
    ),
    (
        ("email", "reply", 0.3, 0.0),
        ("website", "view", 0.3, 0.2),
        ("customer_service", "meeting", 0.2, 0.0),
        ("social_media", "share", 0.1, 0.0),
        ("referral", "reply", 0.1, 0.0),
    ),
    (
        ("sales_call", "meeting", 0.4, 0.0),
        ("meeting", "meeting", 0.3, 0.0),
        ("email", "reply", 0.2, 0.0),
        ("conference", "attend", 0.1, 0.0),
    ),
)
# Channels a content touchpoint arrives through when not the item's usual channel.
_NOISE_CHANNELS = ("email", "newsletter", "social_media", "website")
# Event types of a content touchpoint, by content type (unknown types: view).
_CONTENT_EVENTS: dict[str, dict[str, float]] = {
    "thought_leadership": {"view": 0.7, "share": 0.15, "comment": 0.15},
    "blog_article": {"view": 0.8, "comment": 0.1, "share": 0.1},
    "research_report": {"download": 0.6, "view": 0.4},
    "whitepaper": {"download": 0.7, "view": 0.3},
    "video": {"view": 0.9, "share": 0.1},
    "checklist": {"download": 0.6, "view": 0.4},
    "comparison_page": {"view": 0.8, "click": 0.2},
    "webinar": {"register": 0.5, "attend": 0.5},
    "case_study": {"view": 0.6, "download": 0.4},
    "reference": {"meeting": 1.0},
    "live_demo": {"demo_request": 0.45, "attend": 0.25, "trial_start": 0.15, "meeting": 0.15},
    "pricing_offer": {"view": 0.5, "reply": 0.5},
    "onboarding_guide": {"view": 0.6, "download": 0.4},
    "training": {"register": 0.4, "attend": 0.6},
    "knowledge_base": {"view": 1.0},
    "success_story": {"view": 0.8, "share": 0.2},
    "upsell_offer": {"view": 0.5, "reply": 0.3, "meeting": 0.2},
    "cross_sell_offer": {"view": 0.5, "reply": 0.5},
    "sales_play": {"meeting": 0.7, "reply": 0.3},
    "service_play": {"meeting": 0.6, "attend": 0.4},
}
# Event types a response to an exposure can have (a subset of schema.RESPONSE_EVENT_TYPES).
_RESPONSE_EVENTS = ("click", "download", "register", "attend", "reply", "share", "comment",
                    "meeting", "demo_request", "trial_start")  # fmt: skip
# Which buying-center roles act in each phase (relative weights; unknown roles: 1).
_ROLE_WEIGHTS: tuple[dict[str, float], ...] = (
    {"economic_buyer": 1, "it": 1, "marketing": 2, "finance": 0.5, "service": 0.3, "end_user": 1.5},
    {
        "economic_buyer": 1,
        "it": 1.5,
        "marketing": 2,
        "finance": 0.5,
        "service": 0.3,
        "end_user": 1.5,
    },
    {"economic_buyer": 1, "it": 2, "marketing": 1, "finance": 1, "service": 0.5, "end_user": 1.5},
    {"economic_buyer": 2, "it": 1.5, "marketing": 0.5, "finance": 2, "service": 0.5, "end_user": 1},
    {"economic_buyer": 3, "it": 1, "marketing": 0.3, "finance": 3, "service": 0.3, "end_user": 0.5},
    {"economic_buyer": 0.5, "it": 2, "marketing": 0.5, "finance": 0.3, "service": 2, "end_user": 3},
    {"economic_buyer": 0.7, "it": 1, "marketing": 0.7, "finance": 0.3, "service": 2, "end_user": 3},
    {"economic_buyer": 3, "it": 1, "marketing": 1, "finance": 2, "service": 1, "end_user": 1},
)
_USAGE_ROLES = {"end_user": 4, "it": 1.5, "service": 1}
_TICKET_ROLES = {"service": 3, "it": 2, "end_user": 2}
_CONTRACT_ROLES = {"economic_buyer": 3, "finance": 2}
_CONTACT_ROLE_SHARE = {"economic_buyer": 0.12, "it": 0.22, "marketing": 0.15, "finance": 0.13,
                       "service": 0.13, "end_user": 0.25}  # fmt: skip
_INDUSTRY_SPEED = {"software": 1.25, "professional_services": 1.1, "retail": 1.05,
                   "manufacturing": 0.9, "logistics": 0.95, "energy": 0.85,
                   "financial_services": 0.8, "healthcare": 0.75}  # fmt: skip
_N_REPS = 50
_FATIGUE_SLOTS = 8  # exposure times remembered per contact (more than fit in the window)


@dataclass
class SimulationTruth:
    """Ground truth of a simulation; only evaluation may read it.

    - ``phases``: account_id, phase, start, end (NaT while ongoing), recorded_at and
      recorded_phase (the CRM record of this change; NaT/NaN if not recorded before the end),
      one row per latent phase segment;
    - ``accounts``: account_id, velocity, frailty, engagement, champion_contact_id and one
      ``interest_<topic>`` column per topic (the latent per-account parameters);
    - ``contacts``: contact_id, account_id, role;
    - ``content``: content_id, phases, roles, topic (the catalog the response model used);
    - ``exposures``: exposure_id, account_id, contact_id, content_id, ts, true_phase,
      p_response, responded;
    - ``churn_hazard``: account_id, week_start, hazard (weekly churn hazard of every customer
      in every week it was a customer);
    - ``params``: name, value (the response model's coefficients, start and end).
    """

    phases: pd.DataFrame
    accounts: pd.DataFrame
    contacts: pd.DataFrame
    content: pd.DataFrame
    exposures: pd.DataFrame
    churn_hazard: pd.DataFrame
    params: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def param(self, name: str) -> float:
        """One numeric parameter by name (KeyError if absent)."""
        hit = self.params.loc[self.params["name"] == name, "value"]
        if hit.empty:
            raise KeyError(f"truth params has no {name!r}")
        return float(hit.iloc[0])


@dataclass
class Simulation:
    """The simulated tables and their ground truth."""

    data: JourneyData
    truth: SimulationTruth


# --------------------------------------------------------------------------------------------
# Small vectorised helpers


def _ids(
    prefix: str, numbers: np.ndarray, width: int, valid: np.ndarray | None = None
) -> pd.Series:
    """Fixed-width ids ``prefix + zero-padded number`` as a canonical ``str`` Series, built
    straight into an Arrow buffer (10M ids in about a second); ``valid`` False gives NaN."""
    n = len(numbers)
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    w = len(head) + width
    buf = np.empty((n, w), dtype=np.uint8)
    buf[:, : len(head)] = head
    x = np.asarray(numbers, dtype=np.int64).copy()
    if n and (x.min() < 0 or x.max() >= 10**width):
        raise SimulationError(f"id numbers for prefix {prefix!r} do not fit {width} digits")
    for j in range(width - 1, -1, -1):
        buf[:, len(head) + j] = 48 + (x % 10)
        x //= 10
    offsets = np.arange(n + 1, dtype=np.int64) * w
    bitmap = None
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid.astype(bool), bitorder="little"))
    arr = pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(buf.ravel()), bitmap
    )
    return pd.Series(arr.to_pandas(types_mapper={pa.large_string(): _STR}.get))


def _timestamps(ns: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(np.asarray(ns, dtype=np.int64), unit="ns", utc=True))


def _categorical(codes: np.ndarray, categories: list[str]) -> pd.Series:
    return pd.Series(
        pd.Categorical.from_codes(
            np.asarray(codes, dtype=np.int64), dtype=pd.CategoricalDtype(categories)
        )
    )


def _pick(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise categorical draw: the column index per row of ``weights`` (n x k, >= 0) for
    uniforms ``u``; rows whose weights are all zero give -1."""
    cum = np.cumsum(weights, axis=1)
    total = cum[:, -1]
    idx = (cum <= (u * total)[:, None]).sum(axis=1)
    idx = np.minimum(idx, weights.shape[1] - 1)
    return np.where(total > 0, idx, -1)


def _pick_cdf(cdf_rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Draw from rows of cumulative distributions (last column 1)."""
    return np.minimum((cdf_rows <= u[:, None]).sum(axis=1), cdf_rows.shape[1] - 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# --------------------------------------------------------------------------------------------
# Catalog-derived tables (shared by the simulation and the truth functions)


@dataclass
class _Catalog:
    content_ids: list[str]
    phase_fit: np.ndarray  # items x phases: 1 fits, adjacent_phase_fit next to a fitting phase
    role_fit: np.ndarray  # items x roles: 1 fits
    topic: np.ndarray  # items: topic code
    value: np.ndarray  # items: business value


def _catalog(
    content: pd.DataFrame, phases: list[str], roles: list[str], topics: list[str], adjacent: float
) -> _Catalog:
    n = len(content)
    exact = np.zeros((n, len(phases)))
    role_fit = np.zeros((n, len(roles)))
    for i, (item_phases, item_roles) in enumerate(
        zip(content["phases"], content["roles"], strict=True)
    ):
        # A loop over ~100 catalog items, not events.
        exact[i, [phases.index(p) for p in item_phases]] = 1.0
        role_fit[i, [roles.index(r) for r in item_roles]] = 1.0
    near = np.zeros_like(exact)
    near[:, 1:] = np.maximum(near[:, 1:], exact[:, :-1])
    near[:, :-1] = np.maximum(near[:, :-1], exact[:, 1:])
    phase_fit = np.where(exact == 1, 1.0, np.where(near == 1, adjacent, 0.0))
    topic = np.array([topics.index(str(t)) for t in content["topic"]], dtype=np.int64)
    value = (
        content["value"].to_numpy(dtype=float) if "value" in content else np.ones(n, dtype=float)
    )
    return _Catalog(list(map(str, content["content_id"])), phase_fit, role_fit, topic, value)


def _response_logit(
    params: dict[str, float],
    phase_fit: np.ndarray,
    role_fit: np.ndarray,
    interest: np.ndarray,
    fatigue: np.ndarray,
) -> np.ndarray:
    """The response model's logit; the simulator and true_response_probability share it."""
    return (
        params["response_base"]
        + params["response_phase_fit"] * phase_fit
        + params["response_role_fit"] * role_fit
        + params["response_topic"] * interest
        - params["response_fatigue"] * fatigue
    )


def _logging_policy(catalog: _Catalog, mix: float) -> np.ndarray:
    """Propensity of each item per CRM phase (phases x items): softmax of log value over the
    items fitting that phase (all items if none fit), mixed with uniform so every eligible
    item has propensity >= 0.01."""
    eligible = (catalog.phase_fit == 1.0).T  # phases x items
    none = ~eligible.any(axis=1)
    eligible[none] = True
    n_eligible = eligible.sum(axis=1, keepdims=True)
    eps = np.clip(np.maximum(mix, 0.01 * n_eligible), 0.0, 1.0)
    score = np.where(eligible, np.log(catalog.value)[None, :], -np.inf)
    soft = np.exp(score - score.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    pi = (1 - eps) * soft + eps * eligible / n_eligible
    return np.where(eligible, pi, 0.0)


def _role_vector(weights: Mapping[str, float], roles: list[str]) -> np.ndarray:
    return np.array([float(weights.get(r, 1.0)) for r in roles])


# --------------------------------------------------------------------------------------------
# Event accumulation


class _Events:
    """Touchpoints collected week by week as column chunks."""

    def __init__(self) -> None:
        self.chunks: dict[str, list[np.ndarray]] = {
            k: [] for k in ("acc", "contact", "ts", "channel", "etype", "content", "value")
        }

    def add(
        self,
        acc: np.ndarray,
        contact: np.ndarray,
        ts: np.ndarray,
        channel: np.ndarray | int,
        etype: np.ndarray | int,
        content: np.ndarray | int = -1,
        value: np.ndarray | float = np.nan,
    ) -> None:
        n = len(acc)
        if n == 0:
            return
        self.chunks["acc"].append(acc.astype(np.int32))
        self.chunks["contact"].append(np.asarray(contact, dtype=np.int32))
        self.chunks["ts"].append(ts.astype(np.int64))
        self.chunks["channel"].append(np.broadcast_to(np.int8(channel), (n,)).astype(np.int8))
        self.chunks["etype"].append(np.broadcast_to(np.int8(etype), (n,)).astype(np.int8))
        self.chunks["content"].append(np.broadcast_to(np.int16(content), (n,)).astype(np.int16))
        self.chunks["value"].append(np.broadcast_to(np.float64(value), (n,)).astype(np.float64))

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for k, parts in self.chunks.items():
            out[k] = np.concatenate(parts) if parts else np.empty(0)
            parts.clear()
        return out


# --------------------------------------------------------------------------------------------
# The simulator


class _Names:
    """Index lookups of taxonomy names; missing names raise SimulationError."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.channels = taxonomy.channel_names
        self.event_types = taxonomy.event_type_names
        self.roles = taxonomy.role_names

    def channel(self, name: str) -> int:
        if name not in self.channels:
            raise SimulationError(f"taxonomy has no channel {name!r}; the simulator needs it")
        return self.channels.index(name)

    def etype(self, name: str) -> int:
        if name not in self.event_types:
            raise SimulationError(f"taxonomy has no event type {name!r}; the simulator needs it")
        return self.event_types.index(name)


def simulate(
    n_accounts: int,
    seed: int,
    *,
    start: pd.Timestamp | str = "2024-01-01",
    months: int = 24,
    taxonomy: Taxonomy | None = None,
    params: SimulationParams | None = None,
) -> Simulation:
    """Simulate ``n_accounts`` B2B journeys for ``months`` months from ``start`` (UTC).

    Returns the six tables in canonical dtypes and the ground truth. Deterministic given
    ``seed`` (and taxonomy and params). Assumes the taxonomy's default phase model has eight
    phases in the order trigger ... expansion (names may differ) and that it has the channels
    and event types the simulator emits (search_ads, product, usage, purchase, ...).
    """
    if n_accounts < 1:
        raise SimulationError(f"n_accounts must be >= 1, got {n_accounts}")
    if months < 1:
        raise SimulationError(f"months must be >= 1, got {months}")
    tax = taxonomy if taxonomy is not None else load_taxonomy()
    p = params if params is not None else SimulationParams()
    phases = tax.phases
    if len(phases) != N_PHASES:
        raise SimulationError(
            f"the simulator needs an 8-phase default model (trigger ... expansion), "
            f"got {len(phases)}: {phases}"
        )
    start_ts = to_utc(start)
    end_ts = start_ts + pd.DateOffset(months=months)
    start_ns = int(start_ts.value)
    n_weeks = int((end_ts.value - start_ns) // WEEK_NS)
    if n_weeks < 2:
        raise SimulationError(f"months={months} gives fewer than two simulated weeks")
    end_ns = int(end_ts.value)

    rng = np.random.default_rng(seed)
    names = _Names(tax)
    roles = tax.role_names
    topics = tax.topic_names
    content_frame = tax.content_frame()
    cat = _catalog(content_frame, phases, roles, topics, p.adjacent_phase_fit)
    n_items = len(cat.content_ids)
    resp = {
        k: float(getattr(p, k))
        for k in ("response_base", "response_phase_fit", "response_role_fit", "response_topic",
                  "response_fatigue")
    }  # fmt: skip
    A = n_accounts

    # ---- accounts ------------------------------------------------------------------------
    industries = list(tax.industries)
    regions = list(tax.regions)
    industry = rng.integers(0, len(industries), A)
    region = rng.integers(0, len(regions), A)
    employees = np.clip(np.round(rng.lognormal(np.log(150.0), 1.3, A)), 2, 500_000).astype(np.int64)
    revenue = employees * rng.lognormal(np.log(180_000.0), 0.5, A)
    owner = rng.integers(1, _N_REPS + 1, A)
    created_ns = start_ns - (rng.uniform(90, 1500, A) * DAY_NS).astype(np.int64)
    created_ns -= created_ns % SECOND_NS
    speed_industry = np.array([_INDUSTRY_SPEED.get(i, 1.0) for i in industries])[industry]
    velocity = (
        np.exp(-0.12 * (np.log(employees) - np.log(200.0)))
        * speed_industry
        * rng.lognormal(0.0, 0.35, A)
    )
    engagement = rng.lognormal(0.0, 0.4, A) * (employees / 200.0) ** 0.08
    frailty = rng.standard_normal(A)
    interest = rng.standard_normal((A, len(topics)))
    topic_w = np.exp(interest)
    topic_cdf = np.cumsum(topic_w / topic_w.sum(axis=1, keepdims=True), axis=1)
    acv = 20_000.0 * (employees / 200.0) ** 0.5 * rng.lognormal(0.0, 0.3, A)
    # Exposures go out at an account-specific time in the first two working days of a week.
    send_offset = (
        rng.integers(0, 2, A) * 86_400 + 8 * 3600 + rng.integers(0, 10 * 3600, A)
    ).astype(np.int64) * SECOND_NS

    # ---- buying centers --------------------------------------------------------------------
    n_contacts = 2 + rng.binomial(
        6, np.clip(0.2 + 0.1 * (np.log(employees) - np.log(150.0)), 0.05, 0.95)
    )
    slot_exists = np.arange(MAX_CONTACTS)[None, :] < n_contacts[:, None]
    role_share = _role_vector(_CONTACT_ROLE_SHARE, roles)
    slot_role = rng.choice(len(roles), size=(A, MAX_CONTACTS), p=role_share / role_share.sum())
    if "economic_buyer" in roles:
        slot_role[:, 0] = roles.index("economic_buyer")  # every buying center has a decider
    champion_slot = rng.integers(0, n_contacts)
    # Originals: one per existing slot, in account order.
    orig_acc, orig_slot = np.nonzero(slot_exists)
    n_orig = len(orig_acc)
    orig_idx = np.full((A, MAX_CONTACTS), -1, dtype=np.int64)
    orig_idx[orig_acc, orig_slot] = np.arange(n_orig)
    leave_week = np.full((A, MAX_CONTACTS), np.iinfo(np.int32).max, dtype=np.int64)
    leaves = rng.geometric(p.contact_leave_weekly, n_orig)  # weeks until leaving
    leave_week[orig_acc, orig_slot] = leaves
    replaced = (leaves < n_weeks - 1) & (rng.random(n_orig) < p.contact_replaced_share)
    rep_gap = rng.integers(2, 13, n_orig)
    rep_ok = replaced & (leaves + rep_gap < n_weeks)
    rep_acc, rep_slot = orig_acc[rep_ok], orig_slot[rep_ok]
    rep_idx = np.full((A, MAX_CONTACTS), -1, dtype=np.int64)
    rep_idx[rep_acc, rep_slot] = n_orig + np.arange(len(rep_acc))
    rep_week = np.full((A, MAX_CONTACTS), np.iinfo(np.int32).max, dtype=np.int64)
    rep_week[rep_acc, rep_slot] = (leaves + rep_gap)[rep_ok]
    n_contacts_total = n_orig + len(rep_acc)
    contact_acc = np.concatenate([orig_acc, rep_acc])
    contact_role = np.concatenate([slot_role[orig_acc, orig_slot], slot_role[rep_acc, rep_slot]])
    span = np.maximum(start_ns - created_ns[orig_acc], DAY_NS)
    orig_created = created_ns[orig_acc] + (rng.random(n_orig) * span).astype(np.int64)
    orig_created -= orig_created % SECOND_NS
    contact_created = np.concatenate(
        [orig_created, start_ns + rep_week[rep_acc, rep_slot] * WEEK_NS]
    )
    contact_left = np.full(n_contacts_total, -1, dtype=np.int64)
    left_mask = leaves < n_weeks
    contact_left[:n_orig][left_mask] = start_ns + leaves[left_mask] * WEEK_NS
    champion_contact = orig_idx[np.arange(A), champion_slot]
    champion_left_week = leave_week[np.arange(A), champion_slot]

    # ---- per-phase lookup tables -----------------------------------------------------------
    role_w_phase = np.stack([_role_vector(w, roles) for w in _ROLE_WEIGHTS])  # P x R
    usage_roles = _role_vector(_USAGE_ROLES, roles) + 0.05
    ticket_roles = _role_vector(_TICKET_ROLES, roles) + 0.05
    contract_roles = _role_vector(_CONTRACT_ROLES, roles) + 0.05
    n_tmpl = max(len(t) for t in _TEMPLATES) + 1
    # Column 0 is "content touchpoint"; the rest are the phase's templates.
    tmpl_channel = np.zeros((N_PHASES, n_tmpl), dtype=np.int64)
    tmpl_etype = np.zeros((N_PHASES, n_tmpl), dtype=np.int64)
    tmpl_anon = np.zeros((N_PHASES, n_tmpl))
    tmpl_w = np.zeros((N_PHASES, n_tmpl))
    for ph, templates in enumerate(_TEMPLATES):
        tmpl_w[ph, 0] = _CONTENT_SHARE[ph]
        total = sum(t[2] for t in templates)
        for j, (ch, et, w, anon) in enumerate(templates, start=1):
            tmpl_channel[ph, j] = names.channel(ch)
            tmpl_etype[ph, j] = names.etype(et)
            tmpl_anon[ph, j] = anon
            tmpl_w[ph, j] = (1 - _CONTENT_SHARE[ph]) * w / total
    tmpl_cdf = np.cumsum(tmpl_w, axis=1)
    tmpl_cdf[:, -1] = 1.0
    # Items fitting (phase, topic); falling back to the items fitting the phase, then all.
    fits = cat.phase_fit == 1.0
    item_lists: list[list[list[int]]] = []
    for ph in range(N_PHASES):
        row = []
        for t in range(len(topics)):
            hit = np.nonzero(fits[:, ph] & (cat.topic == t))[0]
            if len(hit) == 0:
                hit = np.nonzero(fits[:, ph])[0]
            if len(hit) == 0:
                hit = np.arange(n_items)
            row.append(hit.tolist())
        item_lists.append(row)
    max_len = max(len(x) for row in item_lists for x in row)
    item_table = np.zeros((N_PHASES, len(topics), max_len), dtype=np.int64)
    item_count = np.zeros((N_PHASES, len(topics)), dtype=np.int64)
    for ph in range(N_PHASES):
        for t in range(len(topics)):
            item_table[ph, t, : len(item_lists[ph][t])] = item_lists[ph][t]
            item_count[ph, t] = len(item_lists[ph][t])
    content_types = [str(c) for c in content_frame["content_type"]]
    item_evt = np.zeros((n_items, len(names.event_types)))
    item_resp = np.zeros((n_items, len(names.event_types)))
    for i, ct in enumerate(content_types):
        for et, w in _CONTENT_EVENTS.get(ct, {"view": 1.0}).items():
            item_evt[i, names.etype(et)] = w
            if et in _RESPONSE_EVENTS:
                item_resp[i, names.etype(et)] = w
        item_resp[i, names.etype("click")] += 0.5
    item_evt_cdf = np.cumsum(item_evt / item_evt.sum(axis=1, keepdims=True), axis=1)
    item_resp_cdf = np.cumsum(item_resp / item_resp.sum(axis=1, keepdims=True), axis=1)
    item_evt_cdf[:, -1] = 1.0
    item_resp_cdf[:, -1] = 1.0
    item_channel = np.array([names.channel(str(c)) for c in content_frame["channel"]])
    noise_channels = np.array([names.channel(c) for c in _NOISE_CHANNELS])
    is_training = np.array([ct == "training" for ct in content_types])
    policy = _logging_policy(cat, p.policy_uniform_mix)
    policy_cdf = np.cumsum(policy, axis=1)
    policy_cdf[:, -1] = 1.0
    ch_email = names.channel("email")
    ch_product = names.channel("product")
    ch_service = names.channel("customer_service")
    ch_sales = names.channel("sales_call")
    et_view, et_attend = names.etype("view"), names.etype("attend")
    et_usage, et_ticket = names.etype("usage"), names.etype("support_ticket")
    et_purchase, et_renewal, et_churn = (
        names.etype("purchase"),
        names.etype("renewal"),
        names.etype("churn"),
    )
    advance = np.asarray(p.advance_hazard, dtype=float)
    loss = np.asarray(p.loss_hazard, dtype=float)
    touch_rate = np.asarray(p.touch_rate, dtype=float)
    exposure_rate = np.full(N_PHASES, p.exposure_rate[1])
    exposure_rate[TRIGGER] = p.exposure_rate[0]
    exposure_rate[list(CUSTOMER_PHASES)] = p.exposure_rate[2]

    # ---- initial state ---------------------------------------------------------------------
    share = np.asarray(p.initial_phase_share, dtype=float)
    phase = rng.choice(N_PHASES, size=A, p=share / share.sum()).astype(np.int64)
    is_customer0 = np.isin(phase, CUSTOMER_PHASES)
    contract_week = np.where(
        phase == ONBOARDING, -rng.integers(1, 9, A), -rng.integers(1, 52, A)
    ).astype(np.int64)
    contract_week[~is_customer0] = np.iinfo(np.int32).min
    trainings = np.where(phase == ONBOARDING, 0, rng.poisson(2.0, A)).astype(np.int64)
    ever_churned = np.zeros(A, dtype=bool)
    boost = np.zeros(A)
    health_target = -0.5 * frailty
    health = health_target + 0.45 * rng.standard_normal(A)
    eng_level = -0.4 * frailty + 0.45 * rng.standard_normal(A)
    hist = 9  # weeks of history kept for trends (now vs 8 weeks ago)
    health_hist = np.repeat(health[:, None], hist, axis=1)
    eng_hist = np.repeat(eng_level[:, None], hist, axis=1)
    ticket_hist = np.zeros((A, 8), dtype=np.int64)
    fatigue_ring = np.full((n_contacts_total, _FATIGUE_SLOTS), np.iinfo(np.int64).min // 2)
    fatigue_pos = np.zeros(n_contacts_total, dtype=np.int64)
    fatigue_ns = p.fatigue_window_days * DAY_NS

    events = _Events()
    # Historical contracts of initial customers: the CRM knows their purchase.
    init_cust = np.nonzero(is_customer0)[0]
    if len(init_cust):
        ts0 = (
            start_ns
            + contract_week[init_cust] * WEEK_NS
            + (rng.integers(0, 86_400, len(init_cust)) * SECOND_NS)
        )
        events.add(
            init_cust,
            _choose_contacts(init_cust, contract_roles, orig_idx, slot_role, slot_exists, rng),
            ts0,
            ch_sales,
            et_purchase,
            value=acv[init_cust],
        )

    # Phase segments and CRM records.
    seg_acc: list[np.ndarray] = [np.arange(A)]
    seg_phase: list[np.ndarray] = [phase.copy()]
    init_start = start_ns - (rng.uniform(0, 60, A) * DAY_NS).astype(np.int64)
    init_start -= init_start % SECOND_NS
    seg_start: list[np.ndarray] = [init_start]
    rec_ts: list[np.ndarray] = [init_start]
    rec_phase: list[np.ndarray] = [phase.copy()]
    crm_phase = phase.copy()
    pend_acc = np.empty(0, dtype=np.int64)
    pend_ts = np.empty(0, dtype=np.int64)
    pend_phase = np.empty(0, dtype=np.int64)

    hz_acc: list[np.ndarray] = []
    hz_week: list[np.ndarray] = []
    hz_val: list[np.ndarray] = []
    exp_parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("acc", "contact", "item", "ts", "channel", "prop", "phase", "p", "resp")
    }
    lag_mu = np.log(p.stage_lag_median_days)

    def slots_at(week: int) -> np.ndarray:
        """Who is in each buying-center slot in a week (-1: vacant); contacts leave and
        arrive at week starts."""
        return np.where(week < leave_week, orig_idx, np.where(week >= rep_week, rep_idx, -1))

    # Contacts respond only while still at the account.
    contact_gone = np.where(contact_left >= 0, contact_left, np.iinfo(np.int64).max)

    for w in range(n_weeks):
        ws = start_ns + w * WEEK_NS
        slot_contact = slots_at(w)
        customer = np.isin(phase, CUSTOMER_PHASES)
        cust_idx = np.nonzero(customer)[0]

        # Customer health, engagement and service load.
        champ_recent = (w >= champion_left_week) & (w < champion_left_week + 26)
        few_trainings = (trainings < 2) & (w - contract_week > 12)
        target = health_target - 0.6 * few_trainings - 0.5 * champ_recent
        health = 0.9 * health + 0.1 * target + 0.2 * rng.standard_normal(A)
        eng_level = (
            0.9 * eng_level
            + 0.1 * (-0.4 * frailty - 0.4 * champ_recent)
            + (0.2 * rng.standard_normal(A))
        )
        health_hist[:, w % hist] = health
        eng_hist[:, w % hist] = eng_level
        n_usage = rng.poisson(0.3 * np.exp(health[cust_idx]))
        if n_usage.sum():
            u_acc = np.repeat(cust_idx, n_usage)
            events.add(
                u_acc,
                _choose_contacts(u_acc, usage_roles, slot_contact, slot_role, slot_exists, rng),
                ws + rng.integers(0, 7 * 86_400, len(u_acc)) * SECOND_NS,
                ch_product,
                et_usage,
            )
        onboarding_load = 1.0 + 1.5 * (phase[cust_idx] == ONBOARDING)
        n_ticket = rng.poisson(
            0.06 * onboarding_load * np.exp(0.6 * frailty[cust_idx] - 0.5 * health[cust_idx])
        )
        ticket_hist[:, w % 8] = 0
        ticket_hist[cust_idx, w % 8] = n_ticket
        if n_ticket.sum():
            t_acc = np.repeat(cust_idx, n_ticket)
            events.add(
                t_acc,
                _choose_contacts(t_acc, ticket_roles, slot_contact, slot_role, slot_exists, rng),
                ws + rng.integers(0, 7 * 86_400, len(t_acc)) * SECOND_NS,
                ch_service,
                et_ticket,
            )

        # Organic touchpoints.
        rate = touch_rate[phase] * engagement * np.where(customer, np.exp(0.5 * eng_level), 1.0)
        n_touch = rng.poisson(rate)
        e_acc = np.repeat(np.arange(A), n_touch)
        n_e = len(e_acc)
        if n_e:
            e_phase = phase[e_acc]
            tmpl = _pick_cdf(tmpl_cdf[e_phase], rng.random(n_e))
            is_content = tmpl == 0
            e_channel = tmpl_channel[e_phase, tmpl]
            e_etype = tmpl_etype[e_phase, tmpl]
            e_item = np.full(n_e, -1, dtype=np.int64)
            c_pos = np.nonzero(is_content)[0]
            if len(c_pos):
                c_acc, c_phase = e_acc[c_pos], e_phase[c_pos]
                topic = _pick_cdf(topic_cdf[c_acc], rng.random(len(c_pos)))
                k = (rng.random(len(c_pos)) * item_count[c_phase, topic]).astype(np.int64)
                item = item_table[c_phase, topic, k]
                noise = rng.random(len(c_pos)) < p.organic_noise
                item[noise] = rng.integers(0, n_items, int(noise.sum()))
                e_item[c_pos] = item
                e_etype[c_pos] = _pick_cdf(item_evt_cdf[item], rng.random(len(c_pos)))
                usual = rng.random(len(c_pos)) < 0.75
                e_channel[c_pos] = np.where(
                    usual,
                    item_channel[item],
                    noise_channels[rng.integers(0, len(noise_channels), len(c_pos))],
                )
                trained = is_training[item] & np.isin(c_phase, CUSTOMER_PHASES)
                trainings += np.bincount(c_acc[trained], minlength=A)
            weights = role_w_phase[e_phase]
            contact = _choose_contacts(
                e_acc, weights, slot_contact, slot_role, slot_exists, rng, item=e_item, cat=cat
            )
            anon = rng.random(n_e) < tmpl_anon[e_phase, tmpl]
            contact[anon] = -1
            events.add(
                e_acc,
                contact,
                ws + rng.integers(0, 7 * 86_400, n_e) * SECOND_NS,
                e_channel,
                e_etype,
                e_item,
                _durations(e_etype, et_view, et_attend, rng),
            )

        # Exposures by the logging policy, and the contacts' responses.
        responded_fit = np.zeros(A)
        first = rng.random(A) < exposure_rate[phase]
        second = first & (rng.random(A) < p.second_exposure)
        for k, chosen in enumerate((first, second)):
            # CRM records due by this send time update the recorded phase the policy sees.
            if len(pend_acc):
                due = pend_ts <= ws + send_offset[pend_acc] + k * 3600 * SECOND_NS
                if due.any():
                    d_acc, d_ts, d_ph = pend_acc[due], pend_ts[due], pend_phase[due]
                    order = np.lexsort((d_ts, d_acc))
                    d_acc, d_ph = d_acc[order], d_ph[order]
                    last = np.append(d_acc[1:] != d_acc[:-1], True)
                    crm_phase[d_acc[last]] = d_ph[last]
                    keep = ~due
                    pend_acc, pend_ts, pend_phase = (
                        pend_acc[keep],
                        pend_ts[keep],
                        pend_phase[keep],
                    )
            x_acc = np.nonzero(chosen)[0]
            active = slot_contact[x_acc] >= 0
            slot = _pick(active.astype(float), rng.random(len(x_acc)))
            ok = slot >= 0
            x_acc, slot = x_acc[ok], slot[ok]
            n_x = len(x_acc)
            if n_x == 0:
                continue
            x_contact = slot_contact[x_acc, slot]
            x_ts = ws + send_offset[x_acc] + k * 3600 * SECOND_NS
            x_item = _pick_cdf(policy_cdf[crm_phase[x_acc]], rng.random(n_x))
            x_prop = policy[crm_phase[x_acc], x_item]
            x_channel = np.where(rng.random(n_x) < 0.6, ch_email, item_channel[x_item])
            ring = fatigue_ring[x_contact]
            fatigue = ((ring >= (x_ts - fatigue_ns)[:, None]) & (ring < x_ts[:, None])).sum(1)
            fatigue_ring[x_contact, fatigue_pos[x_contact] % _FATIGUE_SLOTS] = x_ts
            fatigue_pos[x_contact] += 1
            x_phase = phase[x_acc]
            fit = cat.phase_fit[x_item, x_phase]
            prob = _sigmoid(
                _response_logit(
                    resp,
                    fit,
                    cat.role_fit[x_item, slot_role[x_acc, slot]],
                    interest[x_acc, cat.topic[x_item]],
                    fatigue,
                )
            )
            r_ts = x_ts + rng.integers(60, 7 * 86_400, n_x) * SECOND_NS
            # A contact who leaves before responding does not respond.
            responds = (rng.random(n_x) < prob) & (r_ts < contact_gone[x_contact])
            seen = responds & (r_ts < end_ns)
            r = np.nonzero(seen)[0]
            if len(r):
                r_etype = _pick_cdf(item_resp_cdf[x_item[r]], rng.random(len(r)))
                events.add(
                    x_acc[r],
                    x_contact[r],
                    r_ts[r],
                    x_channel[r],
                    r_etype,
                    x_item[r],
                    _durations(r_etype, et_view, et_attend, rng),
                )
            responded_fit += np.bincount(x_acc[responds & (fit == 1.0)], minlength=A)
            for key, val in (
                ("acc", x_acc), ("contact", x_contact), ("item", x_item), ("ts", x_ts),
                ("channel", x_channel), ("prop", x_prop), ("phase", x_phase), ("p", prob),
                ("resp", responds),
            ):  # fmt: skip
                exp_parts[key].append(val)
        boost = p.boost_decay * boost + responded_fit

        # Churn hazard of customers (recorded as truth), then phase transitions.
        cust_h = np.zeros(A)
        if len(cust_idx):
            old = (w - 8) % hist
            usage_trend = health_hist[cust_idx, w % hist] - health_hist[cust_idx, old]
            eng_trend = eng_hist[cust_idx, w % hist] - eng_hist[cust_idx, old]
            logit = (
                p.churn_base
                + p.churn_few_trainings * few_trainings[cust_idx]
                + p.churn_per_ticket * ticket_hist[cust_idx].sum(axis=1)
                - p.churn_usage_decline * usage_trend
                - p.churn_engagement_decline * eng_trend
                + p.churn_champion_left * champ_recent[cust_idx]
                + p.churn_frailty * frailty[cust_idx]
                - p.churn_health * health[cust_idx]
            )
            cust_h[cust_idx] = _sigmoid(logit)
            hz_acc.append(cust_idx.astype(np.int32))
            hz_week.append(np.full(len(cust_idx), w, dtype=np.int32))
            hz_val.append(cust_h[cust_idx])

        # Renewals at contract anniversaries.
        anniversary = customer & (w > contract_week) & ((w - contract_week) % 52 == 0)
        ren = np.nonzero(anniversary)[0]
        if len(ren):
            events.add(
                ren,
                _choose_contacts(ren, contract_roles, slot_contact, slot_role, slot_exists, rng),
                ws + rng.integers(0, 3 * 86_400, len(ren)) * SECOND_NS,
                ch_sales,
                et_renewal,
                value=acv[ren] * rng.uniform(1.0, 1.1, len(ren)),
            )

        if w == n_weeks - 1:
            break  # no transitions at the end boundary
        u = rng.random(A)
        lever = np.exp(p.response_boost * boost)
        adv_h = advance[phase] * np.where(phase <= PURCHASE, velocity * lever, 1.0)
        adv_h = np.where(phase == EXPANSION, advance[EXPANSION], adv_h)
        adv_h = np.where(phase == IMPACT, advance[IMPACT] * lever * np.exp(0.3 * health), adv_h)
        adv_h = np.where((phase == TRIGGER) & ever_churned, adv_h * p.rebuy_after_churn, adv_h)
        adv_p = 1.0 - np.exp(-adv_h)
        loss_p = loss[phase]
        churns = customer & (u < cust_h)
        lost = ~customer & (u < loss_p)
        advances = (
            ~churns
            & ~lost
            & (u >= np.where(customer, cust_h, loss_p))
            & (u < np.where(customer, cust_h, loss_p) + adv_p)
        )
        new_phase = phase.copy()
        new_phase[churns | lost] = TRIGGER
        new_phase[advances] = np.where(phase[advances] == EXPANSION, IMPACT, phase[advances] + 1)
        changed = np.nonzero(new_phase != phase)[0]
        nxt = ws + WEEK_NS
        if len(changed):
            # Lifecycle events at the start of the new phase, with next week's contacts.
            slots_next = slots_at(w + 1)
            buy = changed[(phase[changed] == PURCHASE) & (new_phase[changed] == ONBOARDING)]
            closes = changed[(phase[changed] == EXPANSION) & (new_phase[changed] == IMPACT)]
            closes = closes[rng.random(len(closes)) < p.expansion_close_share]
            gone = changed[churns[changed]]
            for accs, life_et, amount in (
                (buy, et_purchase, acv[buy]),
                (closes, et_purchase, 0.3 * acv[closes]),
                (gone, et_churn, np.full(len(gone), np.nan)),
            ):
                if len(accs):
                    life_ch = ch_service if life_et == et_churn else ch_sales
                    events.add(
                        accs,
                        _choose_contacts(
                            accs, contract_roles, slots_next, slot_role, slot_exists, rng
                        ),
                        nxt + rng.integers(0, 86_400, len(accs)) * SECOND_NS,
                        life_ch,
                        life_et,
                        value=amount,
                    )
            contract_week[buy] = w + 1
            trainings[buy] = 0
            ever_churned[gone] = True
            contract_week[gone] = np.iinfo(np.int32).min
            boost[changed] = 0.0
            # Truth segments and their (late, sometimes wrong) CRM records.
            n_c = len(changed)
            seg_acc.append(changed)
            seg_phase.append(new_phase[changed])
            seg_start.append(np.full(n_c, nxt, dtype=np.int64))
            lag = (rng.lognormal(lag_mu, p.stage_lag_sigma, n_c) * 86_400).astype(np.int64)
            r_ts = nxt + lag * SECOND_NS
            r_phase = new_phase[changed].copy()
            wrong = rng.random(n_c) < p.stage_error_rate
            step = np.where(rng.random(n_c) < 0.5, -1, 1)
            step = np.where(r_phase == 0, 1, np.where(r_phase == N_PHASES - 1, -1, step))
            r_phase[wrong] += step[wrong]
            rec_ts.append(r_ts)
            rec_phase.append(r_phase)
            pend_acc = np.concatenate([pend_acc, changed])
            pend_ts = np.concatenate([pend_ts, r_ts])
            pend_phase = np.concatenate([pend_phase, r_phase])
        phase = new_phase

    return _assemble(
        tax=tax,
        p=p,
        rng=rng,
        start_ns=start_ns,
        end_ns=end_ns,
        events=events,
        accounts=dict(
            industry=industry,
            region=region,
            employees=employees,
            revenue=revenue,
            owner=owner,
            created=created_ns,
            velocity=velocity,
            frailty=frailty,
            engagement=engagement,
            interest=interest,
            champion=champion_contact,
        ),
        contacts=dict(
            acc=contact_acc, role=contact_role, created=contact_created, left=contact_left
        ),
        content_frame=content_frame,
        segments=(seg_acc, seg_phase, seg_start, rec_ts, rec_phase),
        exposures=exp_parts,
        hazard=(hz_acc, hz_week, hz_val),
        resp=resp,
    )


def _choose_contacts(
    acc: np.ndarray,
    role_weights: np.ndarray,
    slot_contact: np.ndarray,
    slot_role: np.ndarray,
    slot_exists: np.ndarray,
    rng: np.random.Generator,
    *,
    item: np.ndarray | None = None,
    cat: _Catalog | None = None,
) -> np.ndarray:
    """A contact (global index, -1 if the buying center is empty) per event of accounts
    ``acc``, drawn among the account's current contacts with weight by role: ``role_weights``
    is one vector over roles or one row per event; content events favour fitting roles."""
    roles = slot_role[acc]  # n x slots
    if role_weights.ndim == 1:
        w = role_weights[roles]
    else:
        w = np.take_along_axis(role_weights, roles, axis=1)
    if item is not None and cat is not None:
        has = item >= 0
        fit = cat.role_fit[np.where(has, item, 0)[:, None], roles]
        w = w * np.where(has[:, None], 1.0 + 2.0 * fit, 1.0)
    current = slot_contact[acc]
    w = np.where((current >= 0) & slot_exists[acc], w, 0.0)
    slot = _pick(w, rng.random(len(acc)))
    return np.where(slot >= 0, current[np.arange(len(acc)), np.maximum(slot, 0)], -1)


def _durations(
    etype: np.ndarray, et_view: int, et_attend: int, rng: np.random.Generator
) -> np.ndarray:
    """Minutes for views and attendances, NaN otherwise."""
    out = np.full(len(etype), np.nan)
    views = etype == et_view
    attends = etype == et_attend
    out[views] = np.round(rng.lognormal(np.log(3.0), 0.8, int(views.sum())), 1)
    out[attends] = np.round(rng.lognormal(np.log(40.0), 0.4, int(attends.sum())), 1)
    return out


def _assemble(
    *,
    tax: Taxonomy,
    p: SimulationParams,
    rng: np.random.Generator,
    start_ns: int,
    end_ns: int,
    events: _Events,
    accounts: dict[str, np.ndarray],
    contacts: dict[str, np.ndarray],
    content_frame: pd.DataFrame,
    segments: tuple[list[np.ndarray], ...],
    exposures: dict[str, list[np.ndarray]],
    hazard: tuple[list[np.ndarray], ...],
    resp: dict[str, float],
) -> Simulation:
    """Turn the simulation's arrays into canonical tables and truth."""
    A = len(accounts["industry"])
    acc_width = 6 if A < 10**6 else 9
    account_id = _ids("A", np.arange(1, A + 1), acc_width)
    phases = tax.phases

    def acc_ids(idx: np.ndarray) -> pd.Series:
        return _ids("A", np.asarray(idx) + 1, acc_width)

    def contact_ids(idx: np.ndarray) -> pd.Series:
        idx = np.asarray(idx)
        return _ids("K", np.maximum(idx, 0) + 1, 7, valid=idx >= 0)

    cat_ids = [str(c) for c in content_frame["content_id"]]

    accounts_df = pd.DataFrame(
        {
            "account_id": account_id,
            "industry": _categorical(accounts["industry"], list(tax.industries)),
            "employees": accounts["employees"].astype(np.int64),
            "region": _categorical(accounts["region"], list(tax.regions)),
            "created_at": _timestamps(accounts["created"]),
            "annual_revenue": np.round(accounts["revenue"], 0).astype(np.float64),
            "owner_rep_id": _ids("R", accounts["owner"], 3),
        }
    )
    n_c = len(contacts["acc"])
    contacts_df = pd.DataFrame(
        {
            "contact_id": contact_ids(np.arange(n_c)),
            "account_id": acc_ids(contacts["acc"]),
            "role": _categorical(contacts["role"], tax.role_names),
            "created_at": _timestamps(contacts["created"]),
            "left_at": _timestamps(np.where(contacts["left"] >= 0, contacts["left"], 0)),
        }
    )
    contacts_df.loc[contacts["left"] < 0, "left_at"] = pd.NaT

    content_df = pd.DataFrame(
        {
            c.name: _content_column(content_frame, c.name, tax)
            for c in TABLES["content"].columns
            if c.name in content_frame
        }
    )

    # Touchpoints in time order; event ids follow it.
    ev = events.arrays()
    keep = ev["ts"] < end_ns
    order = np.argsort(ev["ts"][keep], kind="stable")
    ev = {k: v[keep][order] for k, v in ev.items()}
    n_ev = len(ev["ts"])
    content_codes = ev["content"].astype(np.int64)
    touchpoints = pd.DataFrame(
        {
            "event_id": _ids("E", np.arange(1, n_ev + 1), 9),
            "account_id": acc_ids(ev["acc"]),
            "contact_id": contact_ids(ev["contact"]),
            "ts": _timestamps(ev["ts"]),
            "channel": _categorical(ev["channel"], tax.channel_names),
            "event_type": _categorical(ev["etype"], tax.event_type_names),
            "content_id": _content_ids(content_codes, cat_ids),
            "value": ev["value"].astype(np.float64),
        }
    )
    del ev

    # Phase segments (truth) and CRM stages.
    seg_acc, seg_phase, seg_start, rec_ts, rec_phase = (np.concatenate(x) for x in segments)
    order = np.lexsort((seg_start, seg_acc))
    seg_acc, seg_phase, seg_start = seg_acc[order], seg_phase[order], seg_start[order]
    rec_ts, rec_phase = rec_ts[order], rec_phase[order]
    same_next = np.append(seg_acc[1:] == seg_acc[:-1], False)
    seg_end = np.where(same_next, np.append(seg_start[1:], 0), -1)
    recorded = rec_ts < end_ns
    phases_truth = pd.DataFrame(
        {
            "account_id": acc_ids(seg_acc),
            "phase": _categorical(seg_phase, phases),
            "start": _timestamps(seg_start),
            "end": _timestamps(np.maximum(seg_end, 0)),
            "recorded_at": _timestamps(np.where(recorded, rec_ts, 0)),
            "recorded_phase": _categorical(np.where(recorded, rec_phase, -1), phases),
        }
    )
    phases_truth.loc[seg_end < 0, "end"] = pd.NaT
    phases_truth.loc[~recorded, "recorded_at"] = pd.NaT
    s_order = np.lexsort((seg_acc[recorded], rec_ts[recorded]))
    stages = pd.DataFrame(
        {
            "account_id": acc_ids(seg_acc[recorded][s_order]),
            "ts": _timestamps(rec_ts[recorded][s_order]),
            "phase": _categorical(rec_phase[recorded][s_order], phases),
        }
    )

    # Exposures in time order.
    xp = {k: np.concatenate(v) if v else np.empty(0) for k, v in exposures.items()}
    order = np.lexsort((xp["acc"], xp["ts"]))
    xp = {k: v[order] for k, v in xp.items()}
    n_x = len(order)
    exposure_id = _ids("X", np.arange(1, n_x + 1), 9)
    x_acc_ids = acc_ids(xp["acc"])
    x_contact_ids = contact_ids(xp["contact"])
    x_content_ids = _content_ids(xp["item"].astype(np.int64), cat_ids)
    x_ts = _timestamps(xp["ts"])
    exposures_df = pd.DataFrame(
        {
            "exposure_id": exposure_id,
            "account_id": x_acc_ids,
            "contact_id": x_contact_ids,
            "ts": x_ts,
            "content_id": x_content_ids,
            "channel": _categorical(xp["channel"], tax.channel_names),
            "propensity": xp["prop"].astype(np.float64),
        }
    )
    exposures_truth = pd.DataFrame(
        {
            "exposure_id": exposure_id,
            "account_id": x_acc_ids,
            "contact_id": x_contact_ids,
            "content_id": x_content_ids,
            "ts": x_ts,
            "true_phase": _categorical(xp["phase"], phases),
            "p_response": xp["p"].astype(np.float64),
            "responded": xp["resp"].astype(bool),
        }
    )

    hz_acc, hz_week, hz_val = (np.concatenate(x) if x else np.empty(0) for x in hazard)
    churn_hazard = pd.DataFrame(
        {
            "account_id": acc_ids(hz_acc.astype(np.int64)),
            "week_start": _timestamps(start_ns + hz_week.astype(np.int64) * WEEK_NS),
            "hazard": hz_val.astype(np.float64),
        }
    )
    latent = pd.DataFrame(
        {
            "account_id": account_id,
            "velocity": accounts["velocity"],
            "frailty": accounts["frailty"],
            "engagement": accounts["engagement"],
            "champion_contact_id": contact_ids(accounts["champion"]),
        }
    )
    for t, name in enumerate(tax.topic_names):
        latent[f"interest_{name}"] = accounts["interest"][:, t]
    params = dict(resp)
    params.update(
        adjacent_phase_fit=p.adjacent_phase_fit,
        fatigue_window_days=float(p.fatigue_window_days),
        start_ns=float(start_ns),
        end_ns=float(end_ns),
        week_ns=float(WEEK_NS),
    )
    params_df = pd.DataFrame(
        {"name": pd.Series(list(params), dtype=_STR), "value": list(params.values())}
    )
    truth = SimulationTruth(
        phases=phases_truth,
        accounts=latent,
        contacts=contacts_df[["contact_id", "account_id", "role"]].copy(),
        content=content_df[["content_id", "phases", "roles", "topic"]].copy(),
        exposures=exposures_truth,
        churn_hazard=churn_hazard,
        params=params_df,
    )
    data = JourneyData(
        accounts=accounts_df,
        contacts=contacts_df,
        touchpoints=touchpoints,
        content=content_df,
        stages=stages,
        exposures=exposures_df,
    )
    return Simulation(data=data, truth=truth)


def _content_ids(codes: np.ndarray, cat_ids: list[str]) -> pd.Series:
    """Content ids for catalog indices (-1: NaN) as canonical ``str``."""
    labels = pa.array(cat_ids, type=pa.large_string())
    idx = pa.array(codes, mask=codes < 0, type=pa.int64())
    taken = labels.take(idx)
    return pd.Series(taken.to_pandas(types_mapper={pa.large_string(): _STR}.get))


def _content_column(frame: pd.DataFrame, name: str, tax: Taxonomy) -> pd.Series:
    dtype = column_dtype(TABLES["content"].column(name), tax)
    col = frame[name]
    if dtype is object:
        return col.map(list)
    return col.astype(cast(Any, dtype))


# --------------------------------------------------------------------------------------------
# Writing and reading


def write_simulation(sim: Simulation, out_dir: Path | str) -> Path:
    """Write the six tables (``features.load.write_data_dir``) and ``OUT_DIR/truth/*.parquet``;
    returns ``out_dir``."""
    out = write_data_dir(sim.data, out_dir)
    truth_dir = out / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in sim.truth.tables().items():
        frame.to_parquet(truth_dir / f"{name}.parquet", index=False)
    return out


def load_truth(data_dir: Path | str) -> SimulationTruth:
    """Read ``DATA_DIR/truth/`` as written by :func:`write_simulation`."""
    truth_dir = Path(data_dir) / "truth"
    frames: dict[str, Any] = {}
    for f in fields(SimulationTruth):
        path = truth_dir / f"{f.name}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"simulation truth file {path} is missing")
        frames[f.name] = pd.read_parquet(path)
    frames["content"]["phases"] = frames["content"]["phases"].map(list)
    frames["content"]["roles"] = frames["content"]["roles"].map(list)
    return SimulationTruth(**frames)


# --------------------------------------------------------------------------------------------
# Ground-truth functions


def _utc_ns(values: Any, n: int) -> np.ndarray:
    """Timestamps (one or n) as int64 UTC nanoseconds, broadcast to n."""
    if isinstance(values, pd.Series | pd.Index | np.ndarray | list):
        out = column_ns(pd.to_datetime(pd.Series(values), utc=True))
    else:
        out = np.full(n, to_ns(values), dtype=np.int64)
    if len(out) != n:
        raise ValueError(f"got {len(out)} timestamps for {n} rows")
    return out


def _segment_lookup(
    truth: SimulationTruth, account_ids: Any, at_ns: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Index into truth.phases of the segment covering each (account, time); -1 if none."""
    seg = truth.phases
    acc_codes, _ = pd.factorize(
        pd.concat([seg["account_id"].astype(str), pd.Series(account_ids, dtype=str)]),
        sort=False,
    )
    seg_codes = acc_codes[: len(seg)]
    req_codes = acc_codes[len(seg) :]
    seg_start = _utc_ns(seg["start"], len(seg))
    order = np.lexsort((seg_start, seg_codes))
    s_codes, s_start = seg_codes[order], seg_start[order]
    lo = np.searchsorted(s_codes, req_codes, side="left")
    hi = np.searchsorted(s_codes, req_codes, side="right")
    # One sorted int64 key (account code, start second): segment starts are whole seconds,
    # so start <= at  <=>  start_second <= floor(at_second).
    base = int(min(s_start.min(), at_ns.min())) if len(s_start) and len(at_ns) else 0
    s_sec = (s_start - base) // SECOND_NS
    q_sec = (at_ns - base) // SECOND_NS
    scale = int(max(s_sec.max(initial=0), q_sec.max(initial=0)) + 1)
    key = s_codes.astype(np.int64) * scale + s_sec
    pos = np.searchsorted(key, req_codes.astype(np.int64) * scale + q_sec, side="right") - 1
    valid = (pos >= lo) & (pos < hi)
    valid &= s_start[np.clip(pos, 0, None)] <= at_ns
    return np.where(valid, order[np.clip(pos, 0, None)], -1), req_codes


def true_phases(
    truth: SimulationTruth, account_ids: Any, at: pd.Timestamp | pd.Series | str
) -> pd.Series:
    """The latent phase of each account at ``at`` (one time or one per account), as a
    categorical Series aligned with ``account_ids`` (NaN before the account's first segment
    or for unknown accounts)."""
    ids = pd.Series(account_ids, dtype=str).reset_index(drop=True)
    at_ns = _utc_ns(at, len(ids))
    idx, _ = _segment_lookup(truth, ids, at_ns)
    phase = truth.phases["phase"]
    codes = np.where(idx >= 0, phase.cat.codes.to_numpy()[np.maximum(idx, 0)], -1)
    return pd.Series(
        pd.Categorical.from_codes(codes, dtype=cast(pd.CategoricalDtype, phase.dtype)), name="phase"
    )


def true_churn_probability(
    truth: SimulationTruth, as_of: Sequence[pd.Timestamp], horizon_days: int = 90
) -> pd.DataFrame:
    """For every account that is a customer at each as-of date: the probability that it
    churns in (as_of, as_of + horizon_days], holding the weekly hazard the simulator used in
    the week containing as_of for the horizon. Returns account_id, as_of, p_churn."""
    start_ns = int(truth.param("start_ns"))
    week_ns = int(truth.param("week_ns"))
    hz = truth.churn_hazard
    week = (_utc_ns(hz["week_start"], len(hz)) - start_ns) // week_ns
    out = []
    for t in as_of:  # a handful of as-of dates
        t_ns = int(_utc_ns(t, 1)[0])
        w = (t_ns - start_ns) // week_ns
        rows = hz[week == w]
        boundaries = (t_ns + horizon_days * DAY_NS - start_ns) // week_ns - w
        p = 1.0 - (1.0 - rows["hazard"].to_numpy()) ** max(int(boundaries), 0)
        out.append(
            pd.DataFrame(
                {
                    "account_id": rows["account_id"].to_numpy(),
                    "as_of": _timestamps(np.full(len(rows), t_ns)),
                    "p_churn": p,
                }
            )
        )
    if not out:
        return pd.DataFrame(
            {
                "account_id": pd.Series([], dtype=_STR),
                "as_of": pd.Series([], dtype="datetime64[ns, UTC]"),
                "p_churn": pd.Series([], dtype=float),
            }
        )
    frame = pd.concat(out, ignore_index=True)
    frame["account_id"] = frame["account_id"].astype(_STR)
    return frame


def true_response_probability(truth: SimulationTruth, requests: pd.DataFrame) -> np.ndarray:
    """The simulator's probability that ``contact_id`` of ``account_id`` responds to
    ``content_id`` shown at ``ts``: the response model with the true phase at ts, the
    contact's role, the account's topic interest and fatigue = the contact's exposures in
    [ts - fatigue window, ts). Requests need account_id, contact_id, content_id, ts."""
    missing = {"account_id", "contact_id", "content_id", "ts"} - set(requests.columns)
    if missing:
        raise ValueError(f"requests lacks columns {sorted(missing)}")
    n = len(requests)
    ts = _utc_ns(requests["ts"], n)
    phases = list(truth.phases["phase"].cat.categories)
    roles = list(truth.contacts["role"].cat.categories)
    topics = list(truth.content["topic"].cat.categories)
    cat = _catalog(truth.content, phases, roles, topics, truth.param("adjacent_phase_fit"))
    item = pd.Index(cat.content_ids).get_indexer(pd.Index(requests["content_id"].astype(str)))
    if (item < 0).any():
        bad = requests["content_id"][item < 0].unique()[:5].tolist()
        raise ValueError(f"requests.content_id {bad} not in the simulated catalog")
    seg, _ = _segment_lookup(truth, requests["account_id"], ts)
    phase_codes = truth.phases["phase"].cat.codes.to_numpy()
    phase_idx = np.where(seg >= 0, phase_codes[np.maximum(seg, 0)], -1)
    phase_fit = np.where(phase_idx >= 0, cat.phase_fit[item, np.maximum(phase_idx, 0)], 0.0)
    contacts = truth.contacts.set_index("contact_id")["role"]
    role = contacts.reindex(requests["contact_id"].astype(str)).cat.codes.to_numpy()
    role_fit = np.where(role >= 0, cat.role_fit[item, np.maximum(role, 0)], 0.0)
    latent = truth.accounts.set_index("account_id")
    interest_cols = [f"interest_{t}" for t in topics]
    interest_m = latent[interest_cols].reindex(requests["account_id"].astype(str)).to_numpy()
    interest = np.nan_to_num(interest_m[np.arange(n), cat.topic[item]])
    fatigue = _fatigue(truth, requests["contact_id"], ts)
    params = {
        k: truth.param(k)
        for k in ("response_base", "response_phase_fit", "response_role_fit", "response_topic",
                  "response_fatigue")
    }  # fmt: skip
    return _sigmoid(_response_logit(params, phase_fit, role_fit, interest, fatigue))


def _fatigue(truth: SimulationTruth, contact_ids: Any, ts: np.ndarray) -> np.ndarray:
    """Exposures of each contact with time in [ts - window, ts)."""
    window = int(truth.param("fatigue_window_days")) * DAY_NS
    ex = truth.exposures
    codes, uniques = pd.factorize(
        pd.concat([ex["contact_id"].astype(str), pd.Series(contact_ids, dtype=str)]), sort=False
    )
    ex_codes = codes[: len(ex)].astype(np.int64)
    req_codes = codes[len(ex) :].astype(np.int64)
    ex_ts = _utc_ns(ex["ts"], len(ex))
    base = min(int(ex_ts.min()) if len(ex_ts) else 0, int(ts.min()) - window) if len(ts) else 0
    sec = (ex_ts - base) // SECOND_NS
    scale = int(max(sec.max() if len(sec) else 0, ((ts - base) // SECOND_NS).max()) + 2)
    key = np.sort(ex_codes * scale + sec)
    # Exposure times are whole seconds, so e < t  <=>  e_sec < ceil(t_sec).
    hi_s = -((-(ts - base)) // SECOND_NS)
    lo_s = -((-(ts - window - base)) // SECOND_NS)
    hi = np.searchsorted(key, req_codes * scale + hi_s, side="left")
    lo = np.searchsorted(key, req_codes * scale + lo_s, side="left")
    return (hi - lo).astype(float)


__all__ = [
    "Simulation",
    "SimulationError",
    "SimulationParams",
    "SimulationTruth",
    "load_truth",
    "simulate",
    "true_churn_probability",
    "true_phases",
    "true_response_probability",
    "write_simulation",
]
