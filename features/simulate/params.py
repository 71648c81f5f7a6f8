"""The parameters of the simulated world: the knobs of the generative model
(:class:`SimulationParams`) and the fixed tables behind them (touchpoint templates per
phase, event types per content type, role weights per phase, industry speeds)."""

from __future__ import annotations

from dataclasses import dataclass

from features.errors import InvalidInputError
from features.timestamps import NS_PER_DAY

WEEK_NS = 7 * NS_PER_DAY
SECOND_NS = 10**9
DAY_S = 86_400  # times within a day are drawn in whole seconds

# The semantic slots of the default 8-phase model, by position.
TRIGGER, AWARENESS, CONSIDERATION, SELECTION, PURCHASE, ONBOARDING, IMPACT, EXPANSION = range(8)
CUSTOMER_PHASES = (ONBOARDING, IMPACT, EXPANSION)
N_PHASES = 8
MAX_CONTACTS = 8  # buying-center slots per account
TREND_WEEKS = 8  # usage and engagement trends compare now with this many weeks ago
TICKET_WEEKS = 8  # support tickets count towards churn for this many weeks
# The response model's coefficients, in the order the truth's params table lists them.
RESPONSE_COEFFICIENTS = ("response_base", "response_phase_fit", "response_role_fit",
                         "response_topic", "response_fatigue")  # fmt: skip


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
