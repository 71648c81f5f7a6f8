"""Bulk loading of journey data into the store (``nba load``, the catalog at migration):
executemany on SQLite, COPY through a staging table on PostgreSQL, in chunks that are each
their own transaction."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, update

from features.schema import TABLE_ORDER, TABLES, JourneyData
from serving.store.frames import db_rows
from serving.store.journey import JourneyStore
from serving.store.tables import BY_NAME, Account

# Rows per executemany / COPY chunk (and per transaction) when bulk loading.
LOAD_CHUNK_ROWS = 200_000
# Tables whose stored rows a load updates (the data wins); events already stored are kept.
_REPLACED = ("accounts", "contacts", "content")

ProgressCallback = Callable[[str, int, int], None]


@dataclass
class LoadResult:
    """Rows each table had in the input and rows newly stored (existing ids are kept for
    events, updated for accounts, contacts and content), and the seconds it took."""

    input_rows: dict[str, int]
    stored_rows: dict[str, int]
    seconds: float


class BulkLoader(JourneyStore):
    """Journey data written in bulk: whole tables, and the content catalog."""

    def load_content(self, content: pd.DataFrame, *, replace: bool = True) -> int:
        """Store catalog items (a ``content`` table); existing ids are updated when
        ``replace``, kept otherwise. Returns the rows written."""
        with self._write() as conn:
            written = self._bulk_insert(conn, "content", content, replace=replace)
        self._refresh_content()
        return written

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

        Accounts, contacts and content are upserted (the data wins; a value it lacks keeps
        the stored one); touchpoints, stages and
        exposures already stored are kept (loading twice stores nothing twice). Each chunk
        of ``chunk_rows`` is its own transaction, so an interrupted load can simply be run
        again. ``progress(table, rows_done, rows_total)`` is called after each chunk. Every
        account's data version is bumped.
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
                            conn, name, chunk, replace=name in _REPLACED
                        )
                    if progress is not None:
                        progress(name, min(start + chunk_rows, len(frame)), len(frame))
                if progress is not None and len(frame) == 0:
                    progress(name, 0, 0)
        with self._write() as conn:
            conn.execute(update(BY_NAME["accounts"]).values(data_version=Account.data_version + 1))
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
        rows = db_rows(name, frame)
        if not rows:
            return 0
        keys = [c.name for c in BY_NAME[name].primary_key.columns]
        if name == "stages":
            keys = ["account_id", "ts", "phase"]
        names = ", ".join(columns)
        if replace:
            # The data wins, but a value it lacks keeps the stored one (as ingestion does):
            # loading bare accounts or content named by events erases nothing known.
            updates = ", ".join(
                f"{c} = COALESCE(excluded.{c}, {name}.{c})" for c in columns if c not in keys
            )
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
