"""Feature states in the store: built by a load, updated by ingestion, rebuilt when stale,
and a cold answer from a state equal to one from all the account's rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.pipeline import build_account_features
from features.pipeline.incremental import decode_state, state_feature_frame
from serving.scoring import AccountScore, Scorer
from serving.scoring.incremental import StateSource, account_source, state_values
from serving.store import Store
from tests.utils.api import event
from tests.utils.frames import assert_rows_equal
from tests.utils.registry import TrainedRegistry, registry_scorer
from tests.utils.store import BACKENDS, open_store


@pytest.fixture(scope="module", params=BACKENDS)
def store(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    registry: TrainedRegistry,
) -> Iterator[Store]:
    directory: Path = tmp_path_factory.mktemp(f"states-{request.param}")
    with open_store(request.param, directory, registry.taxonomy) as opened:
        opened.load_data(registry.data)
        assert opened.build_feature_states(registry.now) == len(registry.data.accounts)
        yield opened


def _scorer(registry: TrainedRegistry) -> Scorer:
    return registry_scorer(registry)


def _with_contacts(registry: TrainedRegistry, n: int) -> list[str]:
    contacts = registry.data.contacts
    ids = contacts.loc[contacts["created_at"] < registry.now, "account_id"].astype(str).unique()
    return sorted(ids)[:n]


def _same_answer(a: AccountScore, b: AccountScore) -> None:
    """The answers agree in every number and sentence a user sees."""
    assert not a.cold_start and not b.cold_start
    assert a.phase_proba == pytest.approx(b.phase_proba, rel=1e-12)
    assert a.churn_risk == pytest.approx(b.churn_risk, rel=1e-12)
    assert a.outcomes == pytest.approx(b.outcomes, rel=1e-12)
    assert a.why_now == b.why_now
    assert [(s.action.contact_id, s.action.content_id) for s in a.actions] == [
        (s.action.contact_id, s.action.content_id) for s in b.actions
    ]
    assert [s.action.expected_value for s in a.actions] == pytest.approx(
        [s.action.expected_value for s in b.actions], rel=1e-12
    )
    for got, want in [
        (a.phase_reasons, b.phase_reasons),
        (a.churn_reasons, b.churn_reasons),
        *((x.reasons, y.reasons) for x, y in zip(a.actions, b.actions, strict=True)),
    ]:
        assert [(r.feature, r.value, r.text) for r in got] == [
            (r.feature, r.value, r.text) for r in want
        ]
        assert [r.contribution for r in got] == pytest.approx(
            [r.contribution for r in want], rel=1e-9, abs=1e-12
        )


def test_answer_from_the_state_equals_the_answer_from_the_rows(
    registry: TrainedRegistry, store: Store
) -> None:
    from_state, from_rows = _scorer(registry), _scorer(registry)
    now = registry.now
    for n, account in enumerate(_with_contacts(registry, 6)):
        source = account_source(store, account, now, registry.taxonomy)
        assert isinstance(source, StateSource)
        explore = n % 3 == 2  # an explored first answer, then greedy ones
        a = from_state.score_account(
            lambda source=source: source, account, now, rng=np.random.default_rng(0),
            explore=explore, data_version=1,
        )  # fmt: skip
        b = from_rows.score_account(
            store.account_data(account), account, now, rng=np.random.default_rng(0),
            explore=explore,
        )  # fmt: skip
        _same_answer(a, b)
        assert a.actions and all(s.reasons for s in a.actions)
        # warm, more actions than the cold answer explained: the rest from the kept values
        a = from_state.score_account(
            lambda source=source: source, account, now, k=8, rng=np.random.default_rng(1),
            explore=False, data_version=1,
        )  # fmt: skip
        b = from_rows.score_account(
            store.account_data(account), account, now, k=8, rng=np.random.default_rng(1),
            explore=False,
        )  # fmt: skip
        assert a.cache_hit and b.cache_hit
        _same_answer(a, b)


def test_state_values_are_the_feature_row(registry: TrainedRegistry, store: Store) -> None:
    """The values the cold path computes from a state are the batch row's, typed as the
    frame gives them back (counts int, numbers float, categories their level)."""
    scorer = _scorer(registry)
    setup, models, now = scorer.setup, scorer.models, registry.now
    for account in _with_contacts(registry, 5):
        source = account_source(store, account, now, registry.taxonomy)
        assert isinstance(source, StateSource)
        got = state_values(setup, models, source.state, now)
        rows = store.accounts_data([account], decisions=False)
        frame = setup.features(rows, now, models.attributes)
        assert got is not None and frame is not None
        want = {
            c: v.item() if isinstance(v, np.generic) else v
            for c, v in frame.drop(columns=["account_id", "as_of"]).iloc[0].items()
        }
        assert list(got) == list(want)
        for column, value in want.items():
            if isinstance(value, float) and np.isnan(value):
                assert got[column] is None or np.isnan(got[column]), column  # type: ignore[arg-type]
            else:
                assert got[column] == value and type(got[column]) is type(value), column


def _state_row(store: Store, account: str, now: pd.Timestamp, registry: TrainedRegistry) -> None:
    """The account's current state gives the batch row on its stored rows at ``now``."""
    read = store.account_state(account)
    assert read is not None and read.state is not None, "no current state"
    state = decode_state(read.state)
    expected = build_account_features(
        store.accounts_data([account], decisions=False), account, now, registry.taxonomy
    )
    got = state_feature_frame(state, now, registry.taxonomy, _scorer(registry).setup.catalog_codes)
    assert_rows_equal(expected.to_frame().T.infer_objects().astype(got.dtypes.to_dict()), got)


def test_ingestion_updates_a_current_state(registry: TrainedRegistry, store: Store) -> None:
    account = _with_contacts(registry, 8)[7]
    before = store.account_state(account)
    assert before is not None and before.state is not None
    now = registry.now
    late = (now - pd.Timedelta(days=200)).isoformat()
    records = [
        event("fs-1", account, ts=(now - pd.Timedelta(hours=5)).isoformat()),
        # late and out of order, from a contact the account did not have
        event("fs-2", account, ts=late, contact_id=f"{account}-new", event_type="click"),
        event("fs-3", account, ts=(now - pd.Timedelta(days=2)).isoformat(), content_id=None),
        # older than the fold point: folded on arrival
        event(
            "fs-4", account, ts=(now - pd.Timedelta(days=400)).isoformat(), event_type="purchase"
        ),
    ]
    result = store.ingest_events(records, now=now)
    assert result.accepted == 4, result.rejected
    after = store.account_state(account)
    assert after is not None and after.data_version == before.data_version + 1
    assert after.state is not None and after.state != before.state
    _state_row(store, account, now, registry)
    assert f"{account}-new" in decode_state(after.state).contact_ids


def test_a_stale_state_is_rebuilt_from_the_rows(registry: TrainedRegistry, store: Store) -> None:
    account = _with_contacts(registry, 10)[9]
    store.load_data(registry.data)  # a load bumps every account's data version
    read = store.account_state(account)
    assert read is not None and read.state is None
    source = account_source(store, account, registry.now, registry.taxonomy)
    assert isinstance(source, StateSource)
    _state_row(store, account, registry.now, registry)
    assert account_source(store, "no such account", registry.now, registry.taxonomy) is None
