"""Validation of ingested touchpoint records (``POST /v1/events``), one verdict per record.

A record is a JSON object with the touchpoint columns of the data contract
(``features.schema.TABLES["touchpoints"]``) plus two optional objects that describe an
account or contact the store may not know yet::

    {"event_id": "E1", "account_id": "A1", "contact_id": "P1",
     "ts": "2024-05-01T12:00:00Z", "channel": "webinar", "event_type": "attend",
     "content_id": "C040", "value": 45,
     "account": {"name": "Hoffmann Logistik GmbH", "industry": "software",
                 "employees": 50, "region": "dach", "owner_rep_id": "R1",
                 "attributes": {"plan": "pro"}},
     "contact": {"name": "Jana Weber", "role": "it"},
     "attributes": {"discount": 12.5}}

``attributes`` (on the event and on its account) holds values of the custom attributes the
service declares (``features.attributes``, ``NBA_ATTRIBUTES``): an undeclared name or a value
of the wrong kind rejects the record.

:func:`validate_events` is pure (no database): the store passes in what it knows (content
ids, the accounts of known contacts) and gets back the valid rows and one
:class:`RecordError` per invalid record, naming the record's index, the field and the reason
in the words of ``features.validate`` (what is wrong, what was expected).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.attributes import (
    NO_ATTRIBUTES,
    AttributeDeclaration,
    InvalidAttributeError,
    attribute_value,
)
from features.taxonomy import Taxonomy
from serving.store.values import ID_RULE, id_problem, shown, text_problem

# Most records one request may carry (POST /v1/events answers 413 above it).
MAX_BATCH_EVENTS = 10_000
# Stored integers are BIGINT (64-bit signed).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

TOUCHPOINT_FIELDS = (
    "event_id",
    "account_id",
    "contact_id",
    "ts",
    "channel",
    "event_type",
    "content_id",
    "value",
)
RECORD_FIELDS = (*TOUCHPOINT_FIELDS, "account", "contact", "attributes")
ACCOUNT_FIELDS = (
    "name",
    "industry",
    "employees",
    "region",
    "owner_rep_id",
    "annual_revenue",
    "attributes",
    "created_at",
)
CONTACT_FIELDS = ("name", "role", "created_at")
# The longest name (of an account or contact) a record may give.
MAX_NAME_LENGTH = 500

# pandas also parses words such as "now" and "today"; a timestamp must start with a date.
_ISO_START = re.compile(r"^\d{4}-\d{2}-\d{2}")
# The times nanoseconds since the epoch (int64) can hold.
_NS_MIN, _NS_MAX = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")
_TS_EXPECTED = (
    "an ISO 8601 timestamp such as 2024-05-01T12:00:00Z "
    f"(between {_NS_MIN:%Y-%m-%d} and {_NS_MAX:%Y-%m-%d})"
)


@dataclass(frozen=True)
class RecordError:
    """Why one record was rejected: its 0-based position in the batch, the field (dotted
    for nested objects, e.g. ``account.industry``; empty for the record as a whole) and the
    reason."""

    index: int
    field: str
    reason: str


@dataclass
class IngestResult:
    """What happened to a batch.

    ``accepted`` records were stored; ``duplicates`` had an event_id stored before (or
    earlier in the same batch) and stored nothing; ``rejected`` has one error per invalid
    record (its first problem), sorted by index; ``account_ids`` are the accounts that got
    new touchpoints (their data version was bumped).
    """

    accepted: int
    duplicates: int
    rejected: list[RecordError] = field(default_factory=list)
    account_ids: set[str] = field(default_factory=set)


@dataclass
class ValidatedEvents:
    """The valid part of a batch, ready to store (times in ns since the epoch, UTC).

    ``touchpoints`` holds the first record of each event_id, in batch order; ``indexes``
    their positions in the batch. ``accounts`` and ``contacts`` hold every account and
    contact the valid records mention, with the attributes the records gave (later records
    win per attribute) and ``created_at`` defaulting to their earliest event.
    """

    touchpoints: list[dict[str, Any]]
    indexes: list[int]
    accounts: dict[str, dict[str, Any]]
    contacts: dict[str, dict[str, Any]]
    duplicates: int
    errors: list[RecordError]


class _Reject(Exception):
    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason


def parse_timestamps_ns(values: Sequence[object]) -> np.ndarray:
    """Returns int64 nanoseconds since the epoch, UTC, for ISO 8601 strings; -1 where a
    value is not a string that parses to a time nanoseconds can hold (1677-2262) (naive
    strings are UTC, offsets are honoured), exactly as ``features.validate`` parses a CSV
    column."""
    out = np.full(len(values), -1, dtype=np.int64)
    is_text = np.array(
        [
            isinstance(v, str) and _ISO_START.match(v) is not None and text_problem(v) is None
            for v in values
        ],
        dtype=bool,
    )
    if is_text.any():
        text = pd.Series([v for v, ok in zip(values, is_text, strict=True) if ok], dtype="str")
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
        # pandas parses to microseconds; a time outside the nanosecond range would wrap
        # around silently on the cast below (the year 1400 becomes 1984).
        parsed = parsed.where((parsed >= _NS_MIN) & (parsed <= _NS_MAX))
        ns = parsed.to_numpy(dtype="datetime64[ns]").view(np.int64)
        out[is_text] = np.where(parsed.isna().to_numpy(), -1, ns)
    return out


def validate_events(
    records: Sequence[object],
    taxonomy: Taxonomy,
    *,
    content_ids: Collection[str],
    contact_accounts: Mapping[str, str],
    now_ns: int,
    attributes: AttributeDeclaration = NO_ATTRIBUTES,
) -> ValidatedEvents:
    """Check every record against the touchpoint contract and the declared custom
    ``attributes`` of touchpoints and accounts.

    ``content_ids`` are the catalog's ids; ``contact_accounts`` maps known contact ids to
    their account (a record may not move a contact to another account); ``now_ns`` is the
    current time (timestamps after it are rejected). Returns the valid rows (duplicate
    event_ids within the batch counted, not returned) and one error per invalid record.
    """
    checker = _Checker(taxonomy, content_ids, contact_accounts, now_ns, attributes)
    ts_ns = parse_timestamps_ns([r.get("ts") if isinstance(r, dict) else None for r in records])
    touchpoints: list[dict[str, Any]] = []
    indexes: list[int] = []
    errors: list[RecordError] = []
    accounts: dict[str, dict[str, Any]] = {}
    contacts: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    duplicates = 0
    for index, record in enumerate(records):
        try:
            row, account, contact = checker.check(record, int(ts_ns[index]), contacts)
        except _Reject as reject:
            errors.append(RecordError(index, reject.field, reject.reason))
            continue
        _merge(accounts, row["account_id"], account, row["ts"])
        if row["contact_id"] is not None:
            contact["account_id"] = row["account_id"]
            _merge(contacts, row["contact_id"], contact, row["ts"])
        if row["event_id"] in seen:
            duplicates += 1
            continue
        seen.add(row["event_id"])
        touchpoints.append(row)
        indexes.append(index)
    return ValidatedEvents(touchpoints, indexes, accounts, contacts, duplicates, errors)


def _merge(into: dict[str, dict[str, Any]], key: str, attrs: dict[str, Any], ts: int) -> None:
    """Fold one record's attributes into the entity's; created_at defaults to the earliest
    event seen for it."""
    current = into.setdefault(key, {"created_at": ts, "created_at_given": False})
    for name, value in attrs.items():
        if name == "created_at":
            current["created_at"] = value
            current["created_at_given"] = True
        else:
            current[name] = value
    if not current["created_at_given"]:
        current["created_at"] = min(current["created_at"], ts)


def _key(name: str) -> str:
    """A record's key as a field name: as given when it is a plain name, quoted and cut
    short otherwise (the answer must be encodable and readable)."""
    return name if len(name) <= 64 and id_problem(name) is None else shown(name)


def _check_int64(field_name: str, value: int) -> None:
    """Reject an integer a BIGINT column cannot hold."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise _Reject(
            field_name,
            f"integer {shown(value)} is out of range; expected {INT64_MIN} to {INT64_MAX}",
        )


