"""The store's connection to its database: URL checks, the engine (SQLite in WAL mode with a
busy timeout and ``BEGIN IMMEDIATE`` writers; PostgreSQL through psycopg 3, optionally in
its own schema), write transactions, Alembic migrations, ping and dispose.

:class:`Database` is the base every part of the store builds on (see
``serving.store.repository``)."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, Table, create_engine, event, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from features.errors import InvalidInputError
from serving.store.tables import Base

DEFAULT_DATABASE_URL = "sqlite:///nba.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Bound parameters per IN (...) lookup; SQLite allows 32,766.
IN_CHUNK = 5_000
_MIGRATION_LOCK_KEY = 0x6E62615F6D6967  # "nba_mig": PostgreSQL advisory lock for migrations
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class StoreError(InvalidInputError):
    """A database URL or schema the store cannot use."""


def database_url(url: str) -> str:
    """``url`` with PostgreSQL URLs pointed at the psycopg 3 driver
    (``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://``)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def alembic_config() -> Config:
    """The Alembic configuration of the store's migrations (``serving/store/migrations``);
    hand it a connection in ``attributes["connection"]``."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("serving.store") / "migrations"))
    config.set_main_option("path_separator", "os")
    return config


class Database:
    """The database at ``url`` (``sqlite:///path.db`` or ``postgresql://...``); ``schema``
    (PostgreSQL only) puts every table in that schema (created by :meth:`_upgrade`)."""

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = database_url(url)
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
        self.engine = _sqlite_engine(self.url) if backend == "sqlite" else self._pg_engine()

    def _pg_engine(self) -> Engine:
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

    def _insert(self, table: Table) -> Any:
        """A dialect insert (with ``on_conflict_*``) of ``table``."""
        dialect_insert = sqlite.insert if self.dialect == "sqlite" else postgresql.insert
        return dialect_insert(table)

    def _upgrade(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to ``revision`` (a no-op when the schema is there
        already), under a lock so processes starting at once migrate one after the other."""
        config = alembic_config()
        with self._migration_connection() as conn, conn.begin():
            if self.dialect == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
                if self.schema is not None:
                    conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            if self.dialect == "sqlite":
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise StoreError(
                        f"migrating to {revision} breaks foreign keys, e.g. {broken[:3]}; "
                        "expected every reference to resolve"
                    )

    @contextmanager
    def _migration_connection(self) -> Iterator[Connection]:
        """A connection for migrations (writes begin immediately). On SQLite foreign keys
        are off meanwhile, as SQLite's procedure for changing a table asks: batch mode
        rebuilds a table by dropping it, which the rows referring to it would otherwise
        forbid; :meth:`_upgrade` checks the keys before it commits."""
        with self.engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            if self.dialect != "sqlite":
                yield conn
                return
            # PRAGMA foreign_keys is ignored inside a transaction: set it before one begins.
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")
            try:
                yield conn
            finally:
                raw.execute("PRAGMA foreign_keys=ON")

    def revision(self) -> str | None:
        """The schema's migration revision, None before the first migration."""
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


def _sqlite_engine(url: str) -> Engine:
    """An engine for the SQLite file at ``url``: WAL mode, a busy timeout, foreign keys on,
    and transactions begun by SQLAlchemy (``sqlite_begin`` execution option: DEFERRED or
    IMMEDIATE)."""
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

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
