"""The data contract: the six input tables, their columns and canonical dtypes.

Canonical in-memory form (what the loader produces, what the simulator writes and what
the feature pipeline assumes):

- ids and free text: pandas ``str`` dtype (missing values are NaN);
- vocabulary columns (channel, event_type, role, phase, content_type, topic, industry,
  region): pandas ``category`` whose categories are the taxonomy's names, in taxonomy order;
- timestamps: ``datetime64[ns, UTC]``;
- integers: ``int64``, ``Int64`` (pandas' nullable integers) where the column is nullable;
  numbers: ``float64`` (NaN when missing);
- list columns (content phases and roles): Python lists of ``str``, an empty list where none
  are given; in CSV a ``|``-joined string.

Every nullable column may be absent from a file: the loader adds it all-missing. Optional
tables (:data:`OPTIONAL_TABLES`) may be absent from a data directory: they load as empty
tables, except that absent ``contacts`` and ``content`` are the contacts and content items
the events name, as ``POST /v1/events`` creates them (``features.validate.tables``).

Two readings of missing values belong to the contract, written here once:

- an account without ``created_at`` was created at its first recorded activity, the
  earliest of its touchpoints, stages and exposures (:func:`account_created_at`); one with
  neither does not exist yet;
- content without ``phases`` (``roles``) fits every phase (role): it was made for no
  journey phase or buying-center role in particular (:func:`fits_every`);
- an account or contact without ``name`` is shown by its id: names are for people and
  never a feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Literal

import numpy as np
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

# The content id of the control arm. An exposure of it is a logged decision to do nothing
# (with the probability the logging policy gave doing nothing); a catalog holding it makes
# the next-action model rank actions by uplift, the gain over doing nothing. It is never
# recommended itself.
NO_ACTION_CONTENT_ID = "no_action"


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
                Column(
                    "industry",
                    "category",
                    "industry",
                    required=False,
                    nullable=True,
                    vocabulary="industries",
                ),
                Column("employees", "int", "number of employees", required=False, nullable=True),
                Column(
                    "region",
                    "category",
                    "sales region",
                    required=False,
                    nullable=True,
                    vocabulary="regions",
                ),
                Column(
                    "created_at",
                    "datetime",
                    "when the account was created in the CRM; where missing, its first "
                    "recorded activity (earliest touchpoint, stage or exposure)",
                    required=False,
                    nullable=True,
                ),
                Column(
                    "annual_revenue",
                    "float",
                    "annual revenue in EUR",
                    required=False,
                    nullable=True,
                ),
                Column("owner_rep_id", "id", "owning sales rep", required=False, nullable=True),
                Column(
                    "name",
                    "text",
                    "the company's name as people know it (where missing, the account id "
                    "stands for it)",
                    required=False,
                    nullable=True,
                ),
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
                Column(
                    "role",
                    "category",
                    "buying-center role",
                    required=False,
                    nullable=True,
                    vocabulary="roles",
                ),
                Column("created_at", "datetime", "when the contact was created"),
                Column(
                    "left_at",
                    "datetime",
                    "when the contact left the account",
                    required=False,
                    nullable=True,
                ),
                Column(
                    "name",
                    "text",
                    "the person's name (where missing, the contact id stands for it)",
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
                    required=False,
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
                    required=False,
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
                Column(
                    "content_type",
                    "category",
                    "content type",
                    required=False,
                    nullable=True,
                    vocabulary="content_types",
                ),
                Column(
                    "phases",
                    "list",
                    "phases it fits (none given: every phase)",
                    required=False,
                    nullable=True,
                    vocabulary="phases",
                ),
                Column(
                    "roles",
                    "list",
                    "roles it fits (none given: every role)",
                    required=False,
                    nullable=True,
                    vocabulary="roles",
                ),
                Column(
                    "topic", "category", "topic", required=False, nullable=True, vocabulary="topics"
                ),
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
                    required=False,
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
                Column(
                    "policy",
                    "text",
                    "the policy that chose it (its propensity is under this policy), if known",
                    required=False,
                    nullable=True,
                ),
                Column(
                    "servable",
                    "text",
                    "what the policy could have chosen for this slot then, as JSON "
                    '{"contact_id": ["content_id", ...]} ("" for an account-level action), '
                    "if known: another policy judged on this log chooses among it",
                    required=False,
                    nullable=True,
                ),
            ),
        ),
    )
}

# Order in which tables are validated, so references point to tables already checked.
TABLE_ORDER = ("accounts", "contacts", "content", "touchpoints", "stages", "exposures")
# Tables a data directory may leave out (see the module docstring for what they load as).
OPTIONAL_TABLES = ("contacts", "content", "stages", "exposures")


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
    return pd.DataFrame(
        {c.name: missing_column(c, 0, taxonomy) for c in TABLES[name].columns},
        index=pd.RangeIndex(0),
    )


def with_all_columns(name: str, frame: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """``frame`` (of table ``name``) in schema column order, absent columns added as
    all-missing in their canonical dtype (:func:`missing_column`); extra columns are kept
    after them."""
    schema = TABLES[name]
    if all(c in frame.columns for c in schema.names):
        return frame
    index = frame.index
    columns = {
        c.name: frame[c.name]
        if c.name in frame.columns
        else missing_column(c, len(frame), taxonomy)
        for c in schema.columns
    }
    out = pd.DataFrame({k: v.set_axis(index) for k, v in columns.items()}, index=index)
    extra = [c for c in frame.columns if c not in schema.names]
    return pd.concat([out, frame[extra]], axis=1) if extra else out


def missing_column(column: Column, length: int, taxonomy: Taxonomy) -> pd.Series:
    """``length`` missing values of ``column`` in its canonical dtype (empty lists for a
    list column)."""
    index = pd.RangeIndex(length)
    if column.kind == "list":
        lists = np.empty(length, dtype=object)
        lists[:] = [[] for _ in range(length)]
        return pd.Series(lists, index=index, dtype=object)
    if column.kind == "datetime":
        return pd.Series(pd.NaT, index=index, dtype=TIMESTAMP_DTYPE)
    return pd.Series(index=index, dtype=column_dtype(column, taxonomy))


def column_dtype(column: Column, taxonomy: Taxonomy) -> str | pd.CategoricalDtype | type[object]:
    """The canonical pandas dtype of a column."""
    if column.kind in ("id", "text"):
        return "str"
    if column.kind == "category":
        assert column.vocabulary is not None
        return pd.CategoricalDtype(taxonomy.vocabulary(column.vocabulary))
    if column.kind == "int":
        return "Int64" if column.nullable else "int64"
    if column.kind == "float":
        return "float64"
    if column.kind == "datetime":
        return TIMESTAMP_DTYPE
    return object


def account_created_at(data: JourneyData) -> pd.Series:
    """When each account of ``data.accounts`` was created (aligned with it): its
    ``created_at``, or where that is missing its first recorded activity, the earliest of its
    touchpoints, stages and exposures; ``NaT`` for an account with neither (it does not
    exist yet). Tables without rows or columns count as no activity."""
    accounts = data.accounts
    created = accounts.get("created_at")
    if created is not None and not created.isna().any():
        return created
    events = [
        frame[["account_id", "ts"]]
        for frame in (data.touchpoints, data.stages, data.exposures)
        if len(frame) and {"account_id", "ts"} <= set(frame.columns)
    ]
    first = (
        pd.concat(events, ignore_index=True).groupby("account_id", sort=False)["ts"].min()
        if events
        else pd.Series([], dtype=TIMESTAMP_DTYPE)
    )
    activity = pd.Series(
        first.reindex(accounts["account_id"]).to_numpy(),
        index=accounts.index,
        dtype=TIMESTAMP_DTYPE,
    )
    return activity if created is None else created.fillna(activity)


def fits_every(lists: pd.Series | Sequence[object]) -> np.ndarray:
    """items bool: the item gives no phases (or roles) in this list column, so it fits
    every phase (role): content made for no journey phase or buying-center role in
    particular is for all of them."""
    return np.array(
        [not isinstance(v, list | tuple | np.ndarray) or len(v) == 0 for v in lists], dtype=bool
    )
