"""Incremental features: a state updated event by event gives the batch pipeline's row at
every later as-of date, for every feature (``features.pipeline.incremental``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.pipeline import build_features
from features.pipeline.incremental import (
    CatalogCodes,
    FeatureState,
    StateError,
    add_exposures,
    add_stages,
    add_touchpoints,
    build_states,
    decode_state,
    empty_state,
    encode_state,
    fold,
    merge_rows,
    state_feature_frame,
    with_account,
    with_contacts,
)
from features.schema import JourneyData
from features.simulate import SimulationParams, simulate
from features.taxonomy import Taxonomy
from features.timestamps import NS_PER_DAY
from tests.utils.frames import assert_rows_equal

# Within the simulated 24 months and after them (recencies grow, windows empty).
AS_OF = [pd.Timestamp(d, tz="UTC") for d in ("2025-03-01 13:45", "2025-09-17", "2026-02-01")]


@pytest.fixture(scope="module")
def world(taxonomy: Taxonomy) -> JourneyData:
    return simulate(120, 11, taxonomy=taxonomy, params=SimulationParams.profile("legacy")).data


@pytest.fixture(scope="module")
def batch(world: JourneyData, taxonomy: Taxonomy) -> pd.DataFrame:
    return build_features(world, AS_OF, taxonomy)


def derived(
    states: dict[str, FeatureState],
    ids: list[str],
    as_of: pd.Timestamp,
    taxonomy: Taxonomy,
    catalog: CatalogCodes,
) -> pd.DataFrame:
    frames = [state_feature_frame(states[a], as_of, taxonomy, catalog) for a in ids]
    return pd.concat(frames, ignore_index=True)


def test_states_give_the_batch_rows(
    world: JourneyData, batch: pd.DataFrame, taxonomy: Taxonomy
) -> None:
    states = build_states(world, taxonomy)
    catalog = CatalogCodes.of(world.content, taxonomy)
    for as_of in AS_OF:
        expected = batch[batch["as_of"] == as_of].reset_index(drop=True)
        got = derived(states, expected["account_id"].tolist(), as_of, taxonomy, catalog)
        assert_rows_equal(expected, got)
    # early on, accounts created later get no row, as in batch
    early = pd.Timestamp("2024-02-01", tz="UTC")
    expected = build_features(world, [early], taxonomy)
    assert 0 < len(expected) <= len(states)
    got = derived(states, list(states), early, taxonomy, catalog)
    assert_rows_equal(expected, got)


def _events_in_random_order(
    world: JourneyData,
    account_id: str,
    taxonomy: Taxonomy,
    rng: np.random.Generator,
    fold_before: pd.Timestamp,
) -> FeatureState:
    """The account's state built as a service would: the account and contacts first, then
    its touchpoints in shuffled batches (late ones too), folding as time passes."""

    def mine(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["account_id"].astype(str) == account_id]

    record = {str(k): v for k, v in mine(world.accounts).to_dict("records")[0].items()}
    state = with_contacts(
        with_account(empty_state(account_id, taxonomy), record), mine(world.contacts)
    )
    state = add_stages(state, mine(world.stages), taxonomy)
    state = add_exposures(state, mine(world.exposures))
    tp = mine(world.touchpoints)
    order = rng.permutation(len(tp))
    parts = np.array_split(order, 4)
    for k, part in enumerate(parts[:3]):
        state = add_touchpoints(state, tp.iloc[np.sort(part)[::-1]], taxonomy)
        if k == 1:  # fold midway: later batches bring events older than the fold point
            state = fold(state, int(fold_before.value))
    # the last batch as ingestion adds it: the account and contacts re-read with it
    batch = JourneyData(
        accounts=mine(world.accounts),
        contacts=mine(world.contacts),
        touchpoints=tp.iloc[parts[3]],
        content=world.content,
        stages=world.stages.iloc[:0],
        exposures=world.exposures.iloc[:0],
    )
    return merge_rows({account_id: state}, batch, taxonomy)[account_id]


def test_updates_in_any_order_with_folding_give_the_batch_rows(
    world: JourneyData, batch: pd.DataFrame, taxonomy: Taxonomy
) -> None:
    rng = np.random.default_rng(5)
    catalog = CatalogCodes.of(world.content, taxonomy)
    # folded up to 365 days before the first as-of date asked below
    fold_before = AS_OF[1] - pd.Timedelta(days=365)
    ids = world.accounts["account_id"].astype(str).tolist()
    states = {a: _events_in_random_order(world, a, taxonomy, rng, fold_before) for a in ids}
    # as the store keeps them
    states = {a: decode_state(encode_state(s)) for a, s in states.items()}
    assert sum(len(s.tp_ns) for s in states.values()) < len(world.touchpoints)
    assert any(s.folded.event_count.sum() > 0 for s in states.values())
    for as_of in AS_OF[1:]:
        expected = batch[batch["as_of"] == as_of].reset_index(drop=True)
        got = derived(states, expected["account_id"].tolist(), as_of, taxonomy, catalog)
        assert_rows_equal(expected, got)
    with pytest.raises(StateError, match="folded events"):
        state_feature_frame(states[ids[0]], AS_OF[0], taxonomy, catalog)


def test_account_without_history(world: JourneyData, taxonomy: Taxonomy) -> None:
    catalog = CatalogCodes.of(world.content, taxonomy)
    created = AS_OF[0] - pd.Timedelta(days=3)
    accounts = pd.concat(
        [
            world.accounts.iloc[:1].assign(account_id="new", created_at=created),
            world.accounts.iloc[:0],
        ]
    ).reset_index(drop=True)
    one = JourneyData(
        accounts=accounts,
        contacts=world.contacts.iloc[:0],
        touchpoints=world.touchpoints.iloc[:0],
        content=world.content,
        stages=world.stages.iloc[:0],
        exposures=world.exposures.iloc[:0],
    )
    expected = build_features(one, [AS_OF[0]], taxonomy)
    got = state_feature_frame(build_states(one, taxonomy)["new"], AS_OF[0], taxonomy, catalog)
    assert_rows_equal(expected, got)
    assert got["n_touchpoints_365d"].iloc[0] == 0
    assert np.isnan(got["days_since_last_touch"].iloc[0])
    # without created_at and without events the account does not exist yet
    bare = with_account(empty_state("bare", taxonomy), {"account_id": "bare"})
    assert state_feature_frame(bare, AS_OF[0], taxonomy, catalog).empty


def test_fold_keeps_only_recent_events(world: JourneyData, taxonomy: Taxonomy) -> None:
    states = build_states(world, taxonomy)
    busiest = max(states.values(), key=lambda s: len(s.tp_ns))
    before = int(AS_OF[2].value) - 365 * NS_PER_DAY
    folded = fold(busiest, before)
    assert len(folded.tp_ns) < len(busiest.tp_ns)
    assert (folded.tp_ns >= before).all()
    assert folded.folded.event_count.sum() == len(busiest.tp_ns) - len(folded.tp_ns)


def test_unreadable_state_is_refused() -> None:
    with pytest.raises(StateError, match="unreadable"):
        decode_state(b"not a state")
