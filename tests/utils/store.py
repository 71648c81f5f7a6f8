"""The store backends the tests run on (SQLite, and the local PostgreSQL when it answers),
opening a fresh migrated store on one of them, and reading the recommendation log back."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import create_engine, select

from features.attributes import NO_ATTRIBUTES, AttributeDeclaration
from features.taxonomy import Taxonomy
from features.timestamps import to_ns
from serving.store import Store
from serving.store.tables import Recommendation

FAR_PAST = pd.Timestamp(0, tz="UTC")
POSTGRES_URL = os.environ.get(
    "NBA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_available() -> bool:
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


POSTGRES_AVAILABLE = _postgres_available()
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not POSTGRES_AVAILABLE, reason=f"no PostgreSQL at {POSTGRES_URL}"),
        ],
    ),
]


@contextmanager
def open_store(
    backend: str,
    directory: Path,
    taxonomy: Taxonomy,
    *,
    revision: str = "head",
    attributes: AttributeDeclaration = NO_ATTRIBUTES,
) -> Iterator[Store]:
    """A migrated (to ``revision``), empty store: a new SQLite file, or a new PostgreSQL
    schema that is dropped afterwards (so parallel and repeated runs never see each other's
    rows). Ingestion accepts the custom ``attributes``."""
    if backend == "sqlite":
        store = Store(f"sqlite:///{directory / 'store.db'}", taxonomy, attributes=attributes)
        store.migrate(revision)
        try:
            yield store
        finally:
            store.dispose()
        return
    schema = f"test_store_{uuid.uuid4().hex[:12]}"
    store = Store(POSTGRES_URL, taxonomy, schema=schema, attributes=attributes)
    try:
        store.migrate(revision)
        yield store
    finally:
        store.dispose()
        engine = create_engine(POSTGRES_URL)
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()


def logged_recommendations(
    store: Store, account_id: str, since: pd.Timestamp = FAR_PAST
) -> list[Any]:
    """The recommendation log's rows for an account served at or after ``since``, oldest
    first (served_at in ns since the epoch)."""
    query = (
        select(Recommendation.__table__)
        .where(Recommendation.account_id == account_id, Recommendation.served_at >= to_ns(since))
        .order_by(Recommendation.served_at, Recommendation.request_id, Recommendation.rank)
    )
    with store.engine.connect() as conn:
        return list(conn.execute(query).all())
