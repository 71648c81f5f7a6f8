"""Names of accounts and contacts in the store: loaded, ingested, read back with the
request path's activity, with what happened since the last visit; missing names stay
missing (the answers fall back to ids)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from features.taxonomy import Taxonomy, load_taxonomy
from features.timestamps import to_ns
from serving.store import NewRecommendation, Store
from tests.utils.data import make_tiny_data
from tests.utils.store import BACKENDS, open_store

T0 = pd.Timestamp("2024-03-01 12:00", tz="UTC")
NOW = pd.Timestamp("2024-07-01", tz="UTC")


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, taxonomy: Taxonomy) -> Iterator[Store]:
    with open_store(request.param, tmp_path, taxonomy) as opened:
        data = make_tiny_data(taxonomy)
        # A1 and its contact P1 are named; the others are known by id only
        data.accounts["name"] = pd.Series(["Hoffmann Logistik GmbH", None, None], dtype="str")
        data.contacts["name"] = pd.Series(["Jana Weber", None, None, None, None], dtype="str")
        opened.load_data(data)
        yield opened


def _served(account_id: str, content_id: str) -> NewRecommendation:
    return NewRecommendation(
        request_id="req-1",
        account_id=account_id,
        contact_id="P1",
        content_id=content_id,
        rank=1,
        expected_value=0.2,
        propensity=1.0,
        policy="test",
    )


def test_names_are_loaded_and_read_back_and_missing_ones_stay_missing(store: Store) -> None:
    data = store.account_data("A1")
    assert data is not None
    assert data.accounts["name"].tolist() == ["Hoffmann Logistik GmbH"]
    names = data.contacts.set_index("contact_id")["name"]
    assert names["P1"] == "Jana Weber" and pd.isna(names["P2"])
    other = store.account_data("A2")
    assert other is not None and other.accounts["name"].isna().all()


def test_activity_holds_names_and_what_happened_since_the_last_visit(store: Store) -> None:
    week_ago = NOW - pd.Timedelta(days=7)
    never = store.account_activity("A1", served_since=week_ago, dismissed_since=week_ago)
    assert never is not None and never.name == "Hoffmann Logistik GmbH"
    assert never.contact_names == {"P1": "Jana Weber"}  # P2 has no name: left out
    assert never.last_served_ns is None and never.events_since == {}

    store.log_recommendations([_served("A1", "C007")], served_at=T0)
    activity = store.account_activity("A1", served_since=week_ago, dismissed_since=week_ago)
    assert activity is not None and activity.last_served_ns == to_ns(T0)
    # A1's touchpoints after 2024-03-01 12:00: a reply, a download, a meeting
    assert activity.events_since == {"reply": 1, "download": 1, "meeting": 1}
    unnamed = store.account_activity("A2", served_since=week_ago, dismissed_since=week_ago)
    assert unnamed is not None and unnamed.name is None and unnamed.contact_names == {}


def test_ingested_accounts_and_contacts_carry_names(store: Store) -> None:
    base = {"ts": "2024-06-20T10:00:00Z", "channel": "website", "event_type": "download"}
    result = store.ingest_events(
        [
            {
                **base,
                "event_id": "N1",
                "account_id": "A9",
                "contact_id": "P9",
                "account": {"name": "Brightline Analytics Ltd", "region": "uk_ireland"},
                "contact": {"name": "Oliver Smith", "role": "it"},
            },
            # a known contact named later keeps its role; a known account its region
            {
                **base,
                "event_id": "N2",
                "account_id": "A1",
                "contact_id": "P2",
                "contact": {"name": "Lukas Koch"},
            },  # fmt: skip
            {**base, "event_id": "N3", "account_id": "A1", "account": {"name": " "}},
            {
                **base,
                "event_id": "N4",
                "account_id": "A1",
                "contact_id": "P1",
                "contact": {"name": 7},
            },  # fmt: skip
        ],
        now=NOW,
    )
    assert result.accepted == 2
    assert [(e.index, e.field) for e in result.rejected] == [
        (2, "account.name"),
        (3, "contact.name"),
    ]
    assert "expected a non-empty string" in result.rejected[0].reason
    new = store.account_data("A9")
    assert new is not None
    assert new.accounts[["name", "region"]].astype(str).values.tolist() == [
        ["Brightline Analytics Ltd", "uk_ireland"]
    ]
    assert new.contacts[["name", "role"]].astype(str).values.tolist() == [["Oliver Smith", "it"]]
    known = store.account_data("A1")
    assert known is not None
    contacts = known.contacts.set_index("contact_id")
    assert contacts.loc["P2", "name"] == "Lukas Koch" and contacts.loc["P2", "role"] == "it"
    assert contacts.loc["P1", "name"] == "Jana Weber"  # not named again: kept
    assert known.accounts["name"].tolist() == ["Hoffmann Logistik GmbH"]
