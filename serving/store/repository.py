"""The service's store: journey data, cached features, served recommendations, feedback and
API keys, over SQLite (default, a file, WAL mode) or PostgreSQL (by URL, psycopg 3).

:class:`Store` is the only way the service touches the database. Its schema comes from the
Alembic migrations shipped in ``serving/store/migrations`` (:meth:`Store.migrate`), never
from ad-hoc DDL. Times cross this interface as UTC ``pd.Timestamp`` (anything
``pd.Timestamp`` accepts goes in; naive means UTC) and are stored as nanoseconds since the
epoch (see ``serving.store.tables``).

Writes run one transaction each; on SQLite it starts with ``BEGIN IMMEDIATE`` so writers
from several worker processes queue on the busy timeout instead of failing with "database is
locked" when a read turns into a write.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from features.errors import ConflictError, InvalidInputError, NotFoundError
from features.schema import TABLE_ORDER, TABLES, JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import to_ns
from serving.store.ingest import (
    ACCOUNT_FIELDS,
    MAX_BATCH_EVENTS,
    IngestResult,
    validate_events,
)
from serving.store.tables import (
    FEEDBACK_OUTCOMES,
    Account,
    ApiKeyRow,
    Base,
    Contact,
    Content,
    DismissedItem,
    FeatureCache,
    Feedback,
    Recommendation,
    ServedAction,
    Touchpoint,
)

DEFAULT_DATABASE_URL = "sqlite:///nba.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
API_KEY_SCOPES = ("events:write", "recommendations:read", "feedback:write", "admin")
# Rows per executemany / COPY chunk (and per transaction) when bulk loading.
LOAD_CHUNK_ROWS = 200_000
# Bound parameters per IN (...) lookup; SQLite allows 32,766.
_IN_CHUNK = 5_000
_MIGRATION_LOCK_KEY = 0x6E62615F6D6967  # "nba_mig": PostgreSQL advisory lock for migrations
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_KEY_PREFIX = "nba"

ProgressCallback = Callable[[str, int, int], None]
_TABLES: dict[str, Table] = dict(Base.metadata.tables)

# The request path's reads, built once: SQLAlchemy then reuses their compiled form, where a
# statement built per call costs more Python than the query costs SQLite.
_VERSION_AND_OWNER = select(Account.data_version, Account.owner_rep_id).where(
    Account.account_id == bindparam("account_id")
)
_SERVED_ACTIONS = select(
    ServedAction.contact_id, ServedAction.content_id, ServedAction.last_served_at
).where(
    ServedAction.account_id == bindparam("account_id"),
    ServedAction.last_served_at >= bindparam("since"),
)
_DISMISSED_ITEMS = select(DismissedItem.content_id, DismissedItem.last_dismissed_at).where(
    DismissedItem.account_id == bindparam("account_id"),
    DismissedItem.last_dismissed_at >= bindparam("since"),
)


class StoreError(InvalidInputError):
    """A database URL or schema the store cannot use."""


class BatchTooLargeError(InvalidInputError):
    """More events in one batch than ``MAX_BATCH_EVENTS``."""

    http_status_override = 413


class UnknownRecommendationError(NotFoundError):
    """Feedback for a recommendation id the store never served."""


class InvalidOutcomeError(InvalidInputError):
    """A feedback outcome that is not one of ``FEEDBACK_OUTCOMES``."""


class ApiKeyError(InvalidInputError):
    """An API key that cannot be created or revoked as asked."""


class UnknownScopeError(ApiKeyError):
    """A scope that is not one of ``API_KEY_SCOPES``."""


class DuplicateApiKeyError(ApiKeyError, ConflictError):
    """An active key with this name exists already."""


class UnknownApiKeyError(ApiKeyError, NotFoundError):
    """No active key has this name."""


@dataclass(frozen=True)
class ApiKey:
    """A stored API key (never its secret)."""

    id: int
    name: str
    scopes: frozenset[str]
    created_at: pd.Timestamp
    revoked_at: pd.Timestamp | None

    def allows(self, scope: str) -> bool:
        """Whether the key may use ``scope``; ``admin`` allows everything."""
        return scope in self.scopes or "admin" in self.scopes


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class NewRecommendation:
    """One action to log as served. ``propensity`` is the probability the serving
    ``policy`` gave this action (needed to evaluate other policies off-policy later);
    ``model_versions`` maps model names to the registry versions used. ``id`` is assigned
    on creation (the id the caller hands out); ``served_at`` None means the time the log
    call gives."""

    request_id: str
    account_id: str
    content_id: str
    rank: int
    expected_value: float
    propensity: float
    policy: str
    model_versions: Mapping[str, str] = field(default_factory=dict)
    contact_id: str | None = None
    id: str = field(default_factory=_new_id)
    served_at: pd.Timestamp | None = None

    def at(self, served_at: pd.Timestamp) -> NewRecommendation:
        """This action served at ``served_at``."""
        return replace(self, served_at=served_at)


@dataclass(frozen=True)
class ServedRecommendation:
    """A logged recommendation."""

    id: str
    request_id: str
    account_id: str
    contact_id: str | None
    content_id: str
    rank: int
    expected_value: float
    propensity: float
    policy: str
    model_versions: dict[str, str]
    served_at: pd.Timestamp


@dataclass(frozen=True)
class FeedbackRecord:
    """Feedback with the recommendation it is about (account, contact, content)."""

    id: int
    recommendation_id: str
    account_id: str
    contact_id: str | None
    content_id: str
    outcome: str
    at: pd.Timestamp
    note: str | None


@dataclass(frozen=True)
class AccountActivity:
    """An account's data version, owner and recent decisions (:meth:`Store.account_activity`):
    ``served`` holds (contact_id, content_id, last served, ns since the epoch) per distinct
    action, ``dismissed`` (content_id, dismissed at, ns) per dismissal."""

    data_version: int
    owner_rep_id: str | None
    served: list[tuple[str | None, str, int]]
    dismissed: list[tuple[str, int]]


@dataclass(frozen=True)
class CachedFeatures:
    """A cached feature row: JSON values (None where missing, category names as text)."""

    account_id: str
    pipeline_version: str
    as_of: pd.Timestamp
    data_version: int
    features: dict[str, Any]
    computed_at: pd.Timestamp


@dataclass
class LoadResult:
    """Rows each table had in the input and rows newly stored (existing ids are kept for
    events, updated for accounts, contacts and content), and the seconds it took."""

    input_rows: dict[str, int]
    stored_rows: dict[str, int]
    seconds: float


def database_url(url: str) -> str:
    """``url`` with PostgreSQL URLs pointed at the psycopg 3 driver
    (``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://``)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def from_ns(ns: int) -> pd.Timestamp:
    """The UTC timestamp of nanoseconds since the epoch."""
    return pd.Timestamp(ns, unit="ns", tz="UTC")


class Store:
    """The store at ``url`` (``sqlite:///path.db`` or ``postgresql://...``).

    ``taxonomy`` decides which channels, event types, roles, ... ingested events may name,
    and the categories of the frames :meth:`account_data` returns. ``schema`` (PostgreSQL
    only) puts every table in that schema (created by :meth:`migrate`), e.g. to isolate
    tests. Nothing is created until :meth:`migrate` runs.
    """

    def __init__(self, url: str, taxonomy: Taxonomy, *, schema: str | None = None) -> None:
        self.url = database_url(url)
        self.taxonomy = taxonomy
        self.schema = schema
        backend = make_url(self.url).get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise StoreError(f"database URL {url!r}: expected sqlite:/// or postgresql://")
        self.dialect = backend
        if schema is not None:
            if backend != "postgresql":
                raise StoreError("a schema can only be given for PostgreSQL")
            if not _SCHEMA_NAME.match(schema):
                raise StoreError(f"schema {schema!r} is not a plain SQL identifier")
        self.engine = self._create_engine()
        self._content_ids: frozenset[str] = frozenset()
        self._content_frame: pd.DataFrame | None = None

    # -- engine and migrations -------------------------------------------------------------

    def _create_engine(self) -> Engine:
        if self.dialect == "sqlite":
            engine = create_engine(
                self.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            )

            @event.listens_for(engine, "connect")
            def _configure(dbapi_connection: Any, _record: Any) -> None:
                # Let SQLAlchemy's "begin" event, not pysqlite, start transactions, so DDL is
                # transactional and writers can BEGIN IMMEDIATE.
                dbapi_connection.isolation_level = None
                cursor = dbapi_connection.cursor()
                cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                _enable_wal(cursor)
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _begin(conn: Connection) -> None:
                mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
                conn.exec_driver_sql(f"BEGIN {mode}")

            return engine
        connect_args: dict[str, Any] = {}
        if self.schema is not None:
            connect_args["options"] = f"-csearch_path={self.schema}"
        return create_engine(self.url, pool_pre_ping=True, connect_args=connect_args)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A connection inside a write transaction, committed on success."""
        with self.engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    def _alembic_config(self) -> Config:
        config = Config()
        config.set_main_option(
            "script_location", str(resources.files("serving.store") / "migrations")
        )
        config.set_main_option("path_separator", "os")
        return config

    def migrate(self, revision: str = "head") -> str:
        """Bring the schema to the newest migration (or ``revision``; a no-op when it is
        there already) and add the taxonomy's content catalog items the store lacks. Safe to
        run from several processes at once: they take a lock and migrate one after the
        other. Returns the schema revision."""
        config = self._alembic_config()
        with self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
                if self.schema is not None:
                    conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
        self.load_content(self.taxonomy.content_frame(), replace=False)
        return self.revision() or ""

    def revision(self) -> str | None:
        """The schema's migration revision, None before :meth:`migrate`."""
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def ping(self) -> bool:
        """Whether the database answers and is migrated."""
        try:
            return self.revision() is not None
        except Exception:
            return False

    def dispose(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        with self.engine.connect() as conn:
            return {
                name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                for name, table in Base.metadata.tables.items()
            }

    # -- content catalog -------------------------------------------------------------------

    def load_content(self, content: pd.DataFrame, *, replace: bool = True) -> int:
        """Store catalog items (a ``content`` table); existing ids are updated when
        ``replace``, kept otherwise. Returns the rows written."""
        with self._write() as conn:
            written = self._bulk_insert(conn, "content", content, replace=replace)
        self._refresh_content()
        return written

    def _refresh_content(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(_schema_select("content").order_by(Content.content_id)).all()
        self._content_frame = _canonical_frame("content", rows, self.taxonomy)
        self._content_ids = frozenset(self._content_frame["content_id"])

    def content(self) -> pd.DataFrame:
        """The catalog as a canonical ``content`` table."""
        if self._content_frame is None:
            self._refresh_content()
        assert self._content_frame is not None
        return self._content_frame

    # -- ingestion -------------------------------------------------------------------------

    def ingest_events(
        self, records: Sequence[object], *, now: pd.Timestamp | None = None
    ) -> IngestResult:
        """Validate and store a batch of touchpoint records (see ``serving.store.ingest``).

        Idempotent by event_id: an event stored before, or earlier in the batch, is counted
        as a duplicate and stores nothing. Invalid records are rejected one by one with their
        index, field and reason; the valid ones are stored (one transaction). Unknown
        accounts and contacts are created from the record (and its optional ``account`` /
        ``contact`` objects); attributes given for known ones update them. Accounts that get
        new events have their cached features invalidated. Raises
        :class:`BatchTooLargeError` above ``MAX_BATCH_EVENTS`` records.
        """
        if len(records) > MAX_BATCH_EVENTS:
            raise BatchTooLargeError(
                f"{len(records):,} events in one batch; expected at most {MAX_BATCH_EVENTS:,}"
            )
        now_ns = to_ns(now if now is not None else pd.Timestamp.now(tz="UTC"))
        dicts = [r for r in records if isinstance(r, dict)]
        content_ids = {r["content_id"] for r in dicts if isinstance(r.get("content_id"), str)}
        if not self._content_ids or not content_ids <= self._content_ids:
            self._refresh_content()  # the catalog may have grown in another process
        contact_ids = sorted(
            {r["contact_id"] for r in dicts if isinstance(r.get("contact_id"), str)}
        )
        with self._write() as conn:
            known_contacts = self._contact_accounts(conn, contact_ids)
            valid = validate_events(
                records,
                self.taxonomy,
                content_ids=self._content_ids,
                contact_accounts=known_contacts,
                now_ns=now_ns,
            )
            inserted: Sequence[Any] = []
            updated_accounts: set[str] = set()
            if valid.touchpoints:
                updated_accounts = self._upsert_accounts(conn, valid.accounts)
                self._upsert_contacts(conn, valid.contacts, known_contacts)
                rows = sorted(valid.touchpoints, key=lambda r: r["event_id"])  # lock order
                statement = (
                    self._insert(_TABLES["touchpoints"])
                    .on_conflict_do_nothing(index_elements=["event_id"])
                    .returning(Touchpoint.event_id, Touchpoint.account_id)
                )
                inserted = conn.execute(statement, rows).all()
            changed = {account_id for _, account_id in inserted}
            self._bump_accounts(conn, changed | updated_accounts)
        accepted = len(inserted)
        return IngestResult(
            accepted=accepted,
            duplicates=valid.duplicates + len(valid.touchpoints) - accepted,
            rejected=sorted(valid.errors, key=lambda e: e.index),
            account_ids=changed,
        )

    def _insert(self, table: Any) -> Any:
        """A dialect insert (with ``on_conflict_*``) of ``table``."""
        dialect_insert = sqlite.insert if self.dialect == "sqlite" else postgresql.insert
        return dialect_insert(table)

    def _contact_accounts(self, conn: Connection, contact_ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(contact_ids), _IN_CHUNK):
            chunk = contact_ids[start : start + _IN_CHUNK]
            query = select(Contact.contact_id, Contact.account_id).where(
                Contact.contact_id.in_(chunk)
            )
            out.update({c: a for c, a in conn.execute(query).all()})
        return out

    def _upsert_accounts(
        self, conn: Connection, accounts: Mapping[str, Mapping[str, Any]]
    ) -> set[str]:
        """Create unknown accounts, update the attributes records gave for known ones;
        returns the accounts whose attributes were given."""
        attrs = [a for a in ACCOUNT_FIELDS if a != "created_at"]
        plain: list[dict[str, Any]] = []
        described: list[dict[str, Any]] = []
        for account_id in sorted(accounts):
            given = accounts[account_id]
            row = {"account_id": account_id, "created_at": given["created_at"]}
            row.update({a: given.get(a) for a in attrs})
            (described if any(a in given for a in attrs) else plain).append(row)
        table = _TABLES["accounts"]
        if plain:
            conn.execute(
                self._insert(table).on_conflict_do_nothing(index_elements=["account_id"]), plain
            )
        if described:
            statement = self._insert(table)
            statement = statement.on_conflict_do_update(
                index_elements=["account_id"],
                set_={a: func.coalesce(getattr(statement.excluded, a), table.c[a]) for a in attrs},
            )
            conn.execute(statement, described)
        return {row["account_id"] for row in described}

    def _upsert_contacts(
        self,
        conn: Connection,
        contacts: Mapping[str, Mapping[str, Any]],
        known: Mapping[str, str],
    ) -> None:
        new: list[dict[str, Any]] = []
        roles: list[dict[str, Any]] = []
        for contact_id in sorted(contacts):
            given = contacts[contact_id]
            row = {
                "contact_id": contact_id,
                "account_id": given["account_id"],
                "role": given.get("role"),
                "created_at": given["created_at"],
                "left_at": None,
            }
            if contact_id not in known:
                new.append(row)
            elif row["role"] is not None:
                roles.append(row)
        table = _TABLES["contacts"]
        if new:
            statement = self._insert(table)
            statement = statement.on_conflict_do_update(
                index_elements=["contact_id"],
                set_={"role": func.coalesce(statement.excluded.role, table.c.role)},
            )
            conn.execute(statement, new)
        if roles:
            conn.execute(
                update(table)
                .where(table.c.contact_id == bindparam("known_contact_id"))
                .values(role=bindparam("new_role")),
                [{"known_contact_id": r["contact_id"], "new_role": r["role"]} for r in roles],
            )

    def _bump_accounts(self, conn: Connection, account_ids: Iterable[str]) -> None:
        """New data for these accounts: their cached features are stale."""
        ids = sorted(account_ids)
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            conn.execute(
                update(_TABLES["accounts"])
                .where(Account.account_id.in_(chunk))
                .values(data_version=Account.data_version + 1)
            )
            conn.execute(delete(_TABLES["feature_cache"]).where(FeatureCache.account_id.in_(chunk)))

    # -- reading journeys ------------------------------------------------------------------

    def account_data(self, account_id: str) -> JourneyData | None:
        """One account's rows of the six tables in canonical form (``features.schema``),
        the whole content catalog included; None if the account is unknown.

        ``build_account_features(store.account_data(a), a, as_of, taxonomy)`` equals the
        batch pipeline's row for ``a`` on the same data. Accounts created from events
        without ``employees`` have that column as float64 NaN (the pipeline reads it as a
        number either way).
        """
        data = self.accounts_data([account_id])
        return None if data.accounts.empty else data

    def accounts_data(self, account_ids: Sequence[str]) -> JourneyData:
        """The rows of the given accounts in the six tables, in canonical form, read with
        one query per table (unknown ids are simply absent); events in time order."""
        ids = list(account_ids)
        frames: dict[str, pd.DataFrame] = {}
        with self.engine.connect() as conn:
            for name in ("accounts", "contacts", "touchpoints", "stages", "exposures"):
                table = _TABLES[name]
                query = _schema_select(name).where(table.c.account_id.in_(ids))
                if "ts" in table.c:
                    query = query.order_by(table.c.ts, *table.primary_key.columns)
                rows = conn.execute(query).all()
                frames[name] = _canonical_frame(name, rows, self.taxonomy)
        return JourneyData(
            accounts=frames["accounts"],
            contacts=frames["contacts"],
            touchpoints=frames["touchpoints"],
            content=self.content(),
            stages=frames["stages"],
            exposures=frames["exposures"],
        )

    def account_data_version(self, account_id: str) -> int | None:
        """The account's data version (bumped by every ingest that changes it), None if
        unknown. Read it *before* :meth:`account_data` and pass it to
        :meth:`cache_features`, so a row computed while an event arrived is never served."""
        with self.engine.connect() as conn:
            account = conn.execute(_VERSION_AND_OWNER, {"account_id": account_id}).first()
        return None if account is None else int(account.data_version)

    def accounts_of_rep(self, rep_id: str) -> list[str]:
        """The ids of the accounts owned by sales rep ``rep_id``, sorted."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Account.account_id)
                .where(Account.owner_rep_id == rep_id)
                .order_by(Account.account_id)
            ).all()
        return [r[0] for r in rows]

    def account_ids(self) -> list[str]:
        """Every account id, sorted."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(Account.account_id).order_by(Account.account_id)).all()
        return [r[0] for r in rows]

    # -- bulk load -------------------------------------------------------------------------

    def load_data(
        self,
        data: JourneyData,
        *,
        chunk_rows: int = LOAD_CHUNK_ROWS,
        progress: ProgressCallback | None = None,
    ) -> LoadResult:
        """Bulk-load canonical tables, as ``features.load.read_data_dir`` returns them.

        Assumes validated data: every reference (account, contact, content) resolves within
        ``data`` or the store. SQLite skips the per-row foreign-key checks during the load
        (validation did them once for all rows; they would halve the speed).

        Accounts, contacts and content are upserted (the data wins); touchpoints, stages and
        exposures already stored are kept (loading twice stores nothing twice). Each chunk
        of ``chunk_rows`` is its own transaction, so an interrupted load can simply be run
        again. ``progress(table, rows_done, rows_total)`` is called after each chunk. Every
        account's cached features are invalidated.
        """
        started = time.perf_counter()
        stored: dict[str, int] = {}
        inputs: dict[str, int] = {}
        tables = data.tables()
        with self._bulk_connection() as conn:
            for name in TABLE_ORDER:
                frame = tables[name]
                inputs[name] = len(frame)
                stored[name] = 0
                for start in range(0, len(frame), chunk_rows):
                    chunk = frame.iloc[start : start + chunk_rows]
                    with conn.begin():
                        stored[name] += self._bulk_insert(
                            conn, name, chunk, replace=name in ("accounts", "contacts", "content")
                        )
                    if progress is not None:
                        progress(name, min(start + chunk_rows, len(frame)), len(frame))
                if progress is not None and len(frame) == 0:
                    progress(name, 0, 0)
        with self._write() as conn:
            conn.execute(update(_TABLES["accounts"]).values(data_version=Account.data_version + 1))
            conn.execute(delete(_TABLES["feature_cache"]))
        self._refresh_content()
        return LoadResult(inputs, stored, time.perf_counter() - started)

    @contextmanager
    def _bulk_connection(self) -> Iterator[Connection]:
        """A connection for bulk writes (each ``begin()`` an immediate transaction); on
        SQLite without foreign-key checks and with a 256 MB page cache, both restored
        before the connection goes back to the pool."""
        with self.engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            if self.dialect != "sqlite":
                yield conn
                return
            # PRAGMA foreign_keys is ignored inside a transaction: set it on the raw
            # connection before SQLAlchemy begins one.
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")
            raw.execute("PRAGMA cache_size=-262144")
            try:
                yield conn
            finally:
                raw.execute("PRAGMA foreign_keys=ON")
                raw.execute("PRAGMA cache_size=-2000")

    def _bulk_insert(
        self, conn: Connection, name: str, frame: pd.DataFrame, *, replace: bool
    ) -> int:
        """Insert a chunk of table ``name``; returns the rows written."""
        columns = TABLES[name].names
        rows = _db_rows(name, frame)
        if not rows:
            return 0
        keys = [c.name for c in Base.metadata.tables[name].primary_key.columns]
        if name == "stages":
            keys = ["account_id", "ts", "phase"]
        names = ", ".join(columns)
        if replace:
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
            conflict = f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
        else:
            conflict = f"ON CONFLICT ({', '.join(keys)}) DO NOTHING"
        if self.dialect == "sqlite":
            marks = ", ".join("?" for _ in columns)
            result = conn.exec_driver_sql(
                f"INSERT INTO {name} ({names}) VALUES ({marks}) {conflict}", rows
            )
            return int(result.rowcount)
        # PostgreSQL: COPY into a temporary table, then one INSERT ... SELECT that can skip
        # or update existing rows (COPY itself cannot).
        staging = f"_load_{name}"
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE {staging} ON COMMIT DROP AS "
                f"SELECT {names} FROM {name} WITH NO DATA"
            )
            with cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(f"INSERT INTO {name} ({names}) SELECT {names} FROM {staging} {conflict}")
            written = cursor.rowcount
            cursor.execute(f"DROP TABLE {staging}")
        return int(written)

    # -- feature cache ---------------------------------------------------------------------

    def cached_features(self, account_id: str, pipeline_version: str) -> CachedFeatures | None:
        """The cached feature row of an account for a pipeline version, None when there is
        none or the account's data changed since it was computed."""
        query = (
            select(FeatureCache)
            .join(Account, Account.account_id == FeatureCache.account_id)
            .where(
                FeatureCache.account_id == account_id,
                FeatureCache.pipeline_version == pipeline_version,
                FeatureCache.data_version == Account.data_version,
            )
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).one_or_none()
        if row is None:
            return None
        return CachedFeatures(
            account_id=row.account_id,
            pipeline_version=row.pipeline_version,
            as_of=from_ns(row.as_of),
            data_version=row.data_version,
            features=dict(row.features),
            computed_at=from_ns(row.computed_at),
        )

    def cache_features(
        self,
        account_id: str,
        pipeline_version: str,
        as_of: pd.Timestamp,
        features: Mapping[str, Any] | pd.Series,
        *,
        data_version: int,
    ) -> None:
        """Store (replace) an account's feature row; ``data_version`` is what
        :meth:`account_data_version` said before the data was read. Values must be numbers,
        strings, booleans or missing (NaN/None/NA become null)."""
        values = {str(k): _json_value(v) for k, v in dict(features).items()}
        row = {
            "account_id": account_id,
            "pipeline_version": pipeline_version,
            "as_of": to_ns(as_of),
            "data_version": data_version,
            "features": values,
            "computed_at": to_ns(pd.Timestamp.now(tz="UTC")),
        }
        statement = self._insert(_TABLES["feature_cache"])
        statement = statement.on_conflict_do_update(
            index_elements=["account_id", "pipeline_version"],
            set_={
                c: getattr(statement.excluded, c)
                for c in row
                if c not in ("account_id", "pipeline_version")
            },
        )
        with self._write() as conn:
            conn.execute(statement, row)

    def invalidate_features(self, account_ids: Iterable[str]) -> None:
        """Mark the accounts' data as changed: their cached features are no longer served."""
        with self._write() as conn:
            self._bump_accounts(conn, account_ids)

    # -- recommendations and feedback ------------------------------------------------------

    def log_recommendations(
        self, items: Sequence[NewRecommendation], *, served_at: pd.Timestamp | None = None
    ) -> list[str]:
        """Log served actions (one transaction); returns their ids, in order. Items without
        their own ``served_at`` were served at ``served_at`` (default: now)."""
        at = to_ns(served_at if served_at is not None else pd.Timestamp.now(tz="UTC"))
        ids = [item.id for item in items]
        times = [at if item.served_at is None else to_ns(item.served_at) for item in items]
        rows = [
            {
                "id": rec_id,
                "request_id": item.request_id,
                "account_id": item.account_id,
                "contact_id": item.contact_id,
                "content_id": item.content_id,
                "rank": int(item.rank),
                "expected_value": float(item.expected_value),
                "propensity": float(item.propensity),
                "policy": item.policy,
                "model_versions": {str(k): str(v) for k, v in item.model_versions.items()},
                "served_at": served_ns,
            }
            for rec_id, item, served_ns in zip(ids, items, times, strict=True)
        ]
        if rows:
            last: dict[tuple[str, str, str], int] = {}
            for item, served_ns in zip(items, times, strict=True):
                action = (item.account_id, item.contact_id or "", item.content_id)
                last[action] = max(last.get(action, served_ns), served_ns)
            with self._write() as conn:
                conn.execute(insert(_TABLES["recommendations"]), rows)
                self._upsert_latest(
                    conn,
                    _TABLES["served_actions"],
                    ["account_id", "contact_id", "content_id"],
                    "last_served_at",
                    [
                        {"account_id": a, "contact_id": c, "content_id": i, "last_served_at": t}
                        for (a, c, i), t in sorted(last.items())
                    ],
                )
        return ids

    def _upsert_latest(
        self,
        conn: Connection,
        table: Table,
        keys: list[str],
        column: str,
        rows: list[dict[str, Any]],
    ) -> None:
        """Insert ``rows`` into ``table``, keeping the later ``column`` for existing keys."""
        statement = self._insert(table)
        later = func.max if self.dialect == "sqlite" else func.greatest  # the 2-argument max
        statement = statement.on_conflict_do_update(
            index_elements=keys,
            set_={column: later(table.c[column], getattr(statement.excluded, column))},
        )
        conn.execute(statement, rows)

    def record_feedback(
        self,
        recommendation_id: str,
        outcome: str,
        at: pd.Timestamp | None = None,
        note: str | None = None,
    ) -> int:
        """Store what happened to a recommendation; returns the feedback id. Raises
        :class:`InvalidOutcomeError` for an outcome not in ``FEEDBACK_OUTCOMES`` and
        :class:`UnknownRecommendationError` for an id never served."""
        if outcome not in FEEDBACK_OUTCOMES:
            raise InvalidOutcomeError(
                f"feedback.outcome {outcome!r} is unknown; expected one of: "
                + ", ".join(FEEDBACK_OUTCOMES)
            )
        row = {
            "recommendation_id": recommendation_id,
            "outcome": outcome,
            "at": to_ns(at if at is not None else pd.Timestamp.now(tz="UTC")),
            "note": note,
        }
        unknown = UnknownRecommendationError(
            f"feedback.recommendation_id {recommendation_id!r} is unknown; expected the id "
            "of a served recommendation"
        )
        try:
            with self._write() as conn:
                served = conn.execute(
                    select(Recommendation.account_id, Recommendation.content_id).where(
                        Recommendation.id == recommendation_id
                    )
                ).first()
                if served is None:
                    raise unknown
                feedback_id = int(
                    conn.execute(
                        insert(_TABLES["feedback"]).returning(Feedback.id), row
                    ).scalar_one()
                )
                if outcome == "dismissed":
                    self._upsert_latest(
                        conn,
                        _TABLES["dismissed_items"],
                        ["account_id", "content_id"],
                        "last_dismissed_at",
                        [
                            {
                                "account_id": served.account_id,
                                "content_id": served.content_id,
                                "last_dismissed_at": row["at"],
                            }
                        ],
                    )
                return feedback_id
        except IntegrityError as exc:  # deleted between the check and the insert
            raise unknown from exc

    def served_since(self, account_id: str, since: pd.Timestamp) -> list[ServedRecommendation]:
        """Recommendations served for an account at or after ``since``, oldest first."""
        query = (
            select(Recommendation)
            .where(
                Recommendation.account_id == account_id, Recommendation.served_at >= to_ns(since)
            )
            .order_by(Recommendation.served_at, Recommendation.request_id, Recommendation.rank)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            ServedRecommendation(
                id=r.id,
                request_id=r.request_id,
                account_id=r.account_id,
                contact_id=r.contact_id,
                content_id=r.content_id,
                rank=r.rank,
                expected_value=r.expected_value,
                propensity=r.propensity,
                policy=r.policy,
                model_versions=dict(r.model_versions),
                served_at=from_ns(r.served_at),
            )
            for r in rows
        ]

    def account_activity(
        self, account_id: str, *, served_since: pd.Timestamp, dismissed_since: pd.Timestamp
    ) -> AccountActivity | None:
        """What a recommendation request reads besides the account's rows, in one read
        transaction: the account's data version and owning rep, the distinct (contact_id,
        content_id) actions served at or after ``served_since`` with the last time each was
        served (what contact caps count; one row per action however often it was served) and
        the items dismissed at or after ``dismissed_since``. None if the account is
        unknown."""
        with self.engine.connect() as conn:
            account = conn.execute(_VERSION_AND_OWNER, {"account_id": account_id}).first()
            if account is None:
                return None
            served = conn.execute(
                _SERVED_ACTIONS, {"account_id": account_id, "since": to_ns(served_since)}
            ).all()
            dismissed = conn.execute(
                _DISMISSED_ITEMS, {"account_id": account_id, "since": to_ns(dismissed_since)}
            ).all()
        return AccountActivity(
            data_version=int(account.data_version),
            owner_rep_id=account.owner_rep_id,
            served=[(r[0] or None, r[1], int(r[2])) for r in served],
            dismissed=[(r[0], int(r[1])) for r in dismissed],
        )

    def recent_feedback(self, account_id: str, since: pd.Timestamp) -> list[FeedbackRecord]:
        """Feedback on an account's recommendations given at or after ``since``, oldest
        first."""
        query = (
            select(
                Feedback.id,
                Feedback.recommendation_id,
                Recommendation.account_id,
                Recommendation.contact_id,
                Recommendation.content_id,
                Feedback.outcome,
                Feedback.at,
                Feedback.note,
            )
            .join(Recommendation, Recommendation.id == Feedback.recommendation_id)
            .where(Recommendation.account_id == account_id, Feedback.at >= to_ns(since))
            .order_by(Feedback.at, Feedback.id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            FeedbackRecord(
                id=r.id,
                recommendation_id=r.recommendation_id,
                account_id=r.account_id,
                contact_id=r.contact_id,
                content_id=r.content_id,
                outcome=r.outcome,
                at=from_ns(r.at),
                note=r.note,
            )
            for r in rows
        ]

    # -- API keys --------------------------------------------------------------------------

    def create_api_key(self, name: str, scopes: Iterable[str]) -> str:
        """Create a key and return its plaintext (the only time it is available: only a
        salted SHA-256 of the secret is stored). Raises :class:`UnknownScopeError` and
        :class:`DuplicateApiKeyError` (an active key has this name)."""
        wanted = sorted(set(scopes))
        unknown = [s for s in wanted if s not in API_KEY_SCOPES]
        if unknown or not wanted:
            raise UnknownScopeError(
                f"api key scopes {unknown or wanted!r}: expected one or more of "
                + ", ".join(API_KEY_SCOPES)
            )
        if not name.strip():
            raise ApiKeyError("api key name is empty; expected a name such as 'crm-widget'")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        row = {
            "key_id": key_id,
            "name": name,
            "salt": salt,
            "key_hash": _hash_secret(salt, secret),
            "scopes": wanted,
            "created_at": to_ns(pd.Timestamp.now(tz="UTC")),
            "revoked_at": None,
        }
        try:
            with self._write() as conn:
                conn.execute(insert(_TABLES["api_keys"]), row)
        except IntegrityError as exc:
            raise DuplicateApiKeyError(
                f"api key name {name!r} is in use by an active key; revoke it first or "
                "choose another name"
            ) from exc
        return f"{_KEY_PREFIX}_{key_id}_{secret}"

    def verify_api_key(self, plaintext: str) -> ApiKey | None:
        """The active key ``plaintext`` belongs to, or None (unknown, malformed or revoked).
        The secret is compared in constant time."""
        parts = plaintext.split("_", 2) if isinstance(plaintext, str) else []
        valid_shape = len(parts) == 3 and parts[0] == _KEY_PREFIX and len(parts[1]) == 16
        row = None
        if valid_shape:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(ApiKeyRow).where(
                        ApiKeyRow.key_id == parts[1], ApiKeyRow.revoked_at.is_(None)
                    )
                ).one_or_none()
        if row is None:
            # Same work as a real check, so timing does not tell which ids exist.
            hmac.compare_digest(_hash_secret(b"\0" * 16, plaintext or ""), b"\0" * 32)
            return None
        if not hmac.compare_digest(_hash_secret(row.salt, parts[2]), row.key_hash):
            return None
        return _api_key(row)

    def revoke_api_key(self, name: str) -> None:
        """Revoke the active key called ``name``; raises :class:`UnknownApiKeyError`."""
        with self._write() as conn:
            result = conn.execute(
                update(_TABLES["api_keys"])
                .where(ApiKeyRow.name == name, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=to_ns(pd.Timestamp.now(tz="UTC")))
            )
        if result.rowcount == 0:
            raise UnknownApiKeyError(f"no active api key is named {name!r}")

    def api_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(ApiKeyRow).order_by(ApiKeyRow.id)).all()
        return [_api_key(r) for r in rows]


def _enable_wal(cursor: Any) -> None:
    """Put the SQLite file in WAL mode (persistent, so usually already there). Switching
    needs a moment without other connections and does not wait on the busy timeout, so
    processes opening a new file at once retry for a while."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() == "wal" or str(mode).lower() == "memory":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _hash_secret(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        scopes=frozenset(row.scopes),
        created_at=from_ns(row.created_at),
        revoked_at=None if row.revoked_at is None else from_ns(row.revoked_at),
    )


def _json_value(value: Any) -> Any:
    """A JSON-safe scalar: numpy numbers as Python numbers, every missing value as None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"feature value {value!r} ({type(value).__name__}) cannot be cached")


