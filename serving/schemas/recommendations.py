"""``GET /v1/accounts/{id}/recommendations``: the answer, its actions and reasons."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.contract import CHURN, NEXT_CONTENT, PHASE
from models.explain import Reason, WhyNow
from serving.schemas.common import (
    ID_DOC,
    ChurnBandName,
    Id,
    Out,
    json_value,
)


class ReasonOut(Out):
    """One reason code: a sentence for people and the feature behind it."""

    text: str = Field(examples=["3 whitepaper downloads in the last 30 days"])
    feature: str = Field(examples=["n_download_30d"])
    value: float | str | bool | None = Field(description="The feature's value for this account.")
    contribution: float = Field(description="Contribution to the model's raw score.")

    @classmethod
    def of(cls, reason: Reason) -> ReasonOut:
        return cls(
            text=reason.text,
            feature=reason.feature,
            value=json_value(reason.value),
            contribution=float(reason.contribution),
        )


class ActionOut(Out):
    """A recommended next action (a content item or a sales/service play)."""

    recommendation_id: str = Field(description="Send it back with POST /v1/feedback.")
    rank: int
    content_id: str
    title: str
    content_type: str = Field(examples=["whitepaper", "sales_play", "service_play"])
    channel: str
    contact_id: str | None = Field(
        description="Who to address; null for an account-level action (a cold start, or an "
        "account without contacts)."
    )
    role: str | None = None
    contact_name: str | None = Field(
        default=None,
        description="The contact's name (null when the store holds none: show the contact id).",
    )
    expected_value: float = Field(
        description="P(response) x value x fit x churn lever, in the answer's value_unit."
    )
    p_response: float
    propensity: float = Field(description="Probability the serving policy gave this action.")
    explored: bool = Field(description="Drawn at random by exploration.")
    kind: Literal["decision", "impression"] = Field(
        description="decision: first served to this contact in the contact policy's week (it "
        "uses a cap slot and enters the off-policy log); impression: served as a decision "
        "earlier in the week and shown again (no slot; feedback on it counts for that "
        "decision)."
    )
    reasons: list[ReasonOut]


class HeldBackOut(Out):
    """'Why not?': an eligible-looking action that was held back, and the rule that held it."""

    content_id: str
    title: str
    content_type: str
    contact_id: str | None
    role: str | None
    rule: str = Field(examples=["contact cap", "dismissed recently", "wrong phase", "wrong role"])
    expected_value: float


class RecommendationsRequest(BaseModel):
    """The body of ``POST /v1/recommendations`` (the same as the GET's query)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"account_id": "A00017", "k": 3, "contact_id": None, "channel": "email"}]
        },
    )

    account_id: Id = Field(description=f"The account's id. {ID_DOC}")
    k: int = Field(default=5, ge=1, le=50, description="Actions to return.")
    contact_id: Id | None = Field(
        default=None, description=f"Only actions for this contact. {ID_DOC}"
    )
    role: Id | None = Field(default=None, description="Only actions for contacts in this role.")
    channel: Id | None = Field(default=None, description="Only actions on this channel.")


class WhyNowOut(Out):
    """What about the account's recent history makes this the moment to act."""

    signal: str = Field(
        examples=["activity_up"],
        description="A stable code: churn_risk_high, usage_down, tickets_up, ahead_of_crm, "
        "new_crm_phase, activity_up, engagement_up or gone_quiet.",
    )
    text: str = Field(
        examples=[
            "activity picked up: 12 touchpoints in the last 30 days against 4 in the 30 before"
        ]
    )

    @classmethod
    def of(cls, signal: WhyNow) -> WhyNowOut:
        return cls(signal=signal.signal, text=signal.text)


class ChangesOut(Out):
    """What happened to the account since actions were last recommended for it."""

    since: datetime = Field(description="When an action was last recommended (decided).")
    touchpoints: int = Field(description="The account's touchpoints after that.")
    text: str = Field(
        examples=["2 downloads and 1 webinar attendance"],
        description='The touchpoints by kind, for people ("nothing new" when none).',
    )


