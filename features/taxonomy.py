"""The journey taxonomy: phase models, channels, event types, roles and the content catalog.

Taxonomies are data. The default ships as ``features/config/taxonomy.yaml``; a user replaces
it with ``--taxonomy FILE``. Loading validates the file into typed objects and raises
:class:`TaxonomyError` naming the offending entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.errors import InvalidInputError

DEFAULT_TAXONOMY_PATH = Path(str(resources.files("features") / "config" / "taxonomy.yaml"))


class TaxonomyError(InvalidInputError):
    """A taxonomy file that cannot be used; the message names the file and the entry."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Phase(_Frozen):
    name: str
    label: str
    description: str = ""
    # For phases of a non-default model: the default-model phases this phase covers.
    default_phases: tuple[str, ...] = ()


class PhaseModel(_Frozen):
    description: str = ""
    phases: tuple[Phase, ...] = Field(min_length=2)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.phases]


class Channel(_Frozen):
    name: str
    label: str
    kind: Literal["online", "offline"]


class EventType(_Frozen):
    name: str
    label: str
    kind: Literal["engagement", "lifecycle", "service"]


class Named(_Frozen):
    name: str
    label: str


class ContentItem(_Frozen):
    content_id: str
    title: str
    content_type: str
    phases: tuple[str, ...] = Field(min_length=1)
    roles: tuple[str, ...] = Field(min_length=1)
    topic: str
    channel: str
    value: float = Field(gt=0)


