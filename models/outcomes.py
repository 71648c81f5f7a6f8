"""Binary outcomes declared in configuration: what counts as positive, who is at risk, how
far ahead and when rows are scored.

An outcomes file (YAML; the shipped default is ``models/config/outcomes.yaml``, which
declares today's churn model) holds a list under ``outcomes:``. Each definition:

- ``name``: the model's name; it is registered as ``nba-<name>`` (``churn`` stays
  ``nba-churn``).
- ``positive``: one of ``{events: [TYPE, ...]}`` (an event of these types in the label
  window), ``{stage: PHASE}`` (the CRM records this phase in the window) or
  ``{lapse: [TYPE, ...]}`` (no event of these types in the whole window: the horizon is
  the lapse's length).
- ``population``: who is at risk at a scoring moment: ``customers`` (purchased and not
  churned since, the ``is_customer`` feature), ``open_leads`` (no purchase yet and, for a
  ``positive`` of events or a stage, not yet positive), ``active`` (an event in the last
  ``active_days`` days) or ``all``; written as the word, or as
  ``{kind: ..., active_days: N, exclude_after: [TYPE, ...]}`` where ``exclude_after`` drops
  entities that had one of those events before (they finished).
- ``horizon_days``: the label window ``[as_of, as_of + horizon_days)``.
- ``score_at``: a calendar grid (``monthly``, ``weekly``, ``daily``) or a moment anchored on
  each entity: ``at_entry`` (its creation, else first activity), ``{days_after_start: N}``,
  ``each_exposure`` or ``{each_event: [TYPE, ...]}``.
- ``peer``: the baseline the champion gate and the reports compare with:
  ``rfm_logistic`` (logistic regression on recency, frequency and monetary features; the
  default) or ``logistic`` (logistic regression on the model's own inputs).
- ``exclude_features`` (optional): pipeline features the model and its baselines leave out
  (e.g. calendar features where the dates are reconstructed).

Serving reads this module too (an outcome's definition is logged with its model as
``outcome.json``), so it lives in ``models``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.errors import InvalidInputError
from features.taxonomy import Taxonomy

DEFAULT_OUTCOMES_PATH = Path(str(resources.files("models") / "config" / "outcomes.yaml"))

Grid = Literal["monthly", "weekly", "daily"]
GRIDS: tuple[Grid, ...] = ("monthly", "weekly", "daily")
PopulationKind = Literal["customers", "open_leads", "active", "all"]
Peer = Literal["rfm_logistic", "logistic"]
_ANCHORS = ("at_entry", "each_exposure")


class OutcomeConfigError(InvalidInputError):
    """An outcomes file that cannot be used; the message names the file, key and value."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Positive(_Frozen):
    """What counts as positive in the label window (exactly one key is set)."""

    events: tuple[str, ...] | None = Field(default=None, min_length=1)
    stage: str | None = Field(default=None, min_length=1)
    lapse: tuple[str, ...] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> Positive:
        given = [k for k in ("events", "stage", "lapse") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"expected exactly one of events, stage or lapse, got {given or 'none'}"
            )
        return self

    @property
    def kind(self) -> Literal["events", "stage", "lapse"]:
        if self.events is not None:
            return "events"
        return "stage" if self.stage is not None else "lapse"


