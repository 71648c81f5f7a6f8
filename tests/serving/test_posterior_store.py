"""The online posterior's counts in the store: a decision counts once as a trial with the
successes the model expected of it, however often it is logged, and once as a success, by
feedback or by a response touchpoint within the week after it; impressions and decisions
outside a segment or without the model's probability count nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from features.taxonomy import Taxonomy, load_taxonomy
from serving.store import NewRecommendation, Store
from serving.store.posteriors import PosteriorCounts
from serving.store.served_journal import encode, read_segment
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


def _decision(  # type: ignore[no-untyped-def]
    content_id: str,
    *,
    kind: str = "decision",
    segment: str | None = "selection",
    p_response: float | None = 0.25,
):
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
        p_response=p_response,
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
    [unknown_p] = store.log_recommendations([_decision("C011", p_response=None)], served_at=T0)
    assert store.posterior_counts("4") == {("selection", "C007"): PosteriorCounts(1, 0, 0.25)}
    # a decision the posterior did not count earns it no success either
    store.record_feedback(unknown_p, "accepted", at=T0 + pd.Timedelta(hours=1))
    assert ("selection", "C011") not in store.posterior_counts("4")

    later = T0 + pd.Timedelta(days=2)
    store.record_feedback(rec_id, "shown", at=later)  # not a response
    assert store.posterior_counts("4")[("selection", "C007")] == PosteriorCounts(1, 0, 0.25)
    store.record_feedback(rec_id, "converted", at=later)
    store.ingest_events([_event("E1", "C007", later)], now=later)  # the same response again
    assert store.posterior_counts("4")[("selection", "C007")] == PosteriorCounts(1, 1, 0.25)
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
        ("selection", "C007"): PosteriorCounts(1, 0, 0.25),
        ("selection", "C009"): PosteriorCounts(1, 0, 0.25),
    }
    store.ingest_events([_event("E3", "C009", soon)], now=late)
    assert store.posterior_counts("4")[("selection", "C009")] == PosteriorCounts(1, 1, 0.25)


def test_feedback_on_an_impression_rewards_its_decision(store: Store) -> None:
    store.log_recommendations([_decision("C007")], served_at=T0)
    [shown_again] = store.log_recommendations(
        [_decision("C007", kind="impression")], served_at=T0 + pd.Timedelta(hours=1)
    )
    store.record_feedback(shown_again, "accepted", at=T0 + pd.Timedelta(hours=2))
    assert store.posterior_counts("4") == {("selection", "C007"): PosteriorCounts(1, 1, 0.25)}


def test_expected_successes_add_up_per_key(store: Store) -> None:
    """Each decision adds its own probability (kept off 0 as the posterior keeps it), and
    decisions logged together add up in one key."""
    store.log_recommendations(
        [
            _decision("C007", p_response=0.1),
            _decision("C007", p_response=0.3),
            _decision("C007", p_response=0.0),
        ],
        served_at=T0,
    )
    store.log_recommendations([_decision("C007", p_response=0.2)], served_at=T0)
    counts = store.posterior_counts("4")[("selection", "C007")]
    assert (counts.trials, counts.successes) == (4, 0)
    assert counts.expected == pytest.approx(0.6001)


def test_the_served_journal_carries_the_prediction_and_old_lines_count_nowhere(
    store: Store, tmp_path: Path
) -> None:
    """A journal line keeps the model's probability, so a replayed decision counts as it
    would have; a line written before the probability was kept replays into the log but
    counts in no key (its expected successes are unknown), nor does a response to it."""
    decision = _decision("C007", p_response=0.3).at(T0)
    old = _decision("C009").at(T0)
    lines = encode([decision, old]).splitlines()
    written = json.loads(lines[1])
    del written["p_response"]  # the line as a journal of before wrote it
    segment = tmp_path / "owner.1.jsonl"
    segment.write_bytes(lines[0] + b"\n" + json.dumps(written).encode() + b"\n")
    replayed = read_segment(segment)
    assert [r.p_response for r in replayed] == [0.3, None]
    ids = store.log_recommendations(replayed)
    assert store.posterior_counts("4") == {("selection", "C007"): PosteriorCounts(1, 0, 0.3)}
    store.record_feedback(ids[1], "converted", at=T0 + pd.Timedelta(hours=1))
    assert ("selection", "C009") not in store.posterior_counts("4")
