"""The cold path from a feature state: an account's state (features, predictions,
reasons) computed from its incremental feature state (``features.pipeline.incremental``)
and its decisions, instead of from all its rows.

The feature row equals the batch pipeline's (the state is built and updated so that it
does), so a state computed here equals one computed from the rows
(``serving.scoring.states.compute_state``). The rest of the cold path works on arrays
(``serving.scoring.states.values_state``): one account's frames cost more than its
features and its predictions together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.pipeline.incremental import (
    FeatureState,
    StateError,
    add_exposures,
    build_states,
    decode_state,
    encode_state,
    fold,
    topic_counts,
    valid_from_ns,
)
from features.pipeline.incremental import (
    state_values as incremental_values,
)
from features.pipeline.incremental.state import vocabulary_key
from features.schema import JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import NS_PER_DAY
from models import next_content as nc
from models.arbitration import ACCOUNT_LEVEL, Recent
from serving.model_set import ModelSet
from serving.scoring.cache import AccountState
from serving.scoring.online import CandidateRows
from serving.scoring.predict import ScoringSetup
from serving.scoring.states import values_state
from serving.store import StateRead
from serving.store.feature_states import fold_point


@dataclass(frozen=True)
class StateSource:
    """A known account as a feature state and its decisions (canonical exposures: the
    service's decisions count as exposures, and the store keeps them apart); ``rows``
    reads all its rows, for what a state cannot give (touchpoint or exposure attribute
    features)."""

    state: FeatureState
    decisions: pd.DataFrame
    rows: Callable[[], JourneyData]


class _StateRows:
    """The account's current contacts and recent content touchpoints from its state (what
    ``serving.scoring.states`` reads of its rows)."""

    def __init__(self, state: FeatureState, now: pd.Timestamp, horizon_ns: int) -> None:
        self.state = state
        self.now_ns = int(now.value)
        self.horizon_ns = horizon_ns

    def addressee_ids(self, account_id: str) -> tuple[list[str], list[str | None]]:
        s = self.state
        present = (
            s.contact_listed
            & (s.contact_created_ns < self.now_ns)
            & (s.contact_created_ns != np.iinfo(np.int64).min)
            & ~(s.contact_left_ns < self.now_ns)
        )
        at = np.flatnonzero(present).tolist()
        if not at:  # arbitration's account-level addressee (``addressees``)
            return [ACCOUNT_LEVEL], [None]
        return [str(s.contact_ids[i]) for i in at], [s.contact_role[i] for i in at]

    def consumed(self, account_id: str) -> Recent:
        s = self.state
        keep = np.flatnonzero((s.tp_content >= 0) & (s.tp_ns >= self.horizon_ns))
        return Recent(
            content_id=[s.content_ids[i] for i in s.tp_content[keep].tolist()],
            ts_ns=s.tp_ns[keep],
            contact_id=[None if c < 0 else s.contact_ids[c] for c in s.tp_contact[keep].tolist()],
        )


def state_values(
    setup: ScoringSetup, models: ModelSet, state: FeatureState, now: pd.Timestamp
) -> dict[str, Any] | None:
    """The account's row as ``ScoringSetup.features`` gives it (pipeline features, then
    topic engagement) as column -> plain value; None when the account does not exist at
    ``now``. Raises ``features.pipeline.incremental.StateError`` when the state cannot
    give it."""
    values: dict[str, Any] | None = incremental_values(
        state, now, setup.taxonomy, setup.catalog_codes, attributes=models.attributes
    )
    if values is None:
        return None
    recent, ever = topic_counts(state, now)
    codes = setup.catalog_codes
    topic_code = codes.topic_code[codes.items(state.content_ids)]
    values.update(nc.topic_engagement_of_items(topic_code, recent, ever, setup.taxonomy))
    return values


def compute_state_from(
    setup: ScoringSetup,
    models: ModelSet,
    source: StateSource,
    now: pd.Timestamp,
    *,
    ttl_ns: int,
) -> tuple[AccountState, CandidateRows] | None:
    """Returns the account's state as of ``now`` (as ``compute_state`` on its rows, but
    with no action explained yet) and the candidate rows it was computed from (the request
    explains the actions it shows from them), or None when the account does not exist at
    ``now``. Raises ``StateError`` as :func:`state_values`."""
    state = source.state
    if len(source.decisions):
        state = add_exposures(state, source.decisions)
    values = state_values(setup, models, state, now)
    if values is None:
        return None
    # Older rows cannot count as consumed recently while the state is served.
    horizon = now.value - int(setup.config.eligibility.consumed_recently_days * NS_PER_DAY) - ttl_ns
    return values_state(
        setup, models, state.account_id, values, _StateRows(state, now, horizon), now
    )


class StateStore(Protocol):
    """What :func:`account_source` reads and writes (``serving.store.Store``)."""

    def account_state(self, account_id: str) -> StateRead | None: ...

    def accounts_data(
        self, account_ids: Sequence[str], *, decisions: bool = True
    ) -> JourneyData: ...

    def save_feature_state(self, account_id: str, data_version: int, state: bytes) -> None: ...


def account_source(
    store: StateStore, account_id: str, now: pd.Timestamp, taxonomy: Taxonomy
) -> StateSource | None:
    """The account's current feature state and decisions from ``store``; a state missing,
    stale (its data version behind the account's), unreadable or folded past ``now`` is
    built from the account's rows first and stored. None when the account is unknown."""
    read = store.account_state(account_id)
    if read is None:
        return None
    rows = partial(store.accounts_data, [account_id])
    if read.state is not None:
        try:
            state = decode_state(read.state)
        except StateError:
            state = None
        if (
            state is not None
            and state.vocabulary == vocabulary_key(taxonomy)
            and int(now.value) >= valid_from_ns(state)
        ):
            return StateSource(state, read.decisions, rows)
    data = store.accounts_data([account_id], decisions=False)
    built = build_states(data, taxonomy).get(account_id)
    if built is None:
        return None
    built = fold(built, fold_point(int(now.value)))
    store.save_feature_state(account_id, read.data_version, encode_state(built))
    return StateSource(built, read.decisions, rows)
