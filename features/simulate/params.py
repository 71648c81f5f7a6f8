"""The parameters of the simulated world: the knobs of the generative model
(:class:`SimulationParams`) and the fixed tables behind them (touchpoint templates per
phase, event types per content type, role weights per phase, industry speeds)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from features.errors import InvalidInputError
from features.timestamps import NS_PER_DAY

WEEK_NS = 7 * NS_PER_DAY
SECOND_NS = 10**9
DAY_S = 86_400  # times within a day are drawn in whole seconds

# The semantic slots of the default 8-phase model, by position.
TRIGGER, AWARENESS, CONSIDERATION, SELECTION, PURCHASE, ONBOARDING, IMPACT, EXPANSION = range(8)
CUSTOMER_PHASES = (ONBOARDING, IMPACT, EXPANSION)
N_PHASES = 8
NO_STAGE = N_PHASES  # the CRM phase of an account the CRM has no record of
EARLY_PHASES = (TRIGGER, AWARENESS, CONSIDERATION)  # phases a CRM mostly does not record
MAX_CONTACTS = 12  # buying-center slots per account
TREND_WEEKS = 8  # usage and engagement trends compare now with this many weeks ago
TICKET_WEEKS = 8  # support tickets count towards churn for this many weeks
# The response model's scalar coefficients, in the order the truth's params table lists
# them (its per-phase, per-channel and per-content-type terms follow, see response.py).
RESPONSE_COEFFICIENTS = ("response_base", "response_phase_fit", "response_role_fit",
                         "response_topic", "response_fatigue", "response_role_phase",
                         "fatigue_halflife_days")  # fmt: skip
# Profiles: named worlds as YAML overrides of the defaults (features/config/simulation/).
PROFILES = ("realistic", "legacy")
Profile = Literal["realistic", "legacy"]
PROFILE_DIR = Path(str(resources.files("features") / "config" / "simulation"))


class SimulationError(InvalidInputError):
    """The simulator cannot run with these arguments or this taxonomy."""


@dataclass(frozen=True)
class SimulationParams:
    """Knobs of the generative model. The defaults are the ``realistic`` profile, calibrated
    to published B2B figures (docs/realism.md); ``SimulationParams.profile("legacy")`` is the
    world before that calibration (issue 13), kept for comparison."""

    # Weekly hazard of advancing to the next phase, per phase (expansion: the deal closes
    # or stops and the account returns to impact).
    advance_hazard: tuple[float, ...] = (0.003, 0.085, 0.07, 0.05, 0.25, 0.08, 0.02, 0.15)
    # Weekly hazard of a lost deal (back to trigger), per phase.
    loss_hazard: tuple[float, ...] = (0.0, 0.04, 0.04, 0.11, 0.16, 0.0, 0.0, 0.0)
    # Organic touchpoints per week, per phase (before account engagement multipliers).
    touch_rate: tuple[float, ...] = (0.25, 1.0, 1.65, 2.2, 2.2, 1.2, 0.3, 0.8)
    # Share of accounts in each phase at the start.
    initial_phase_share: tuple[float, ...] = (0.72, 0.05, 0.03, 0.03, 0.01, 0.01, 0.13, 0.02)
    # The lever: log-hazard of advancing rises by this much per unit of "momentum" (fitting
    # responses, decaying by boost_decay each week).
    response_boost: float = 1.5
    boost_decay: float = 0.7
    expansion_close_share: float = 0.6
    rebuy_after_churn: float = 0.3  # trigger-advance multiplier for accounts that churned
    organic_noise: float = 0.1  # share of content touchpoints picked from the whole catalog
    # Buying centers: contacts_min + Binomial(contacts_extra, q) contacts per account, q =
    # contacts_size_share at 150 employees, +0.1 per log unit of size.
    contacts_min: int = 4
    contacts_extra: int = 8
    contacts_size_share: float = 0.45
    # Response model: logit = base + channel[ch] + content_type[type] + phase_fit * F
    # + role_fit * R * (1 - role_phase + role_phase * A[phase, role]) + topic *
    # topic_phase[phase] * interest - fatigue * (recency-weighted exposures of the contact
    # in the last fatigue_window_days; halflife 0: a plain count). A is how active the
    # contact's role is in the true phase (ROLE_WEIGHTS over their mean).
    response_base: float = -6.2
    response_phase_fit: float = 2.6
    adjacent_phase_fit: float = 0.35  # F for an item fitting a neighbouring phase
    response_role_fit: float = 0.6
    response_role_phase: float = 0.8
    response_topic: float = 0.5
    response_topic_phase: tuple[float, ...] = (1.4, 1.4, 1.0, 0.4, 0.1, 0.3, 0.8, 1.0)
    response_fatigue: float = 0.9
    fatigue_halflife_days: float = 3.0
    fatigue_window_days: int = 14
    # Logit offsets by exposure channel and content type (missing: 0).
    response_channel: tuple[tuple[str, float], ...] = (
        ("email", 0.0), ("newsletter", -0.3), ("social_media", -1.4), ("blog", -0.6),
        ("website", -0.6), ("webinar", 0.0), ("sales_call", 1.0), ("meeting", 1.0),
        ("customer_service", 0.6),
    )  # fmt: skip
    response_content_type: tuple[tuple[str, float], ...] = (
        ("blog_article", 0.2), ("research_report", 0.2), ("whitepaper", 0.2), ("video", 0.3),
        ("webinar", -0.2), ("reference", -0.5), ("live_demo", -0.4), ("pricing_offer", -0.3),
        ("onboarding_guide", 0.5), ("training", 0.3), ("knowledge_base", 0.3),
        ("upsell_offer", -0.6), ("cross_sell_offer", -0.6), ("sales_play", -0.3),
    )  # fmt: skip
    # Exposures: probability of a decision point per week (no stage or trigger, buying,
    # customer) by the phase the sender knows (exposure_phase_source "crm": the CRM's last
    # record; "true": the latent phase, which no real sender knows), times
    # exposure_activity_boost (capped at 1) in a week the account had touchpoints with a
    # known contact; and of a second exposure in the same week.
    exposure_rate: tuple[float, float, float] = (0.25, 0.6, 0.4)
    exposure_phase_source: Literal["crm", "true"] = "crm"
    exposure_activity_boost: float = 1.6
    second_exposure: float = 0.35
    policy_uniform_mix: float = 0.3
    # The channel an exposure goes out through: e-mail with this probability, else the
    # item's usual channel (the content table's ``channel``).
    exposure_email_share: float = 0.6
    # Anonymous touchpoints: at least this share of a channel's touchpoints has no known
    # contact (on top of each template's own share).
    anonymous_by_channel: tuple[tuple[str, float], ...] = (
        ("website", 0.9), ("blog", 0.9), ("search_ads", 0.95), ("social_ads", 0.9),
        ("print_media", 0.97), ("review_portal", 0.85), ("trade_portal", 0.85),
        ("web_shop", 0.6), ("social_media", 0.6), ("newsletter", 0.2),
    )  # fmt: skip
    # CRM recording: records come late (lognormal lag) and stage_error_rate of them name a
    # neighbouring phase; a change into trigger (from no record), awareness or consideration
    # is recorded only with crm_early_record_share (the CRM starts at the opportunity); other
    # changes are skipped with stage_skip_rate; stage_backdate_share of the records carry the
    # change's true date instead of the day they were entered (the sender still learns them
    # only when entered). Off by default: training reconstructs the logging policy's
    # eligible items from the stages at each exposure, which backdated records contradict.
    stage_lag_median_days: float = 14.0
    stage_lag_sigma: float = 0.6
    stage_error_rate: float = 0.1
    crm_early_record_share: float = 0.2
    stage_skip_rate: float = 0.1
    stage_backdate_share: float = 0.0
    # Contacts.
    contact_leave_weekly: float = 0.0025
    contact_replaced_share: float = 0.8
    # Churn: weekly hazard = sigmoid(base + at_renewal + drivers) in the last week of a
    # contract year (annual contracts end there), sigmoid(base + midterm_drivers * drivers)
    # in other weeks; drivers: the terms below, churn_size per log unit of employees / 200.
    churn_base: float = -9.6
    churn_at_renewal: float = 6.2
    churn_midterm_drivers: float = 0.35
    churn_size: float = -0.6
    churn_few_trainings: float = 0.9
    churn_per_ticket: float = 0.25
    churn_usage_decline: float = 1.5
    churn_engagement_decline: float = 1.0
    churn_champion_left: float = 1.5
    churn_frailty: float = 0.6
    churn_health: float = 0.8

    @classmethod
    def profile(cls, name: str) -> SimulationParams:
        """Returns the named profile: the defaults with the overrides of
        ``features/config/simulation/<name>.yaml``; raises SimulationError for an unknown
        name or override."""
        if name not in PROFILES:
            raise SimulationError(
                f"unknown simulation profile {name!r}; expected one of {PROFILES}"
            )
        raw = yaml.safe_load((PROFILE_DIR / f"{name}.yaml").read_text()) or {}
        return cls().with_overrides(raw.get("overrides") or {}, where=f"profile {name!r}")

    def with_overrides(
        self, overrides: dict[str, Any], *, where: str = "overrides"
    ) -> SimulationParams:
        """Returns these params with ``overrides`` (field name -> value; lists become
        tuples, name/value mappings tuples of pairs); raises SimulationError naming an
        unknown field."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise SimulationError(f"{where}: unknown simulation parameters {unknown}")
        return replace(self, **{k: _as_param(v) for k, v in overrides.items()})


