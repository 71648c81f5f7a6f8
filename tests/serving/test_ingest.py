"""Event ingestion: per-record validation (pure) and storing batches idempotently, on SQLite
and the local PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.pipeline import build_account_features
from features.schema import JourneyData
from features.taxonomy import Taxonomy, load_taxonomy
from features.timestamps import to_ns
from serving.store import BatchTooLargeError, RecordError, Store
from serving.store.ingest import validate_events
from tests.utils.data import make_tiny_data
from tests.utils.store import BACKENDS, open_store

NOW = pd.Timestamp("2025-01-01", tz="UTC")


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, taxonomy: Taxonomy) -> Iterator[Store]:
    with open_store(request.param, tmp_path, taxonomy) as opened:
        yield opened


def event(eid: str, **changes: Any) -> dict[str, Any]:
    """A valid record ``eid`` for account A1 (contact P1), changed by ``changes`` (None
    removes a field)."""
    record: dict[str, Any] = {
        "event_id": eid,
        "account_id": "A1",
        "contact_id": "P1",
        "ts": "2024-06-20T10:00:00Z",
        "channel": "website",
        "event_type": "download",
        "content_id": "C027",
        "value": None,
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not None or k == "value"}


# -- validation (no database) ----------------------------------------------------------------------


def _errors(records: list[Any], taxonomy: Taxonomy) -> list[RecordError]:
    valid = validate_events(
        records,
        taxonomy,
        content_ids={"C027", "C040"},
        contact_accounts={"P1": "A1", "P3": "A2"},
        now_ns=to_ns(NOW),
    )
    return valid.errors


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        ("not an object", "", "not a JSON object (got str)"),
        (event("E1", event_id=None), "event_id", "missing value; expected a non-empty string"),
        (event("E1", account_id=7), "account_id", "invalid account_id 7; expected a non-empty"),
        (event("E1", ts=None), "ts", "missing value; expected an ISO 8601 timestamp"),
        (event("E1", ts="yesterday"), "ts", "unparseable timestamp 'yesterday'; expected an ISO"),
        (event("E1", ts="2024-13-01"), "ts", "unparseable timestamp '2024-13-01'"),
        (
            event("E1", ts="2025-06-01T00:00:00Z"),
            "ts",
            "timestamp in the future (2025-06-01T00:00:00Z); expected a time before now "
            "(2025-01-01 00:00:00 UTC)",
        ),
        (event("E1", channel="fax"), "channel", "unknown channel 'fax'; expected one of: "),
        (event("E1", event_type=None), "event_type", "missing value; expected one of: "),
        (event("E1", content_id="C999"), "content_id", "unknown content_id 'C999'; expected an"),
        (event("E1", value="12"), "value", "non-numeric value '12'; expected a number"),
        (event("E1", value=True), "value", "non-numeric value True; expected a number"),
        (
            event("E1", contact_id="P3"),
            "contact_id",
            "contact 'P3' belongs to account 'A2', not 'A1'",
        ),
        (event("E1", colour="red"), "colour", "unknown field; expected event_id, account_id"),
        (
            event("E1", account={"industry": "mining"}),
            "account.industry",
            "unknown industry 'mining'; expected one of: manufacturing",
        ),
        (
            event("E1", account={"employees": -3}),
            "account.employees",
            "invalid employees -3; expected a whole number >= 0",
        ),
        (event("E1", account=[1]), "account", "not a JSON object (got list)"),
        (
            event("E1", contact={"role": "ceo"}),
            "contact.role",
            "unknown role 'ceo'; expected one of: economic_buyer",
        ),
        (
            event("E1", contact_id=None, contact={"role": "it"}),
            "contact",
            "contact given without contact_id; expected a contact_id",
        ),
    ],
)
def test_each_invalid_record_is_reported_with_index_field_and_reason(
    record: Any, field: str, reason: str, taxonomy: Taxonomy
) -> None:
    errors = _errors([event("E0"), record], taxonomy)
    assert len(errors) == 1
    assert (errors[0].index, errors[0].field) == (1, field)
    assert errors[0].reason.startswith(reason), errors[0].reason


def test_valid_records_pass_and_merge_account_attributes(taxonomy: Taxonomy) -> None:
    records = [
        event("E1", account_id="N1", contact_id="Q1", ts="2024-05-02T00:00:00+02:00"),
        event("E2", account_id="N1", contact_id="Q1", account={"industry": "retail"}),
        event("E3", account_id="N1", contact_id=None, account={"employees": 40}, value=2.5),
        event("E1", account_id="N1"),  # same event again
    ]
    valid = validate_events(
        records, taxonomy, content_ids={"C027"}, contact_accounts={}, now_ns=to_ns(NOW)
    )
    assert valid.errors == []
    assert valid.duplicates == 1
    assert valid.indexes == [0, 1, 2]
    assert valid.touchpoints[0]["ts"] == to_ns("2024-05-01T22:00:00Z")
    assert valid.touchpoints[2]["value"] == 2.5
    account = valid.accounts["N1"]
    assert (account["industry"], account["employees"]) == ("retail", 40)
    assert account["created_at"] == to_ns("2024-05-01T22:00:00Z")  # its earliest event
    assert valid.contacts["Q1"]["account_id"] == "N1"


# -- storing ---------------------------------------------------------------------------------------


@pytest.fixture
def tiny(taxonomy: Taxonomy) -> JourneyData:
    return make_tiny_data(taxonomy)


def test_replay_stores_nothing_twice(store: Store, tiny: JourneyData) -> None:
    store.load_data(tiny)
    batch = [event(f"N{i}", ts=f"2024-06-2{i}T10:00:00Z") for i in range(5)]
    first = store.ingest_events(batch + [batch[0]], now=NOW)  # E duplicate within the batch
    assert (first.accepted, first.duplicates, first.rejected) == (5, 1, [])
    assert first.account_ids == {"A1"}
    replay = store.ingest_events(batch, now=NOW)
    assert (replay.accepted, replay.duplicates, replay.rejected) == (0, 5, [])
    assert replay.account_ids == set()
    # Events loaded in bulk are duplicates too.
    loaded = store.ingest_events([event("E01", ts="2024-01-08T10:00:00Z")], now=NOW)
    assert (loaded.accepted, loaded.duplicates) == (0, 1)
    assert store.counts()["touchpoints"] == 12 + 5


def test_mixed_batch_keeps_the_valid_records(store: Store, tiny: JourneyData) -> None:
    store.load_data(tiny)
    batch = [
        event("N1"),
        event("N2", channel="fax"),
        event("N3", account_id="A2", contact_id="P3", content_id="C040"),
        event("N4", ts="2031-01-01T00:00:00Z"),
        42,
        event("N5", value=12.5),
    ]
    result = store.ingest_events(batch, now=NOW)
    assert (result.accepted, result.duplicates) == (3, 0)
    assert [(e.index, e.field) for e in result.rejected] == [(1, "channel"), (3, "ts"), (4, "")]
    assert result.account_ids == {"A1", "A2"}
    data = store.account_data("A1")
    assert data is not None
    new = data.touchpoints[data.touchpoints["event_id"].str.startswith("N")]
    assert new["event_id"].tolist() == ["N1", "N5"]
    assert new["value"].tolist()[1] == 12.5
    assert str(new["channel"].dtype) == "category"


def test_unknown_accounts_and_contacts_are_created(store: Store, taxonomy: Taxonomy) -> None:
    result = store.ingest_events(
        [
            event(
                "N1",
                account_id="NEW",
                contact_id="QX",
                ts="2024-03-01T08:00:00Z",
                account={"industry": "energy", "region": "nordics", "owner_rep_id": "R7"},
                contact={"role": "it"},
            ),
            event("N2", account_id="NEW", contact_id="QX", ts="2024-02-01T08:00:00Z"),
            event("N3", account_id="BARE", contact_id=None, ts="2024-02-01T08:00:00Z"),
        ],
        now=NOW,
    )
    assert (result.accepted, result.rejected) == (3, [])
    assert store.accounts_of_rep("R7") == ["NEW"]
    data = store.account_data("NEW")
    assert data is not None
    account = data.accounts.iloc[0]
    assert (account["industry"], account["region"]) == ("energy", "nordics")
    assert account["created_at"] == pd.Timestamp("2024-02-01 08:00", tz="UTC")
    assert pd.isna(account["employees"])
    assert data.contacts[["contact_id", "role"]].values.tolist() == [["QX", "it"]]
    assert data.touchpoints["event_id"].tolist() == ["N2", "N1"]  # by time

    # Later attributes fill in what was unknown and keep what they do not mention.
    store.ingest_events(
        [event("N4", account_id="NEW", contact_id="QX", account={"employees": 80})], now=NOW
    )
    data = store.account_data("NEW")
    assert data is not None
    assert data.accounts[["employees", "industry"]].values.tolist() == [[80.0, "energy"]]
    # Features can be computed for an account known only from its events.
    features = build_account_features(data, "NEW", NOW, taxonomy)
    assert features["n_touchpoints_365d"] == 3


def test_ingested_events_change_the_accounts_features(
    store: Store, tiny: JourneyData, taxonomy: Taxonomy
) -> None:
    store.load_data(tiny)
    as_of = pd.Timestamp("2024-07-01", tz="UTC")
    data = store.account_data("A3")
    assert data is not None
    before = build_account_features(data, "A3", as_of, taxonomy)
    store.ingest_events(
        [
            event("N1", account_id="A3", contact_id="P5", ts="2024-06-25T09:00:00Z"),
            event("N2", account_id="A3", contact_id="P5", ts="2024-06-26T09:00:00Z"),
        ],
        now=NOW,
    )
    data = store.account_data("A3")
    assert data is not None
    after = build_account_features(data, "A3", as_of, taxonomy)
    assert (before["n_touchpoints_30d"], after["n_touchpoints_30d"]) == (0, 2)


def test_ingesting_the_touchpoints_equals_loading_them(
    store: Store, tiny: JourneyData, taxonomy: Taxonomy
) -> None:
    tp = tiny.touchpoints
    frame = tp.astype(object)
    frame["ts"] = tp["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    records: list[object] = list(frame.where(frame.notna(), None).to_dict("records"))
    without_touchpoints = JourneyData(
        accounts=tiny.accounts,
        contacts=tiny.contacts,
        touchpoints=tp.iloc[:0],
        content=tiny.content,
        stages=tiny.stages,
        exposures=tiny.exposures,
    )
    store.load_data(without_touchpoints)
    result = store.ingest_events(records, now=NOW)
    assert (result.accepted, result.rejected) == (12, [])
    for account_id in ("A1", "A2", "A3"):
        data = store.account_data(account_id)
        assert data is not None
        expected = tp[tp["account_id"] == account_id].reset_index(drop=True)
        pd.testing.assert_frame_equal(data.touchpoints, expected)


def test_too_large_a_batch_is_refused(store: Store) -> None:
    with pytest.raises(BatchTooLargeError, match="10,001 events in one batch; expected at most"):
        store.ingest_events([event(f"N{i}") for i in range(10_001)])
