"""The service's storage layer: SQLAlchemy over SQLite (default) or PostgreSQL, schema by
Alembic migrations. :class:`Store` is the entry point; see ``repository`` for the API and
``ingest`` for the event contract of ``POST /v1/events``."""

from serving.store.ingest import MAX_BATCH_EVENTS, IngestResult, RecordError
from serving.store.repository import (
    API_KEY_SCOPES,
    DEFAULT_DATABASE_URL,
    AccountActivity,
    ApiKey,
    ApiKeyError,
    BatchTooLargeError,
    CachedFeatures,
    DuplicateApiKeyError,
    FeedbackRecord,
    InvalidOutcomeError,
    LoadResult,
    NewRecommendation,
    ServedRecommendation,
    Store,
    StoreError,
    UnknownApiKeyError,
    UnknownRecommendationError,
    UnknownScopeError,
    database_url,
    from_ns,
    to_ns,
)
from serving.store.served_log import ServedLog
from serving.store.tables import FEEDBACK_OUTCOMES

__all__ = [
    "AccountActivity",
    "API_KEY_SCOPES",
    "DEFAULT_DATABASE_URL",
    "FEEDBACK_OUTCOMES",
    "MAX_BATCH_EVENTS",
    "ApiKey",
    "ApiKeyError",
    "BatchTooLargeError",
    "CachedFeatures",
    "DuplicateApiKeyError",
    "FeedbackRecord",
    "IngestResult",
    "InvalidOutcomeError",
    "LoadResult",
    "NewRecommendation",
    "RecordError",
    "ServedLog",
    "ServedRecommendation",
    "Store",
    "StoreError",
    "UnknownApiKeyError",
    "UnknownRecommendationError",
    "UnknownScopeError",
    "database_url",
    "from_ns",
    "to_ns",
]
