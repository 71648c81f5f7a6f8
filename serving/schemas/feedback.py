"""``POST /v1/feedback``: what happened to a served recommendation."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from serving.schemas.common import (
    ID_DOC,
    Id,
    Out,
    Outcome,
    Text,
)


class FeedbackRequest(BaseModel):
    """What happened to a served recommendation."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "recommendation_id": "5b0e7d0d2c0b4d3e8e51d6c1b0a9f7e2",
                    "outcome": "accepted",
                    "note": "demo booked for Friday",
                }
            ]
        },
    )

    recommendation_id: Id = Field(description=f"From a recommendations answer. {ID_DOC}")
    outcome: Outcome
    note: Text | None = Field(
        default=None, max_length=2000, description="Free text (no NUL or lone surrogates)."
    )


class FeedbackResponse(Out):
    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "feedback_id": 12,
                    "recommendation_id": "5b0e7d0d2c0b4d3e8e51d6c1b0a9f7e2",
                    "outcome": "accepted",
                }
            ]
        },
    )

    feedback_id: int
    recommendation_id: str
    outcome: Outcome
