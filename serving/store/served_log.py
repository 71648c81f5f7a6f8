"""The served-recommendation log, written in the background in batches.

Every action a recommendations answer returns is logged with its id and propensity. Writing
it inside the request would put a write transaction on the hot path, and on SQLite several
worker processes then queue for the one write lock (SQLite's busy handler sleeps between
attempts, so a request can wait tens of milliseconds for a lock held for a fraction of
one). :class:`ServedLog` gives each action its id at once, queues the rows, and a thread
writes whatever is queued in one transaction every ``flush_interval_s``.

Guarantees: ids are final when the answer leaves; rows reach the store within about one
interval; a failed write keeps its rows queued and is retried (nothing accepted is lost
while the process lives); :meth:`close` (the app's shutdown) writes what is left. A
process killed hard loses at most the last interval's rows. ``flush_interval_s = 0`` writes
synchronously inside :meth:`log` instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pandas as pd

from serving.store.decisions import NewRecommendation
from serving.store.repository import Store

log = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL_S = 0.05
# Queued rows beyond this make log() write synchronously (back-pressure when the store is
# slower than the traffic), so memory stays bounded.
DEFAULT_MAX_PENDING = 50_000
_RETRY_BACKOFF_S = (0.1, 0.5, 1.0, 2.0, 5.0)


class ServedLog:
    """Batched, background logging of served recommendations into ``store``."""

    def __init__(
        self,
        store: Store,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        if flush_interval_s < 0:
            raise ValueError(f"flush_interval_s = {flush_interval_s}; expected >= 0")
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self._pending: list[NewRecommendation] = []
        self._lock = threading.Lock()  # guards _pending and the counters
        self._write_lock = threading.Lock()  # one batch written at a time, in order
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.write_failures = 0
        self.last_error: str | None = None

    @property
    def background(self) -> bool:
        return self.flush_interval_s > 0

    def start(self) -> None:
        """Start the writer thread (no-op when writing synchronously or already started)."""
        if not self.background or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="nba-served-log", daemon=True)
        self._thread.start()

    def log(
        self, items: Sequence[NewRecommendation], *, served_at: pd.Timestamp | None = None
    ) -> list[str]:
        """Queue ``items`` (served at ``served_at``, default now) and return their ids."""
        at = served_at if served_at is not None else pd.Timestamp.now(tz="UTC")
        rows = [item if item.served_at is not None else item.at(at) for item in items]
        if not rows:
            return []
        if not self.background or self._thread is None:
            self.store.log_recommendations(rows)
            self._count(len(rows))
            return [r.id for r in rows]
        with self._lock:
            self._pending.extend(rows)
            overflow = len(self._pending) >= self.max_pending
        if overflow:
            self.flush()
        return [r.id for r in rows]

    @property
    def pending(self) -> int:
        """Rows queued and not written yet."""
        with self._lock:
            return len(self._pending)

    def holds(self, recommendation_id: str) -> bool:
        """Whether ``recommendation_id`` is queued here, not written yet (a batch being
        written counts)."""
        with self._lock:
            return any(r.id == recommendation_id for r in self._pending)

    def flush(self) -> None:
        """Write everything queued now (in the caller's thread). Raises the store's error
        if the write fails; the rows then stay queued."""
        with self._write_lock:
            # Rows stay queued until written, so pending and holds() count a batch in flight
            # and a failed write leaves them where they were.
            with self._lock:
                batch = list(self._pending)
            if not batch:
                return
            try:
                self.store.log_recommendations(batch)
            except Exception as exc:
                with self._lock:
                    self.write_failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                raise
            with self._lock:
                del self._pending[: len(batch)]
            self._count(len(batch))

    def close(self) -> None:
        """Stop the writer and write what is left (the app's shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        try:
            self.flush()
        except Exception:
            log.exception("served log: %d rows could not be written at shutdown", self.pending)

    def _count(self, n: int) -> None:
        with self._lock:
            self.written += n
            self.last_error = None

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            delay = (
                self.flush_interval_s
                if failures == 0
                else _RETRY_BACKOFF_S[min(failures, len(_RETRY_BACKOFF_S)) - 1]
            )
            self._wake.wait(delay)
            self._wake.clear()
            try:
                self.flush()
                failures = 0
            except Exception:
                failures += 1
                log.exception("served log: writing %d rows failed; retrying", self.pending)
