"""Custom attributes: extra account, touchpoint and exposure columns that become features.

A customer's export has columns the data contract does not name: an account's plan, contract
or segment, a touchpoint's lead type or discount, an exposure's placement. An
:class:`AttributeDeclaration` names them and says whether each is a ``number`` or a
``category``; validation keeps declared columns (it drops other extra columns) and the
feature pipeline turns them into features (``features.pipeline.attributes``).

The declaration comes from a mapping's ``attributes`` section, or, for canonical data
directories without a mapping, from a small YAML file of the same shape given with
``--attributes`` (:func:`load_attributes`); :func:`resolve_attributes` picks one.

    attributes:
      accounts: {plan: category, seats: number}
      touchpoints: {channel_detail: category, discount: number}
      exposures: {placement: category}

:func:`attribute_value` checks one value of a declared attribute (the service's ingest).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.errors import InvalidInputError
from features.schema import TABLES

AttributeKind = Literal["number", "category"]
AttributeTable = Literal["accounts", "touchpoints", "exposures"]
ATTRIBUTE_KINDS: tuple[str, ...] = get_args(AttributeKind)
ATTRIBUTE_TABLES: tuple[str, ...] = get_args(AttributeTable)

# Attribute names become parts of feature names and store keys: snake_case only.
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class InvalidAttributeError(InvalidInputError):
    """An attribute declaration or value that cannot be used; the message says where."""


class AttributeDeclaration(BaseModel):
    """Declared custom attributes: table -> {column name: kind} (see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    tables: dict[str, dict[str, str]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_sections(cls, raw: object) -> object:
        # Written as {accounts: {...}, touchpoints: {...}}; held as tables={...}.
        if isinstance(raw, Mapping) and "tables" not in raw:
            return {"tables": dict(raw)}
        return raw

    @model_validator(mode="after")
    def _check(self) -> AttributeDeclaration:
        problems = list(self._problems())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _problems(self) -> Iterator[str]:
        for table, columns in self.tables.items():
            if table not in ATTRIBUTE_TABLES:
                yield (
                    f"attributes.{table}: unknown table; attributes can be declared on "
                    f"{', '.join(ATTRIBUTE_TABLES)}"
                )
                continue
            if not isinstance(columns, Mapping):
                yield f"attributes.{table}: expected a mapping of column name to kind"
                continue
            for name, kind in columns.items():
                where = f"attributes.{table}.{name}"
                if kind not in ATTRIBUTE_KINDS:
                    yield f"{where}: unknown kind {kind!r}; expected one of {list(ATTRIBUTE_KINDS)}"
                if name in TABLES[table].names:
                    yield (
                        f"{where}: clashes with the canonical column {table}.{name}; "
                        "rename the attribute"
                    )
                elif not _NAME.match(str(name)):
                    yield (
                        f"{where}: not a valid attribute name; expected snake_case "
                        "(a-z, 0-9, _; starting with a letter; at most 40 characters)"
                    )

    def of(self, table: str) -> dict[str, AttributeKind]:
        """The declared attributes of ``table`` (empty if none), name -> kind."""
        return dict(self.tables.get(table, {}))  # type: ignore[arg-type]

    def __bool__(self) -> bool:
        return any(self.tables.values())


NO_ATTRIBUTES = AttributeDeclaration()


def load_attributes(path: Path | str) -> AttributeDeclaration:
    """The declaration in a YAML file (``{accounts: {plan: category}, ...}``, optionally
    under a top-level ``attributes:`` key); raises :class:`InvalidAttributeError` naming
    the file and the entry."""
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise InvalidAttributeError(f"cannot read attributes file {file}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise InvalidAttributeError(f"attributes file {file} is not valid YAML: {exc}") from exc
    if isinstance(raw, dict) and set(raw) == {"attributes"}:
        raw = raw["attributes"]
    if not isinstance(raw, dict):
        raise InvalidAttributeError(
            f"attributes file {file} must hold a mapping of table -> {{column: kind}}"
        )
    try:
        return AttributeDeclaration.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in exc.errors())
        raise InvalidAttributeError(f"attributes file {file} is invalid: {details}") from exc


def resolve_attributes(
    mapping_attributes: AttributeDeclaration, attributes_file: Path | None
) -> AttributeDeclaration:
    """The declaration to use: the mapping's ``attributes`` or the ``--attributes`` file
    (``NBA_ATTRIBUTES``); raises :class:`InvalidAttributeError` when both declare attributes
    and differ (one place to look)."""
    if attributes_file is None:
        return mapping_attributes
    from_file = load_attributes(attributes_file)
    if mapping_attributes and from_file != mapping_attributes:
        raise InvalidAttributeError(
            f"attributes are declared both in the mapping and in {attributes_file}, "
            "differently; declare them in one place"
        )
    return from_file


def attribute_value(kind: str, value: object) -> float | str | None:
    """``value`` as a declared attribute of ``kind`` holds it: a finite float for
    ``number`` (bools are not numbers), a non-empty string for ``category`` (numbers are
    written as text), ``None`` for a missing value; raises :class:`InvalidAttributeError` otherwise
    (the message names the expected type, the caller adds where)."""
    if value is None:
        return None
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidAttributeError(f"{value!r} is not a number")
        if not math.isfinite(value):
            raise InvalidAttributeError(f"{value!r} is not a finite number")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidAttributeError(f"{value!r} is not a category (a string)")
    text = str(value).strip()
    return text or None


# Levels kept per categorical attribute (the rest read as missing), and how many of them get
# their own count feature: bounded, so a free-text column cannot add thousands of features.
MAX_LEVELS = 30
MAX_COUNTED_LEVELS = 10


@dataclass(frozen=True)
class FittedAttributes:
    """A declaration with the levels of its categorical attributes fixed at training
    (``"table.name"`` -> levels, most frequent first; ``features.pipeline.attributes``)."""

    declaration: AttributeDeclaration = NO_ATTRIBUTES
    levels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (saved with the models)."""
        return {
            "declaration": self.declaration.tables,
            "levels": {k: list(v) for k, v in self.levels.items()},
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FittedAttributes:
        """The inverse of :meth:`to_dict`."""
        return cls(
            AttributeDeclaration.model_validate(raw.get("declaration") or {}),
            {k: tuple(v) for k, v in (raw.get("levels") or {}).items()},
        )

    def levels_of(self, table: str, name: str) -> tuple[str, ...]:
        """The fixed levels of a categorical attribute (empty if it has none)."""
        return self.levels.get(f"{table}.{name}", ())

    def counted_levels(self, table: str, name: str) -> list[tuple[str, str]]:
        """(level, feature-name part) of the first ``MAX_COUNTED_LEVELS`` levels. The part
        has only lower-case letters, digits and ``_`` (LightGBM rejects some characters in
        feature names); a part that clashes with an earlier one gets the level's position."""
        out: list[tuple[str, str]] = []
        for i, level in enumerate(self.levels_of(table, name)[:MAX_COUNTED_LEVELS]):
            slug = re.sub(r"[^a-z0-9]+", "_", level.lower()).strip("_") or "level"
            out.append((level, slug if slug not in {s for _, s in out} else f"{slug}_{i}"))
        return out


NO_FITTED_ATTRIBUTES = FittedAttributes()
