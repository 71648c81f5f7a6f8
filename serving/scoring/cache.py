"""The per-account state cache: what a warm request reuses, how fresh it must be, its key.

The expensive part of an answer (features, the three models' predictions, the reasons) is
cached per account under ``(account_id, the account's data version, model versions)``. The
data version is the store's version of the account's rows when the caller knows it, else
the row count and latest timestamp of the account's touchpoints, stages, exposures and
contacts; so an ingested event changes the key and the next request recomputes, and model
versions change it when the registry alias moves. Cached features are as of the request
that computed them; the feature TTL bounds how old they may get (recency features move with
the clock even without new events). The least recently used entries go first.
"""

from __future__ import annotations

import io
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.schema import JourneyData
from models.arbitration import PreparedCandidates, Recent
from models.explain import Reason, WhyNow
from serving.scoring.answer import ScoringError


@dataclass
class AccountState:
    """What a cache hit reuses: features, predictions and the reasons computed so far.

    Kept in few Python objects: thousands of cached accounts are walked by every full
    garbage collection, and a DataFrame alone is hundreds of objects (the collector then
    pauses a worker for seconds). So the feature row is kept pickled (it is only read to
    explain an action not explained yet) and the candidates as arrays."""

    as_of: pd.Timestamp
    as_of_ns: int
    # The next-content model's account columns (``ScoringSetup.account_columns``) as a
    # pickled one-row frame or a pickled dict of plain values (the cold path from a
    # feature state, which builds no frame), or, with ``features_ipc``, as Arrow IPC bytes.
    features: bytes
    phase_proba: np.ndarray
    phase_reasons: tuple[Reason, ...]
    churn_risk: float
    churn_reasons: tuple[Reason, ...]
    candidates: PreparedCandidates  # every current contact x catalog item, P(response)
    consumed: Recent  # content touchpoints recent enough to matter while the state lives
    # (contact_id, content_id) -> reasons, filled lazily
    action_reasons: dict[tuple[str, str], tuple[Reason, ...]] = field(default_factory=dict)
    # A state read from or computed for the store keeps its next-content inputs as Arrow IPC
    # bytes instead, converted only when an action needs explaining (rarely; converting
    # costs milliseconds).
    features_ipc: bool = False
    # Outcome name -> calibrated probability, one per binary outcome model served.
    outcomes: dict[str, float] = field(default_factory=dict)
    # What makes this the moment to act (``models.explain.why_now``), most urgent first.
    why_now: tuple[WhyNow, ...] = ()

    def feature_frame(self) -> pd.DataFrame:
        """Returns the cached account columns as a one-row frame (a copy per call; built
        from the values when the state keeps them as values)."""
        kept = self._kept()
        if isinstance(kept, pd.DataFrame):
            return kept
        return pd.DataFrame({c: [v] for c, v in kept.items()})

    def account_values(self) -> dict[str, Any]:
        """Returns the cached account columns as column -> plain value (NumPy scalars as
        Python ones; what explaining an action reads)."""
        kept = self._kept()
        if not isinstance(kept, pd.DataFrame):
            return kept
        return {str(c): _plain(kept[c].iat[0]) for c in kept.columns}

    def _kept(self) -> pd.DataFrame | dict[str, Any]:
        if self.features_ipc:
            return pa.ipc.open_stream(self.features).read_all().to_pandas()
        kept: pd.DataFrame | dict[str, Any] = pickle.loads(self.features)
        return kept


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def ipc_rows(frame: pd.DataFrame) -> list[bytes]:
    """Returns each row of ``frame`` as Arrow IPC stream bytes (what
    :meth:`AccountState.feature_frame` reads with ``features_ipc``). Converts the frame
    once: a one-row conversion costs about as much as a hundred-row one, per column."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # Arrow's own types keep the dtypes (categories, UTC times); pandas' metadata would only
    # double each row's bytes.
    table = table.replace_schema_metadata(None)
    out: list[bytes] = []
    for r in range(table.num_rows):
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table.slice(r, 1))
        out.append(sink.getvalue())
    return out


class StateCache:
    """An LRU map key -> :class:`AccountState` of at most ``entries`` states younger than
    ``ttl_ns``, with hit and miss counts. Thread-safe: its lock is held only for lookups and
    insertions, never while a state is computed."""

    def __init__(self, entries: int, ttl_ns: int) -> None:
        self.entries = entries
        self.ttl_ns = ttl_ns
        self._states: OrderedDict[Hashable, AccountState] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def hit(self, key: Hashable, now_ns: int) -> AccountState | None:
        """Returns the fresh state under ``key`` (counted as a hit and marked recently
        used), or None."""
        with self._lock:
            state = self._fresh(key, now_ns)
            if state is not None:
                self._states.move_to_end(key)
                self.hits += 1
        return state

    def peek(self, key: Hashable, now_ns: int) -> AccountState | None:
        """Returns the fresh state under ``key`` or None (not counted, not marked)."""
        with self._lock:
            return self._fresh(key, now_ns)

    def is_fresh(self, key: Hashable, now_ns: int) -> bool:
        """Returns whether a fresh state is cached under ``key`` (not counted, not marked)."""
        return self.peek(key, now_ns) is not None

    def put(self, key: Hashable, state: AccountState) -> None:
        """Caches a state just computed (a miss), evicting the least recently used."""
        with self._lock:
            self.misses += 1
            self._states[key] = state
            self._states.move_to_end(key)
            while len(self._states) > self.entries:
                self._states.popitem(last=False)

    def _fresh(self, key: Hashable, now_ns: int) -> AccountState | None:
        # the caller holds the lock
        state = self._states.get(key)
        if state is None or now_ns - state.as_of_ns > self.ttl_ns:
            return None
        return state


def cache_version(
    data: JourneyData | Callable[[], object] | None,
    account_id: str,
    data_version: int | None,
) -> Hashable | None:
    """Returns the data-version part of the cache key, or None when ``data`` is None or
    holds no account row (a cold start). A loader function needs ``data_version``."""
    if data is None:
        return None
    if data_version is not None:
        return store_version(data_version)
    if callable(data):
        raise ScoringError("a data loader needs the data_version of the rows it loads")
    return rows_version(data, account_id)


def store_version(data_version: int) -> Hashable:
    """Returns the cache key part of the store's version of an account's rows (distinct
    from the versions :func:`rows_version` computes from the rows themselves)."""
    return ("store", data_version)


def rows_version(data: JourneyData, account_id: str) -> tuple[Hashable, ...] | None:
    """Returns (rows, latest timestamp) of the account's rows per table (changes when an
    event is ingested for the account), or None when ``data`` has no account row for it."""
    accounts = data.accounts
    if accounts.empty or not _account_mask(accounts["account_id"], account_id).any():
        return None
    parts: list[Hashable] = []
    for frame, ts in (
        (data.touchpoints, "ts"),
        (data.stages, "ts"),
        (data.exposures, "ts"),
        (data.contacts, "created_at"),
    ):
        if frame is None or frame.empty or "account_id" not in frame:
            parts.append((0, 0))
            continue
        mask = _account_mask(frame["account_id"], account_id)
        n = int(mask.sum())
        if n == 0:
            parts.append((0, 0))
            continue
        last = frame[ts].to_numpy(dtype="datetime64[ns]")[mask].view(np.int64).max()
        parts.append((n, int(last)))
    return tuple(parts)


def _account_mask(values: pd.Series, account_id: str) -> np.ndarray:
    """Rows of ``values`` equal to ``account_id``. Arrow's kernel directly: pandas' own
    comparison boxes the scalar and costs milliseconds per call on the warm path."""
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        array = pa.array(values.array)
        equal = pc.equal(array, pa.scalar(account_id, type=array.type))
        return np.asarray(equal.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    return (values == account_id).to_numpy(dtype=bool, na_value=False)
