"""The arbitration policy: :class:`ArbitrationConfig`, loading and validating its YAML, and
the churn bands it defines (:func:`churn_band`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.arbitration.errors import ArbitrationConfigError, ArbitrationError

DEFAULT_ARBITRATION_PATH = Path(str(resources.files("models") / "config" / "arbitration.yaml"))

ChurnBand = Literal["low", "medium", "high"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PhaseFitWeights(_Frozen):
    """Weight of a phase for an item: it fits the phase, a neighbouring phase, or neither."""

    exact: float = Field(default=1.0, ge=0)
    adjacent: float = Field(default=0.35, ge=0)
    none: float = Field(default=0.0, ge=0)


class RoleFitWeights(_Frozen):
    """Weight of a contact for an item: the item lists the contact's role or not."""

    match: float = Field(default=1.0, ge=0)
    no_match: float = Field(default=0.25, ge=0)


class Weights(_Frozen):
    phase_fit: PhaseFitWeights = PhaseFitWeights()
    role_fit: RoleFitWeights = RoleFitWeights()


class Eligibility(_Frozen):
    consumed_recently_days: float = Field(default=30.0, ge=0)
    dismissed_recently_days: float = Field(default=90.0, ge=0)
    require_phase_fit: bool = True
    min_phase_fit: float = Field(default=0.15, ge=0)
    require_role_fit: bool = True


class ContactPolicy(_Frozen):
    max_actions_per_account_per_week: int = Field(default=6, ge=0)
    max_actions_per_contact_per_week: int = Field(default=2, ge=0)
    distinct_content: bool = True


class ChurnBands(_Frozen):
    """Churn risk thresholds: low below ``medium``, medium below ``high``, high from it on."""

    medium: float = Field(default=0.15, gt=0, lt=1)
    high: float = Field(default=0.4, gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> ChurnBands:
        if not self.medium < self.high:
            raise ValueError(
                f"medium ({self.medium}) must be below high ({self.high}); expected 0 < medium "
                "< high <= 1"
            )
        return self


class ChurnLever(_Frozen):
    retention_content_types: tuple[str, ...] = (
        "service_play",
        "training",
        "success_story",
        "knowledge_base",
        "onboarding_guide",
    )
    lever_strength: float = Field(default=2.0, ge=0)
    bands: ChurnBands = ChurnBands()


class ArbitrationConfig(_Frozen):
    """A validated arbitration policy (see ``models/config/arbitration.yaml``)."""

    version: int = 1
    policy_name: str = Field(default="ev-greedy-epsilon-v1", min_length=1)
    default_k: int = Field(default=3, ge=1)
    exploration_rate: float = Field(default=0.02, ge=0, le=1)
    weights: Weights = Weights()
    eligibility: Eligibility = Eligibility()
    contact_policy: ContactPolicy = ContactPolicy()
    churn_lever: ChurnLever = ChurnLever()
    held_back_per_rule: int = Field(default=3, ge=0)


def load_arbitration_config(path: Path | str | None = None) -> ArbitrationConfig:
    """Load and validate an arbitration config YAML; ``None`` loads the shipped default.

    Keys left out take the defaults; an unknown key, a wrong type or a value out of range
    raises :class:`ArbitrationConfigError` naming the file, the dotted key and the value.
    """
    file = Path(path) if path is not None else DEFAULT_ARBITRATION_PATH
    try:
        raw = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise ArbitrationConfigError(
            f"cannot read arbitration config {file}: {exc.strerror}"
        ) from exc
    except yaml.YAMLError as exc:
        raise ArbitrationConfigError(f"arbitration config {file} is not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ArbitrationConfigError(
            f"arbitration config {file} must hold a mapping at the top level, got "
            f"{type(raw).__name__}"
        )
    try:
        return ArbitrationConfig.model_validate(raw)
    except ValidationError as exc:
        raise ArbitrationConfigError(
            f"arbitration config {file} is invalid: {_describe(exc)}"
        ) from exc


def _describe(exc: ValidationError) -> str:
    """The validation errors as one line of ``dotted.key: problem (got value)`` parts."""
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parts.append(f"{key}: unknown key")
        else:
            parts.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)


def churn_band(p: float, config: ArbitrationConfig) -> ChurnBand:
    """``"low"`` below ``bands.medium``, ``"medium"`` below ``bands.high``, else ``"high"``.
    Raises :class:`ArbitrationError` for a risk outside [0, 1] or NaN."""
    risk = float(p)
    if not 0.0 <= risk <= 1.0:
        raise ArbitrationError(f"churn risk {p!r} is not a probability; expected 0 <= p <= 1")
    bands = config.churn_lever.bands
    if risk < bands.medium:
        return "low"
    if risk < bands.high:
        return "medium"
    return "high"