class Taxonomy(_Frozen):
    """A validated taxonomy. Names are unique within each list; all references resolve."""

    version: int = 1
    default_phase_model: str
    phase_models: dict[str, PhaseModel]
    channels: tuple[Channel, ...]
    event_types: tuple[EventType, ...]
    roles: tuple[Named, ...]
    content_types: tuple[Named, ...]
    topics: tuple[Named, ...]
    industries: tuple[str, ...]
    regions: tuple[str, ...]
    content: tuple[ContentItem, ...]

    @model_validator(mode="after")
    def _check_references(self) -> Taxonomy:
        if self.default_phase_model not in self.phase_models:
            raise ValueError(
                f"default_phase_model {self.default_phase_model!r} is not one of "
                f"{sorted(self.phase_models)}"
            )
        default = set(self.phase_models[self.default_phase_model].names)
        problems = [
            *self._duplicate_names(),
            *self._uncovered_phases(default),
            *self._unknown_content_values(default),
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _duplicate_names(self) -> Iterator[str]:
        """A problem for each vocabulary that names something twice."""
        for key, values in {
            "phases": self.phase_models[self.default_phase_model].names,
            "channels": [c.name for c in self.channels],
            "event_types": [e.name for e in self.event_types],
            "roles": [r.name for r in self.roles],
            "content_types": [c.name for c in self.content_types],
            "topics": [t.name for t in self.topics],
            "content": [c.content_id for c in self.content],
        }.items():
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                yield f"{key}: duplicate names {dupes}"

    def _uncovered_phases(self, default: set[str]) -> Iterator[str]:
        """A problem for each other phase model that maps onto unknown default phases or
        leaves one uncovered."""
        for model_name, model in self.phase_models.items():
            if model_name == self.default_phase_model:
                continue
            covered: set[str] = set()
            for phase in model.phases:
                unknown = set(phase.default_phases) - default
                if not phase.default_phases or unknown:
                    yield (
                        f"phase_models.{model_name}.{phase.name}: default_phases must be a "
                        f"non-empty list of {sorted(default)}, got {list(phase.default_phases)}"
                    )
                covered |= set(phase.default_phases)
            if default - covered:
                yield (
                    f"phase_models.{model_name}: default phases {sorted(default - covered)} "
                    "are not covered by any phase"
                )

    def _unknown_content_values(self, default: set[str]) -> Iterator[str]:
        """A problem for each content item naming a type, phase, role, topic or channel the
        taxonomy does not have."""
        allowed = {
            "content_type": {c.name for c in self.content_types},
            "phases": default,
            "roles": {r.name for r in self.roles},
            "topic": {t.name for t in self.topics},
            "channel": {c.name for c in self.channels},
        }
        for item in self.content:
            for field, ok in allowed.items():
                raw = getattr(item, field)
                values = list(raw) if isinstance(raw, tuple) else [raw]
                bad = [v for v in values if v not in ok]
                if bad:
                    yield f"content {item.content_id}: {field} {bad} not in {sorted(ok)}"

    # Convenience views used across layers.
    @cached_property
    def phases(self) -> list[str]:
        """The default model's phases, in journey order."""
        return self.phase_models[self.default_phase_model].names

    @cached_property
    def channel_names(self) -> list[str]:
        return [c.name for c in self.channels]

    @cached_property
    def event_type_names(self) -> list[str]:
        return [e.name for e in self.event_types]

    @cached_property
    def role_names(self) -> list[str]:
        return [r.name for r in self.roles]

    @cached_property
    def content_type_names(self) -> list[str]:
        return [c.name for c in self.content_types]

    @cached_property
    def topic_names(self) -> list[str]:
        return [t.name for t in self.topics]

    def vocabulary(self, name: str) -> list[str]:
        """Allowed values of a categorical column: phases, channels, event_types, roles,
        content_types, topics, industries or regions."""
        lookup: dict[str, list[str]] = {
            "phases": self.phases,
            "channels": self.channel_names,
            "event_types": self.event_type_names,
            "roles": self.role_names,
            "content_types": self.content_type_names,
            "topics": self.topic_names,
            "industries": list(self.industries),
            "regions": list(self.regions),
        }
        if name not in lookup:
            raise KeyError(f"unknown vocabulary {name!r}; expected one of {sorted(lookup)}")
        return lookup[name]

    def to_default_phase(self, phase: str, model: str) -> str:
        """The default-model phase a phase of ``model`` is recorded as (its first one)."""
        if model == self.default_phase_model:
            if phase not in self.phases:
                raise TaxonomyError(f"phase {phase!r} is not in {model}: {self.phases}")
            return phase
        for p in self._model(model).phases:
            if p.name == phase:
                return p.default_phases[0]
        raise TaxonomyError(f"phase {phase!r} is not in {model}: {self._model(model).names}")

    def from_default_phase(self, phase: str, model: str) -> str:
        """The phase of ``model`` that shows a default-model phase (the last one covering it,
        so an in-market account is never shown as out of market)."""
        if model == self.default_phase_model:
            return phase
        matches = [p.name for p in self._model(model).phases if phase in p.default_phases]
        if not matches:
            raise TaxonomyError(f"default phase {phase!r} is not mapped by {model}")
        return matches[-1]

    def _model(self, model: str) -> PhaseModel:
        if model not in self.phase_models:
            raise TaxonomyError(
                f"unknown phase model {model!r}; expected one of {sorted(self.phase_models)}"
            )
        return self.phase_models[model]

    def content_frame(self) -> pd.DataFrame:
        """The content catalog as a ``content`` table (see ``features.schema``)."""
        rows = [
            {
                "content_id": c.content_id,
                "content_type": c.content_type,
                "phases": list(c.phases),
                "roles": list(c.roles),
                "topic": c.topic,
                "value": c.value,
                "title": c.title,
                "channel": c.channel,
            }
            for c in self.content
        ]
        return pd.DataFrame(rows)


def load_taxonomy(path: Path | str | None = None) -> Taxonomy:
    """Load and validate a taxonomy YAML; ``None`` loads the shipped default."""
    file = Path(path) if path is not None else DEFAULT_TAXONOMY_PATH
    try:
        raw = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise TaxonomyError(f"cannot read taxonomy file {file}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"taxonomy file {file} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise TaxonomyError(f"taxonomy file {file} must hold a mapping at the top level")
    try:
        return Taxonomy.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise TaxonomyError(f"taxonomy file {file} is invalid: {details}") from exc