class _Checker:
    def __init__(
        self,
        taxonomy: Taxonomy,
        content_ids: Collection[str],
        contact_accounts: Mapping[str, str],
        now_ns: int,
        attributes: AttributeDeclaration,
    ) -> None:
        self.taxonomy = taxonomy
        self.attributes = attributes
        self.channels = frozenset(taxonomy.channel_names)
        self.event_types = frozenset(taxonomy.event_type_names)
        self.industries = frozenset(taxonomy.industries)
        self.regions = frozenset(taxonomy.regions)
        self.roles = frozenset(taxonomy.role_names)
        self.content_ids = content_ids
        self.contact_accounts = contact_accounts
        self.now_ns = now_ns
        self.now_text = f"{pd.Timestamp(now_ns, tz='UTC'):%Y-%m-%d %H:%M:%S} UTC"

    def check(
        self, record: object, ts_ns: int, batch_contacts: Mapping[str, Mapping[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The touchpoint row, account attributes and contact attributes of a valid record;
        raises _Reject with the first problem otherwise."""
        if not isinstance(record, dict):
            raise _Reject("", f"not a JSON object (got {type(record).__name__})")
        unknown = [k for k in record if k not in RECORD_FIELDS]
        if unknown:
            raise _Reject(_key(unknown[0]), "unknown field; expected " + ", ".join(RECORD_FIELDS))
        event_id = self._id(record, "event_id", required=True)
        account_id = self._id(record, "account_id", required=True)
        assert event_id is not None and account_id is not None
        if record.get("ts") is None:
            raise _Reject("ts", f"missing value; expected {_TS_EXPECTED}")
        if ts_ns < 0:
            raise _Reject(
                "ts", f"unparseable timestamp {shown(record['ts'])}; expected {_TS_EXPECTED}"
            )
        if ts_ns > self.now_ns:
            raise _Reject(
                "ts",
                f"timestamp in the future ({record['ts']}); expected a time before now "
                f"({self.now_text})",
            )
        channel = self._vocab(record, "channel", self.channels, "channels", required=True)
        event_type = self._vocab(
            record, "event_type", self.event_types, "event_types", required=True
        )
        contact_id = self._id(record, "contact_id", required=False)
        if contact_id is not None:
            owner = self.contact_accounts.get(contact_id)
            if owner is None and contact_id in batch_contacts:
                owner = batch_contacts[contact_id]["account_id"]
            if owner is not None and owner != account_id:
                raise _Reject(
                    "contact_id",
                    f"contact {contact_id!r} belongs to account {owner!r}, not {account_id!r}",
                )
        content_id = self._id(record, "content_id", required=False)
        if content_id is not None and content_id not in self.content_ids:
            raise _Reject(
                "content_id", f"unknown content_id {content_id!r}; expected an id of the catalog"
            )
        value = self._number(record, "value", record.get("value"))
        account = self._account(record.get("account"))
        contact = self._contact(record.get("contact"), contact_id)
        row = {
            "event_id": event_id,
            "account_id": account_id,
            "contact_id": contact_id,
            "ts": ts_ns,
            "channel": channel,
            "event_type": event_type,
            "content_id": content_id,
            "value": value,
            "attributes": self._attributes("touchpoints", "", record.get("attributes")),
        }
        return row, account, contact

    def _id(
        self, record: Mapping[str, Any], name: str, *, required: bool, prefix: str = ""
    ) -> str | None:
        value = record.get(name)
        where = prefix + name
        if value is None:
            if required:
                raise _Reject(where, "missing value; expected a non-empty string")
            return None
        if not isinstance(value, str) or not value.strip():
            raise _Reject(where, f"invalid {name} {shown(value)}; expected a non-empty string")
        problem = id_problem(value)
        if problem is not None:
            raise _Reject(where, f"{name} {problem}; {ID_RULE}")
        return value

    def _vocab(
        self,
        record: Mapping[str, Any],
        name: str,
        allowed: frozenset[str],
        vocabulary: str,
        *,
        required: bool,
        prefix: str = "",
    ) -> str | None:
        value = record.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or value not in allowed:
            what = "missing value" if value is None else f"unknown {name} {shown(value)}"
            names = self.taxonomy.vocabulary(vocabulary)
            raise _Reject(prefix + name, f"{what}; expected one of: " + ", ".join(names))
        return value

    def _number(self, record: Mapping[str, Any], name: str, value: object) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Reject(name, f"non-numeric value {shown(value)}; expected a number")
        if isinstance(value, int):
            _check_int64(name, value)
        number = float(value)
        if not math.isfinite(number):
            raise _Reject(name, f"value {value!r} is not finite; expected a number")
        return number

    def _timestamp(self, field_name: str, value: object) -> int:
        ns = int(parse_timestamps_ns([value])[0])
        if ns < 0:
            raise _Reject(
                field_name, f"unparseable timestamp {shown(value)}; expected {_TS_EXPECTED}"
            )
        if ns > self.now_ns:
            raise _Reject(
                field_name,
                f"timestamp in the future ({value}); expected a time before now ({self.now_text})",
            )
        return ns

    def _object(self, name: str, value: object, allowed: Sequence[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Reject(name, f"not a JSON object (got {type(value).__name__})")
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise _Reject(
                f"{name}.{_key(unknown[0])}", "unknown field; expected " + ", ".join(allowed)
            )
        return value

    def _account(self, value: object) -> dict[str, Any]:
        if value is None:
            return {}
        given = self._object("account", value, ACCOUNT_FIELDS)
        out = _named("account", given)
        for name, vocabulary, allowed in (
            ("industry", "industries", self.industries),
            ("region", "regions", self.regions),
        ):
            if given.get(name) is not None:
                out[name] = self._vocab(
                    given, name, allowed, vocabulary, required=False, prefix="account."
                )
        employees = given.get("employees")
        if employees is not None:
            if isinstance(employees, bool) or not isinstance(employees, int) or employees < 0:
                raise _Reject(
                    "account.employees",
                    f"invalid employees {shown(employees)}; expected a whole number >= 0",
                )
            _check_int64("account.employees", employees)
            out["employees"] = employees
        revenue = given.get("annual_revenue")
        if revenue is not None:
            out["annual_revenue"] = self._number(given, "account.annual_revenue", revenue)
        if given.get("owner_rep_id") is not None:
            out["owner_rep_id"] = self._id(given, "owner_rep_id", required=False, prefix="account.")
        if given.get("created_at") is not None:
            out["created_at"] = self._timestamp("account.created_at", given["created_at"])
        given_attributes = self._attributes("accounts", "account.", given.get("attributes"))
        if given_attributes is not None:
            out["attributes"] = given_attributes
        return out

    def _attributes(self, table: str, prefix: str, value: object) -> dict[str, Any] | None:
        """The custom attributes of ``table`` a record gives (None if none); each name must
        be declared and its value of the declared kind."""
        if value is None:
            return None
        where = prefix + "attributes"
        if not isinstance(value, dict):
            raise _Reject(where, f"not a JSON object (got {type(value).__name__})")
        declared = self.attributes.of(table)
        out: dict[str, Any] = {}
        for name, given in value.items():
            if name not in declared:
                expected = ", ".join(declared) or "none are declared (NBA_ATTRIBUTES)"
                raise _Reject(
                    f"{where}.{_key(name)}", f"unknown {table} attribute; expected {expected}"
                )
            kind = declared[name]
            try:
                checked = attribute_value(kind, given)
            except InvalidAttributeError as exc:
                what = "a finite number" if kind == "number" else "a category (a string)"
                raise _Reject(
                    f"{where}.{name}", f"invalid {kind} {shown(given)}; expected {what}"
                ) from exc
            if isinstance(checked, str) and text_problem(checked) is not None:
                raise _Reject(f"{where}.{name}", f"{text_problem(checked)}; expected text")
            if checked is not None:
                out[name] = checked
        return out or None

    def _contact(self, value: object, contact_id: str | None) -> dict[str, Any]:
        if value is None:
            return {}
        given = self._object("contact", value, CONTACT_FIELDS)
        if contact_id is None:
            raise _Reject("contact", "contact given without contact_id; expected a contact_id")
        out = _named("contact", given)
        if given.get("role") is not None:
            out["role"] = self._vocab(
                given, "role", self.roles, "roles", required=False, prefix="contact."
            )
        if given.get("created_at") is not None:
            out["created_at"] = self._timestamp("contact.created_at", given["created_at"])
        return out


def _named(what: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """``{"name": ...}`` when the ``account`` or ``contact`` object gives a name (checked by
    :func:`_name`), else empty."""
    value = given.get("name")
    return {} if value is None else {"name": _name(f"{what}.name", value)}


def _name(where: str, value: object) -> str:
    """A person's or company's name as given: text of 1 to ``MAX_NAME_LENGTH`` characters,
    not only whitespace, without NUL or lone surrogates."""
    if not isinstance(value, str) or not value.strip():
        raise _Reject(where, f"invalid name {shown(value)}; expected a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise _Reject(where, f"name of {len(value)} characters; expected at most {MAX_NAME_LENGTH}")
    problem = text_problem(value)
    if problem is not None:
        raise _Reject(where, f"name {problem}; expected text")
    return value
