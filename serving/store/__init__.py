"""The service's storage layer: SQLAlchemy over SQLite (default) or PostgreSQL, schema by
Alembic migrations. :class:`Store` is the entry point (``repository``), made of one part
per concern: ``engine``, ``journey``, ``bulk``, ``decisions``, ``api_keys``, ``scores``; ``ingest``
holds the event contract of ``POST /v1/events``."""

from serving.store.api_keys import (
    API_KEY_SCOPES,
    ApiKey,
    ApiKeyError,
    DuplicateApiKeyError,
    InvalidRepError,
    UnknownApiKeyError,
    UnknownScopeError,
)
from serving.store.bulk import LoadResult
from serving.store.decisions import (
    AccountActivity,
    InvalidOutcomeError,
    NewRecommendation,
    OtherRepsAccountError,
    UnknownRecommendationError,
)
from serving.store.engine import DEFAULT_DATABASE_URL, StoreBusyError, StoreError, database_url
from serving.store.feature_states import StateRead
from serving.store.ingest import MAX_BATCH_EVENTS, IngestResult, RecordError
from serving.store.journey import BatchTooLargeError
from serving.store.posteriors import REWARDING_OUTCOMES
from serving.store.repository import Store
from serving.store.scores import NewScore, RepAccount
from serving.store.served_journal import JournalError, default_journal_dir
from serving.store.served_log import ServedLog
from serving.store.tables import FEEDBACK_OUTCOMES

__all__ = [
    "AccountActivity",
    "API_KEY_SCOPES",
    "DEFAULT_DATABASE_URL",
    "FEEDBACK_OUTCOMES",
    "MAX_BATCH_EVENTS",
    "REWARDING_OUTCOMES",
    "ApiKey",
    "ApiKeyError",
    "BatchTooLargeError",
    "DuplicateApiKeyError",
    "IngestResult",
    "JournalError",
    "InvalidOutcomeError",
    "InvalidRepError",
    "LoadResult",
    "NewRecommendation",
    "NewScore",
    "OtherRepsAccountError",
    "RecordError",
    "RepAccount",
    "ServedLog",
    "Store",
    "StateRead",
    "StoreBusyError",
    "StoreError",
    "UnknownApiKeyError",
    "UnknownRecommendationError",
    "UnknownScopeError",
    "database_url",
    "default_journal_dir",
]
