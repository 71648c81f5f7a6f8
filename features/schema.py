"""The data contract: the six input tables, their columns and canonical dtypes.

Canonical in-memory form (what the loader produces, what the simulator writes and what
the feature pipeline assumes):

- ids and free text: pandas ``str`` dtype (missing values are NaN);
- vocabulary columns (channel, event_type, role, phase, content_type, topic, industry,
  region): pandas ``category`` whose categories are the taxonomy's names, in taxonomy order;
- timestamps: ``datetime64[ns, UTC]``;
- integers: ``int64``; numbers: ``float64`` (NaN when missing);
- list columns (content phases and roles): Python lists of ``str``; in CSV a ``|``-joined
  string.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

import pandas as pd

from features.taxonomy import Taxonomy

ColumnKind = Literal["id", "text", "category", "int", "float", "datetime", "list"]

TIMESTAMP_DTYPE = "datetime64[ns, UTC]"

# A response to an exposure is a touchpoint of the same account and content within this
# window after it; labels and the response-rate features share this definition.
RESPONSE_WINDOW_DAYS = 7

# Event types that count as a contact responding to content (as opposed to lifecycle and
# service events such as purchase, churn, usage).
RESPONSE_EVENT_TYPES = (
    "click",
    "download",
    "register",
    "attend",
    "reply",
    "share",
    "comment",
    "meeting",
    "demo_request",
    "trial_start",
)


@dataclass(frozen=True)
class Column:
    """One column of an input table."""

    name: str
    kind: ColumnKind
    description: str
    required: bool = True
    nullable: bool = False
    unique: bool = False
    vocabulary: str | None = None  # a Taxonomy.vocabulary name, for kind "category"/"list"
    references: tuple[str, str] | None = None  # (table, column) this column must exist in


@dataclass(frozen=True)
class TableSchema:
    name: str
    description: str
    columns: tuple[Column, ...]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name!r}")


TABLES: dict[str, TableSchema] = {
    t.name: t
    for t in (
        TableSchema(
            "accounts",
            "Companies the business sells to.",
            (
                Column("account_id", "id", "account identifier", unique=True),
                Column("industry", "category", "industry", vocabulary="industries"),
                Column("employees", "int", "number of employees"),
                Column("region", "category", "sales region", vocabulary="regions"),
                Column("created_at", "datetime", "when the account was created in the CRM"),
                Column(
                    "annual_revenue",
                    "float",
                    "annual revenue in EUR",
                    required=False,
                    nullable=True,
                ),
                Column("owner_rep_id", "id", "owning sales rep", required=False, nullable=True),
            ),
        ),
        TableSchema(
            "contacts",
            "People in the accounts' buying centers.",
            (
                Column("contact_id", "id", "contact identifier", unique=True),
                Column(
                    "account_id",
                    "id",
                    "the contact's account",
                    references=("accounts", "account_id"),
                ),
                Column("role", "category", "buying-center role", vocabulary="roles"),
                Column("created_at", "datetime", "when the contact was created"),
                Column(
                    "left_at",
                    "datetime",
                    "when the contact left the account",
                    required=False,
                    nullable=True,
                ),
            ),
        ),
        TableSchema(
            "touchpoints",
            "Every contact between the company and an account.",
            (
                Column("event_id", "id", "event identifier", unique=True),
                Column("account_id", "id", "the account", references=("accounts", "account_id")),
                Column(
                    "contact_id",
                    "id",
                    "the contact, if known",
                    nullable=True,
                    references=("contacts", "contact_id"),
                ),
                Column("ts", "datetime", "when it happened (UTC)"),
                Column("channel", "category", "channel", vocabulary="channels"),
                Column("event_type", "category", "what happened", vocabulary="event_types"),
                Column(
                    "content_id",
                    "id",
                    "content involved, if any",
                    nullable=True,
                    references=("content", "content_id"),
                ),
                Column(
                    "value",
                    "float",
                    "duration in minutes or amount in EUR, if any",
                    required=False,
                    nullable=True,
                ),
            ),
        ),
        TableSchema(
            "content",
            "The content and action catalog.",
            (
                Column("content_id", "id", "content identifier", unique=True),
                Column("content_type", "category", "content type", vocabulary="content_types"),
                Column("phases", "list", "phases it fits", vocabulary="phases"),
                Column("roles", "list", "roles it fits", vocabulary="roles"),
                Column("topic", "category", "topic", vocabulary="topics"),
                Column("value", "float", "relative business value", required=False, nullable=True),
                Column("title", "text", "title", required=False, nullable=True),
                Column(
                    "channel",
                    "category",
                    "usual channel",
                    required=False,
                    nullable=True,
                    vocabulary="channels",
                ),
            ),
        ),
        TableSchema(
            "stages",
            "The phase history as recorded in the CRM.",
            (
                Column("account_id", "id", "the account", references=("accounts", "account_id")),
                Column("ts", "datetime", "when the phase was recorded"),
                Column("phase", "category", "recorded phase", vocabulary="phases"),
            ),
        ),
        TableSchema(
            "exposures",
            "What was shown or sent, with the showing policy's probability of it.",
            (
                Column("exposure_id", "id", "exposure identifier", unique=True),
                Column("account_id", "id", "the account", references=("accounts", "account_id")),
                Column(
                    "contact_id",
                    "id",
                    "the contact it was shown to",
                    nullable=True,
                    references=("contacts", "contact_id"),
                ),
                Column("ts", "datetime", "when it was shown"),
                Column("content_id", "id", "what was shown", references=("content", "content_id")),
                Column("channel", "category", "how it was shown", vocabulary="channels"),
                Column("propensity", "float", "probability the logging policy gave it"),
                Column(
                    "position",
                    "float",
                    "slot the item was shown in (a whole number, 1 = first), if known",
                    required=False,
                    nullable=True,
                ),
            ),
        ),
    )
}

# Order in which tables are validated, so references point to tables already checked.
TABLE_ORDER = ("accounts", "contacts", "content", "touchpoints", "stages", "exposures")
# Tables a data directory may leave out; they load as empty tables.
OPTIONAL_TABLES = ("exposures",)


@dataclass
class JourneyData:
    """The six input tables in canonical form (see module docstring)."""

    accounts: pd.DataFrame
    contacts: pd.DataFrame
    touchpoints: pd.DataFrame
    content: pd.DataFrame
    stages: pd.DataFrame
    exposures: pd.DataFrame = field(default_factory=pd.DataFrame)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def empty_table(name: str, taxonomy: Taxonomy) -> pd.DataFrame:
    """A zero-row frame of table ``name`` with every column in canonical dtype."""
    schema = TABLES[name]
    return pd.DataFrame(
        {c.name: pd.Series([], dtype=column_dtype(c, taxonomy)) for c in schema.columns}
    )


def column_dtype(column: Column, taxonomy: Taxonomy) -> str | pd.CategoricalDtype | type[object]:
    """The canonical pandas dtype of a column."""
    if column.kind in ("id", "text"):
        return "str"
    if column.kind == "category":
        assert column.vocabulary is not None
        return pd.CategoricalDtype(taxonomy.vocabulary(column.vocabulary))
    if column.kind == "int":
        return "int64"
    if column.kind == "float":
        return "float64"
    if column.kind == "datetime":
        return TIMESTAMP_DTYPE
    return object