class RecommendationsResponse(Out):
    """Phase, churn risk, the top-k next actions with their reasons, and what was held back."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "request_id": "9f1c0c6a4c8e4a3f9d1b6f0e2a7c5d11",
                    "account_id": "A00017",
                    "account_name": "Hoffmann Logistik GmbH",
                    "as_of": "2025-12-01T09:30:00Z",
                    "known": True,
                    "cold_start": False,
                    "phase": "consideration",
                    "phase_probabilities": {"awareness": 0.12, "consideration": 0.71},
                    "phase_reasons": [
                        {
                            "text": "3 whitepaper downloads in the last 30 days",
                            "feature": "n_ctype_whitepaper_30d",
                            "value": 3,
                            "contribution": 0.84,
                        }
                    ],
                    "churn_risk": 0.08,
                    "churn_band": "low",
                    "churn_reasons": [],
                    "outcomes": {"churn": 0.08},
                    "horizon_days": {"churn": 90},
                    "value_unit": "EUR",
                    "since_last_visit": {
                        "since": "2025-11-24T08:10:00Z",
                        "touchpoints": 3,
                        "text": "2 downloads and 1 webinar attendance",
                    },
                    "why_now": [
                        {
                            "signal": "ahead_of_crm",
                            "text": "its behaviour reads as Consideration; the CRM still says "
                            "Awareness (recorded 64 days ago)",
                        }
                    ],
                    "actions": [
                        {
                            "recommendation_id": "5b0e7d0d2c0b4d3e8e51d6c1b0a9f7e2",
                            "rank": 1,
                            "content_id": "C040",
                            "title": "Live demo",
                            "content_type": "live_demo",
                            "channel": "webinar",
                            "contact_id": "P00017-2",
                            "role": "it",
                            "contact_name": "Jana Weber",
                            "expected_value": 0.42,
                            "p_response": 0.21,
                            "propensity": 0.98,
                            "explored": False,
                            "reasons": [],
                        }
                    ],
                    "held_back": [
                        {
                            "content_id": "C027",
                            "title": "Pricing and offer",
                            "content_type": "pricing",
                            "contact_id": "P00017-1",
                            "role": "economic_buyer",
                            "rule": "wrong phase",
                            "expected_value": 0.1,
                        }
                    ],
                    "policy": "ev-greedy-epsilon-v1",
                    "explored": False,
                    "model_versions": {PHASE: "3", CHURN: "2", NEXT_CONTENT: "4"},
                }
            ]
        },
    )

    request_id: str
    account_id: str
    account_name: str | None = Field(
        default=None,
        description="The company's name (null when the store holds none: show the id).",
    )
    as_of: datetime
    known: bool = Field(
        description="False for an account the store has never seen (a mistyped id, or one "
        "not loaded yet): nothing about it is stored, and it is answered as a cold start."
    )
    cold_start: bool = Field(
        description="No history at this time (an unknown account, or one without activity "
        "yet): the phases of an account with no history (the early ones) and popular "
        "content that fits the most likely of them."
    )
    phase: str | None = Field(
        description="The most likely phase; null when no phase model is served (see missing)."
    )
    phase_probabilities: dict[str, float] = Field(
        description="Per phase; empty when no phase model is served."
    )
    phase_reasons: list[ReasonOut]
    churn_risk: float | None = Field(
        description="Calibrated; null for a cold start or when no churn model is served."
    )
    churn_band: ChurnBandName | None
    churn_reasons: list[ReasonOut]
    outcomes: dict[str, float] = Field(
        default_factory=dict,
        description="Outcome name -> calibrated probability, one per binary outcome model "
        "served (churn included; empty for a cold start).",
    )
    horizon_days: dict[str, int] = Field(
        default_factory=dict,
        description="Outcome name -> the horizon its probability is for, in days (the "
        "served model's declared horizon: churn within 90 days).",
    )
    value_unit: str = Field(
        default="points",
        description="The unit of expected values: the currency code NBA_CURRENCY sets "
        "(e.g. EUR), else points (the catalog's relative value).",
    )
    since_last_visit: ChangesOut | None = Field(
        default=None,
        description="The account's touchpoints since actions were last recommended for it; "
        "null when none ever were (or the account is unknown).",
    )
    why_now: list[WhyNowOut] = Field(
        default_factory=list,
        description="What changed that makes this the moment to act, most urgent first (at "
        "most 3; empty when nothing stands out, and for a cold start).",
    )
    actions: list[ActionOut] = Field(
        description="Empty when no next-content model is served (see missing)."
    )
    held_back: list[HeldBackOut]
    policy: str
    explored: bool
    model_versions: dict[str, str]
    missing: dict[str, str] = Field(
        default_factory=dict,
        description="Answer part (phase, risk, next_actions) -> why it is missing: no model "
        "of it is served. Empty when every part is there.",
    )
