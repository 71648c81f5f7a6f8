"""The online posterior's counts in the store: a decision counts once as a trial, however
often it is logged, and once as a success, by feedback or by a response touchpoint within
the week after it; impressions and decisions outside a segment count nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from features.taxonomy import Taxonomy, load_taxonomy
from serving.store import NewRecommendation, Store
from tests.utils.store import BACKENDS, open_store

T0 = pd.Timestamp("2025-03-03 09:00", tz="UTC")
VERSIONS = {"nba-next-content": "4"}


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, taxonomy: Taxonomy) -> Iterator[Store]:
    with open_store(request.param, tmp_path, taxonomy) as opened:
        yield opened


def _decision(content_id: str, *, kind: str = "decision", segment: str | None = "selection"):  # type: ignore[no-untyped-def]
    return NewRecommendation(
        request_id="q",
        account_id="A1",
        content_id=content_id,
        rank=1,
        expected_value=0.1,
        propensity=0.5,
        policy="p/thompson",
        model_versions=VERSIONS,
        kind=kind,  # type: ignore[arg-type]
        segment=segment,
    )


def _event(event_id: str, content_id: str, at: pd.Timestamp, event_type: str = "download") -> dict:  # type: ignore[type-arg]
    return {
        "event_id": event_id,
        "account_id": "A1",
        "ts": at.isoformat(),
        "channel": "website",
        "event_type": event_type,
        "content_id": content_id,
    }


def test_trials_and_rewards_count_once(store: Store) -> None:
    decision = _decision("C007")
    [rec_id] = store.log_recommendations([decision], served_at=T0)
    store.log_recommendations([decision], served_at=T0)  # a journal replay stores nothing twice
    store.log_recommendations([_decision("C007", kind="impression")], served_at=T0)
    store.log_recommendations([_decision("C009", segment=None)], served_at=T0)
    assert store.posterior_counts("4") == {("selection", "C007"): (1, 0)}

    later = T0 + pd.Timedelta(days=2)
    store.record_feedback(rec_id, "shown", at=later)  # not a response
    assert store.posterior_counts("4")[("selection", "C007")] == (1, 0)
    store.record_feedback(rec_id, "converted", at=later)
    store.ingest_events([_event("E1", "C007", later)], now=later)  # the same response again
    assert store.posterior_counts("4")[("selection", "C007")] == (1, 1)
    assert store.posterior_counts("5") == {}  # another model version starts from its prior


def test_a_response_counts_within_the_week_after_the_decision(store: Store) -> None:
    store.log_recommendations([_decision("C007")], served_at=T0)
    store.log_recommendations([_decision("C009")], served_at=T0)
    late = T0 + pd.Timedelta(days=8)
    soon = T0 + pd.Timedelta(hours=5)
    store.ingest_events(
        [
            _event("E1", "C007", late),  # after the week: not this decision's response
            _event("E2", "C009", soon, event_type="view"),  # not a response type
        ],
        now=late,
    )
    assert store.posterior_counts("4") == {
        ("selection", "C007"): (1, 0),
        ("selection", "C009"): (1, 0),
    }
    store.ingest_events([_event("E3", "C009", soon)], now=late)
    assert store.posterior_counts("4")[("selection", "C009")] == (1, 1)


def test_feedback_on_an_impression_rewards_its_decision(store: Store) -> None:
    store.log_recommendations([_decision("C007")], served_at=T0)
    [shown_again] = store.log_recommendations(
        [_decision("C007", kind="impression")], served_at=T0 + pd.Timedelta(hours=1)
    )
    store.record_feedback(shown_again, "accepted", at=T0 + pd.Timedelta(hours=2))
    assert store.posterior_counts("4") == {("selection", "C007"): (1, 1)}