def _as_param(value: Any) -> Any:
    """A YAML value as a field value: lists as tuples, mappings as tuples of pairs."""
    if isinstance(value, dict):
        return tuple((str(k), float(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(value)
    return value


# Channel / event type templates of organic touchpoints without content, per phase:
# (channel, event_type, weight, probability that no contact is known). The remaining share
# (content_share) are content touchpoints picked from the catalog.
CONTENT_SHARE = (0.45, 0.55, 0.6, 0.55, 0.5, 0.65, 0.55, 0.5)
TEMPLATES: tuple[tuple[tuple[str, str, float, float], ...], ...] = (
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
NOISE_CHANNELS = ("email", "newsletter", "social_media", "website")
# Event types of a content touchpoint, by content type (unknown types: view).
CONTENT_EVENTS: dict[str, dict[str, float]] = {
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
RESPONSE_EVENTS = ("click", "download", "register", "attend", "reply", "share", "comment",
                    "meeting", "demo_request", "trial_start")  # fmt: skip
# Which buying-center roles act in each phase (relative weights; unknown roles: 1).
ROLE_WEIGHTS: tuple[dict[str, float], ...] = (
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
USAGE_ROLES = {"end_user": 4, "it": 1.5, "service": 1}
TICKET_ROLES = {"service": 3, "it": 2, "end_user": 2}
CONTRACT_ROLES = {"economic_buyer": 3, "finance": 2}
CONTACT_ROLE_SHARE = {"economic_buyer": 0.12, "it": 0.22, "marketing": 0.15, "finance": 0.13,
                       "service": 0.13, "end_user": 0.25}  # fmt: skip
INDUSTRY_SPEED = {"software": 1.25, "professional_services": 1.1, "retail": 1.05,
                   "manufacturing": 0.9, "logistics": 0.95, "energy": 0.85,
                   "financial_services": 0.8, "healthcare": 0.75}  # fmt: skip
N_REPS = 50
FATIGUE_SLOTS = 8  # exposure times remembered per contact (more than fit in the window)
