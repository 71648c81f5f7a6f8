"""Request and response bodies of the ``/v1`` API, with the examples OpenAPI shows.

Events are taken as plain JSON objects (``dict``), not validated here: the store validates
each record on its own (``serving.store.ingest``) so one bad record is answered with its
index, field and reason while the valid ones are stored. Everything else is validated by
these models (a wrong type or value answers 422 naming the field); every id in a body, path
or query is an :data:`Id` (the store's id rule, ``serving.store.values.ID_RULE``).

One module per part of the API (``events``, ``recommendations``, ``feedback``, ``reps``,
``health``) over ``common`` (ids, the answer base class, JSON values); every name is
imported from this package.
"""

from serving.schemas.common import (
    ID_DOC,
    AccountIdPath,
    ChurnBandName,
    ContactIdQuery,
    Id,
    Out,
    Outcome,
    RepIdPath,
    Text,
    json_value,
)
from serving.schemas.events import (
    EVENT_EXAMPLE,
    EventsRequest,
    EventsResponse,
    RecordErrorOut,
)
from serving.schemas.feedback import (
    FeedbackRequest,
    FeedbackResponse,
)
from serving.schemas.health import (
    ReadyResponse,
)
from serving.schemas.recommendations import (
    ActionOut,
    ChangesOut,
    HeldBackOut,
    ReasonOut,
    RecommendationsRequest,
    RecommendationsResponse,
    WhyNowOut,
)
from serving.schemas.reps import (
    WorklistItem,
    WorklistResponse,
)

__all__ = [
    "AccountIdPath",
    "ActionOut",
    "ChangesOut",
    "ChurnBandName",
    "ContactIdQuery",
    "EVENT_EXAMPLE",
    "EventsRequest",
    "EventsResponse",
    "FeedbackRequest",
    "FeedbackResponse",
    "HeldBackOut",
    "ID_DOC",
    "Id",
    "Out",
    "Outcome",
    "ReadyResponse",
    "ReasonOut",
    "RecommendationsRequest",
    "RecommendationsResponse",
    "RecordErrorOut",
    "RepIdPath",
    "Text",
    "WhyNowOut",
    "WorklistItem",
    "WorklistResponse",
    "json_value",
]
