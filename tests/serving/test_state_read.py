"""What a cold request reads of an account (``Store.account_state``): its data version, its
state when current and its own decisions, as the rows' reading gives them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import event

from features.simulate import simulate
from features.taxonomy import load_taxonomy
from serving.store import Store
from serving.store.decisions import NewRecommendation
from tests.utils.store import BACKENDS, open_store

NOW = pd.Timestamp("2026-01-01", tz="UTC")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    taxonomy = load_taxonomy()
    with open_store(request.param, tmp_path, taxonomy) as opened:
        opened.load_data(simulate(12, 7, taxonomy=taxonomy).data)
        opened.build_feature_states(NOW)
        yield opened


def _served(account: str, content: str, minute: int, kind: str = "decision") -> NewRecommendation:
    return NewRecommendation(
        request_id=f"{account}-{minute}",
        account_id=account,
        contact_id=None if minute % 2 else f"{account}-contact",
        content_id=content,
        rank=1 + minute % 3,
        expected_value=1.0,
        propensity=0.25 + minute / 100,
        policy="test",
        served_at=NOW + pd.Timedelta(minutes=minute),
        kind=kind,  # type: ignore[arg-type]
    )


def test_the_state_read_holds_the_accounts_own_decisions(store: Store) -> None:
    first, second = store.account_ids()[:2]
    content = [str(c) for c in store.content()["content_id"].head(3)]
    store.log_recommendations(
        [
            _served(first, content[0], 3),
            _served(second, content[1], 1),
            _served(first, content[1], 1),
            _served(first, content[2], 2, kind="impression"),  # not a decision
            _served(first, "no such item", 4),  # no channel: left out
        ]
    )
    read = store.account_state(first)
    assert read is not None and read.state is not None
    want = store.accounts_data([first]).exposures
    want = want[want["exposure_id"].isin(read.decisions["exposure_id"])]
    assert len(read.decisions) == 2 and len(want) == 2
    assert read.decisions["content_id"].tolist() == [content[1], content[0]]  # oldest first
    pd.testing.assert_frame_equal(
        read.decisions.reset_index(drop=True), want.reset_index(drop=True)
    )
    assert store.account_state("no such account") is None


def test_the_state_read_is_two_queries(store: Store) -> None:
    account = store.account_ids()[0]
    store.account_state(account)  # the catalog's channels are read once, then kept
    statements: list[str] = []

    def count(*args: object) -> None:
        if str(args[2]).lstrip().upper().startswith("SELECT"):  # not BEGIN
            statements.append(str(args[2]))

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        read = store.account_state(account)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert read is not None and read.state is not None
    # the version with the current state, then the decisions
    assert len(statements) == 2, statements
