"""``GET /v1/reps/{rep_id}/actions``: a rep's worklist."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field

from models.contract import CHURN, NEXT_CONTENT, PHASE
from serving.schemas.common import (
    ChurnBandName,
    Out,
)
from serving.schemas.recommendations import ActionOut, WhyNowOut


class WorklistItem(Out):
    """One of the rep's accounts with its best next action."""

    account_id: str
    account_name: str | None = Field(
        default=None, description="The company's name (null: show the id)."
    )
    phase: str | None = Field(description="Null when no phase model is served.")
    phase_probability: float | None
    churn_risk: float | None
    churn_band: ChurnBandName | None
    outcomes: dict[str, float] = Field(default_factory=dict)
    why_now: list[WhyNowOut] = Field(
        default_factory=list, description="What makes this the moment to act (see recommendations)."
    )
    action: ActionOut | None = Field(description="Null when no action passes the rules now.")


class WorklistResponse(Out):
    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "rep_id": "R01",
                    "as_of": "2025-12-01T09:30:00Z",
                    "accounts": 42,
                    "items": [
                        {
                            "account_id": "A00017",
                            "account_name": "Hoffmann Logistik GmbH",
                            "phase": "selection",
                            "phase_probability": 0.64,
                            "churn_risk": 0.05,
                            "churn_band": "low",
                            "action": None,
                        }
                    ],
                    "model_versions": {PHASE: "3", CHURN: "2", NEXT_CONTENT: "4"},
                }
            ]
        },
    )

    rep_id: str
    as_of: datetime
    accounts: int = Field(description="Accounts the rep owns (items holds the best `limit`).")
    items: list[WorklistItem]
    model_versions: dict[str, str]
    missing: dict[str, str] = Field(
        default_factory=dict,
        description="Answer part (phase, risk, next_actions) -> why it is missing.",
    )
    horizon_days: dict[str, int] = Field(
        default_factory=dict, description="Outcome name -> its horizon in days."
    )
    value_unit: str = Field(
        default="points", description="The unit of expected values (a currency code, or points)."
    )
