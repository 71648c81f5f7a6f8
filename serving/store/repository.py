"""The service's store: journey data, served recommendations, feedback and API keys, over
SQLite (default, a file, WAL mode) or PostgreSQL (by URL, psycopg 3).

:class:`Store` is the only way the service touches the database. It is one object made of
one part per concern, each in its own module:

- ``engine``: the connection, write transactions, migrations, ping;
- ``journey``: ingesting events, reading accounts and the content catalog;
- ``bulk``: loading whole tables and the catalog;
- ``decisions``: the served-recommendation log, feedback, per-account decision state;
- ``api_keys``: creating, verifying and revoking API keys;
- ``scores``: stored account scores and the worklist's read of a rep's accounts;
- ``contract``: the whole store as the data contract's tables (``nba export``).

Its schema comes from the Alembic migrations shipped in ``serving/store/migrations``
(:meth:`Store.migrate`), never from ad-hoc DDL. Times cross this interface as UTC
``pd.Timestamp`` (anything ``pd.Timestamp`` accepts goes in; naive means UTC) and are stored
as nanoseconds since the epoch (see ``serving.store.tables``).

Writes run one transaction each; on SQLite it starts with ``BEGIN IMMEDIATE`` so writers
from several worker processes queue on the busy timeout instead of failing with "database is
locked" when a read turns into a write.
"""

from __future__ import annotations

from serving.store.api_keys import ApiKeyStore
from serving.store.bulk import BulkLoader
from serving.store.contract import ContractReader
from serving.store.decisions import DecisionLog
from serving.store.scores import ScoreStore


class Store(BulkLoader, ContractReader, DecisionLog, ApiKeyStore, ScoreStore):
    """The store at ``url`` (``sqlite:///path.db`` or ``postgresql://...``).

    ``taxonomy`` decides which channels, event types, roles, ... ingested events may name,
    and the categories of the frames :meth:`account_data` returns. ``schema`` (PostgreSQL
    only) puts every table in that schema (created by :meth:`migrate`), e.g. to isolate
    tests. Nothing is created until :meth:`migrate` runs.
    """

    def migrate(self, revision: str = "head") -> str:
        """Bring the schema to the newest migration (or ``revision``; a no-op when it is
        there already) and add the taxonomy's content catalog items the store lacks. Safe to
        run from several processes at once: they take a lock and migrate one after the
        other. Returns the schema revision."""
        self._upgrade(revision)
        self.load_content(self.taxonomy.content_frame(), replace=False)
        return self.revision() or ""
