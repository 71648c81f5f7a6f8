"""``GET /ready``: whether the service can answer, and what to run when it cannot."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from serving.schemas.common import (
    Out,
)


class ReadyResponse(Out):
    status: Literal["ready", "not ready"]
    store: bool
    models: bool
    model_versions: dict[str, str]
    missing: list[str]
    last_reload_error: str | None
    parts_missing: dict[str, str] = Field(
        default_factory=dict,
        description="Answer part (phase, risk, next_actions) -> why no model of it is "
        "served and what to run; ready all the same while at least one model is loaded.",
    )
    tracking_uri: str = Field(
        default="", description="The MLflow tracking and registry store the models come from."
    )