def _canonical_frame(name: str, rows: Sequence[Any], taxonomy: Taxonomy) -> pd.DataFrame:
    """Database rows of table ``name`` as a frame in the canonical dtypes of
    ``features.schema`` (times from ns, vocabulary columns as the taxonomy's categories).

    Built column by column with the dtype's own constructor: on the per-request path
    (one account, ~100 rows) generic ``astype`` calls would cost more than the queries."""
    out: dict[str, Any] = {}
    for position, column in enumerate(TABLES[name].columns):
        values = [r[position] for r in rows]
        if column.kind == "datetime":
            ns = np.array([_NAT if v is None else v for v in values], dtype=np.int64)
            out[column.name] = pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC")
        elif column.kind == "list":
            lists = np.empty(len(values), dtype=object)
            lists[:] = [list(v) for v in values]
            out[column.name] = lists
        elif column.kind in ("int", "float"):
            # np.float64 turns None into NaN; whole numbers stay int64 when none is missing.
            numbers = np.array(values, dtype=np.float64)
            if column.kind == "int" and not np.isnan(numbers).any():
                numbers = np.array(values, dtype=np.int64)
            out[column.name] = numbers
        elif column.kind == "category":
            assert column.vocabulary is not None
            vocabulary = pd.CategoricalDtype(taxonomy.vocabulary(column.vocabulary))
            out[column.name] = pd.Categorical(values, dtype=vocabulary)
        else:
            out[column.name] = pd.array(values, dtype="str")
    return pd.DataFrame(out, index=pd.RangeIndex(len(rows)), copy=False)


