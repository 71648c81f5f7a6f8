"""``POST /v1/events``: the records taken and the answer naming each rejected one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from serving.schemas.common import (
    ID_DOC,
    Out,
)

EVENT_EXAMPLE: dict[str, Any] = {
    "event_id": "E-2024-05-01-0001",
    "account_id": "A00017",
    "contact_id": "P00017-2",
    "ts": "2024-05-01T12:00:00Z",
    "channel": "webinar",
    "event_type": "attend",
    "content_id": "C040",
    "value": 45,
    "account": {
        "name": "Hoffmann Logistik GmbH",
        "industry": "software",
        "employees": 50,
        "region": "dach",
        "owner_rep_id": "R01",
    },
    "contact": {"name": "Jana Weber", "role": "it"},
}


class EventsRequest(BaseModel):
    """A batch of touchpoint records (at most ``NBA_MAX_EVENTS_PER_REQUEST``, 10,000 by
    default). Each record has the touchpoint columns of the data contract (event_id,
    account_id, contact_id, ts, channel, event_type, content_id, value) and optionally
    ``account`` / ``contact`` objects describing an account or contact (its name, role,
    firmographics; what they give replaces the stored value)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"events": [EVENT_EXAMPLE]}]},
    )

    events: list[dict[str, Any]] = Field(
        description=(
            "Touchpoint records; each is validated on its own (a bad one is rejected with its "
            f"index, field and reason). {ID_DOC} Integers fit in 64 bits (employees, value) "
            "and numbers are finite."
        ),
    )


class RecordErrorOut(Out):
    """Why one record was rejected."""

    index: int = Field(description="0-based position of the record in the batch.")
    field: str = Field(description="The field at fault (dotted for nested), empty for the record.")
    reason: str


class EventsResponse(Out):
    """What happened to the batch: valid records are stored even when others fail."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "accepted": 498,
                    "duplicates": 1,
                    "rejected": [
                        {
                            "index": 17,
                            "field": "channel",
                            "reason": "channel 'fax' is unknown; expected one of: ...",
                        }
                    ],
                }
            ]
        },
    )

    accepted: int = Field(description="Records stored now.")
    duplicates: int = Field(
        description="Records whose event_id was stored before (stored nothing)."
    )
    rejected: list[RecordErrorOut]