class Population(_Frozen):
    """Who is at risk at a scoring moment."""

    kind: PopulationKind
    active_days: int | None = Field(default=None, ge=1)
    exclude_after: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _word(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _days(self) -> Population:
        if (self.kind == "active") != (self.active_days is not None):
            raise ValueError("active_days is required with kind 'active' and only with it")
        return self


class ScoreAt(_Frozen):
    """When rows are scored: a calendar ``grid`` or one anchored moment per entity."""

    grid: Grid | None = None
    at_entry: bool = False
    each_exposure: bool = False
    days_after_start: int | None = Field(default=None, ge=0)
    each_event: tuple[str, ...] | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _word(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value in GRIDS:
                return {"grid": value}
            if value in _ANCHORS:
                return {value: True}
            raise ValueError(
                f"expected one of {', '.join((*GRIDS, *_ANCHORS))}, {{days_after_start: N}} "
                f"or {{each_event: [TYPE, ...]}}, got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> ScoreAt:
        given = [
            k
            for k in ("grid", "at_entry", "each_exposure", "days_after_start", "each_event")
            if getattr(self, k) not in (None, False)
        ]
        if len(given) != 1:
            raise ValueError(f"expected exactly one way to score, got {given or 'none'}")
        return self

    @property
    def anchored(self) -> bool:
        """Whether rows are one moment per entity (not a calendar grid)."""
        return self.grid is None

    def describe(self) -> str:
        if self.grid is not None:
            return f"{self.grid} grid"
        if self.at_entry:
            return "at entry"
        if self.each_exposure:
            return "at each exposure"
        if self.days_after_start is not None:
            return f"{self.days_after_start} days after start"
        return f"at each event of {list(self.each_event or ())}"


class Outcome(_Frozen):
    """One binary outcome's definition (see the module docstring)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,40}$")
    positive: Positive
    population: Population
    horizon_days: int = Field(ge=1)
    score_at: ScoreAt = ScoreAt(grid="monthly")
    peer: Peer = "rfm_logistic"
    exclude_features: tuple[str, ...] = ()
    description: str = ""

    @property
    def registered_name(self) -> str:
        """The MLflow registered model (and experiment) name: ``nba-<name>``."""
        return f"nba-{self.name}"

    def event_types(self) -> set[str]:
        """Every event type the definition names."""
        named = [
            *(self.positive.events or ()),
            *(self.positive.lapse or ()),
            *self.population.exclude_after,
            *(self.score_at.each_event or ()),
        ]
        return set(named)

    def to_json(self) -> str:
        """The definition as JSON (the ``outcome.json`` artifact of the model's run)."""
        return json.dumps(self.model_dump(mode="json", exclude_defaults=False), indent=2)


class OutcomesFile(_Frozen):
    outcomes: tuple[Outcome, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> OutcomesFile:
        names = [o.name for o in self.outcomes]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"outcome names must be distinct, {twice} appear more than once")
        return self


def load_outcomes(
    path: Path | str | None = None, *, taxonomy: Taxonomy | None = None
) -> list[Outcome]:
    """The outcomes declared in ``path`` (``None``: the shipped default, churn only).

    With ``taxonomy``, event types and stages are checked against it. Raises
    :class:`OutcomeConfigError` naming the file, the key and what was expected.
    """
    file = Path(path) if path is not None else DEFAULT_OUTCOMES_PATH
    try:
        raw = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise OutcomeConfigError(f"cannot read outcomes file {file}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise OutcomeConfigError(f"outcomes file {file} is not valid YAML: {first}") from exc
    if not isinstance(raw, dict):
        raise OutcomeConfigError(
            f"outcomes file {file} must hold a mapping with the key 'outcomes' (a list of "
            f"definitions), got {type(raw).__name__}"
        )
    try:
        outcomes = list(OutcomesFile.model_validate(raw).outcomes)
    except ValidationError as exc:
        raise OutcomeConfigError(f"outcomes file {file}: {_describe(exc, raw)}") from exc
    if taxonomy is not None:
        for i, outcome in enumerate(outcomes):
            check_outcome(outcome, taxonomy, where=f"outcomes file {file} key outcomes.{i}")
    return outcomes


def check_outcome(outcome: Outcome, taxonomy: Taxonomy, *, where: str) -> None:
    """Raise :class:`OutcomeConfigError` when ``outcome`` names an event type or a stage
    the taxonomy does not have."""
    unknown = sorted(outcome.event_types() - set(taxonomy.event_type_names))
    if unknown:
        raise OutcomeConfigError(
            f"{where} ({outcome.name}): event types {unknown} are not in the taxonomy; "
            f"expected some of {taxonomy.event_type_names}"
        )
    stage = outcome.positive.stage
    if stage is not None and stage not in taxonomy.phases:
        raise OutcomeConfigError(
            f"{where} ({outcome.name}).positive.stage: {stage!r} is not a phase of the "
            f"taxonomy; expected one of {taxonomy.phases}"
        )


def select_outcomes(outcomes: Sequence[Outcome], names: Sequence[str]) -> list[Outcome]:
    """The outcomes called ``names``, in that order; raises naming the unknown one."""
    by_name = {o.name: o for o in outcomes}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise OutcomeConfigError(
            f"outcome {missing[0]!r} is not declared; expected one of {sorted(by_name)}"
        )
    return [by_name[n] for n in names]


def _describe(exc: ValidationError, raw: dict[str, Any]) -> str:
    """The validation errors as ``key outcomes.0.positive: problem (got value)`` parts,
    naming the outcome where it has a name."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "(top level)"
        named = _outcome_name(raw, loc)
        where = f"key {key}{f' ({named})' if named else ''}"
        if err["type"] == "extra_forbidden":
            parts.append(f"{where}: unknown key")
        elif err["type"] == "missing":
            parts.append(f"{where}: required")
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            parts.append(f"{where}: {msg} (got {err.get('input')!r})")
    return "; ".join(parts[:3])


def _outcome_name(raw: dict[str, Any], loc: list[str]) -> str | None:
    items = raw.get("outcomes")
    if len(loc) < 2 or loc[0] != "outcomes" or not isinstance(items, list):
        return None
    if not loc[1].isdigit() or int(loc[1]) >= len(items):
        return None
    item = items[int(loc[1])]
    return str(item["name"]) if isinstance(item, dict) and "name" in item else None