_NAT = np.iinfo(np.int64).min  # NaT as int64 nanoseconds


def _schema_select(name: str) -> Any:
    """SELECT of table ``name``'s data-contract columns, in ``features.schema`` order."""
    table = _TABLES[name]
    return select(*(table.c[c] for c in TABLES[name].names))


def _db_rows(name: str, frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """A canonical frame's rows as tuples of database values (Python scalars, None for
    missing, times in ns, lists as JSON text), in ``TABLES[name]`` column order."""
    columns: list[list[Any]] = []
    for column in TABLES[name].columns:
        if column.name not in frame:
            columns.append([None] * len(frame))
            continue
        series = frame[column.name]
        missing = series.isna().to_numpy() if column.kind != "list" else None
        if column.kind == "datetime":
            ns = pd.to_datetime(series, utc=True).to_numpy(dtype="datetime64[ns]").view(np.int64)
            values: np.ndarray = ns.astype(object) if missing is not None and missing.any() else ns
        elif column.kind == "category" and isinstance(series.dtype, pd.CategoricalDtype):
            lookup = np.array([*map(str, series.cat.categories), None], dtype=object)
            columns.append(lookup[series.cat.codes.to_numpy()].tolist())
            continue
        elif column.kind == "int":
            if missing is not None and missing.any():
                columns.append(
                    [None if m else int(v) for v, m in zip(series, missing, strict=True)]
                )
                continue
            values = series.to_numpy(dtype=np.int64)
        elif column.kind == "float":
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        elif column.kind == "list":
            columns.append([json.dumps(list(v)) for v in series])
            continue
        else:
            columns.append(series.to_numpy(dtype=object, na_value=None).tolist())  # type: ignore[call-overload]
            continue
        if missing is not None and missing.any():
            values = values.astype(object)
            values[missing] = None
        columns.append(values.tolist())
    return list(zip(*columns, strict=True))
