"""The served-recommendation log, written in the background in batches.

Every action a recommendations answer returns is logged with its id and propensity. Writing
it inside the request would put a write transaction on the hot path, and on SQLite several
worker processes then queue for the one write lock (SQLite's busy handler sleeps between
attempts, so a request can wait tens of milliseconds for a lock held for a fraction of
one). :class:`ServedLog` gives each action its id at once, queues the rows, and a thread
writes whatever is queued in one transaction every ``flush_interval_s``.

Guarantees: ids are final when the answer leaves; rows reach the store within about one
interval; a failed write keeps its rows queued and is retried (nothing accepted is lost
while the process lives); :meth:`close` (the app's shutdown) writes what is left.
``flush_interval_s = 0`` writes synchronously inside :meth:`log` instead.

With a ``journal_dir`` (the service always has one) :meth:`log` also appends the rows to this
process's journal before it returns (``serving.store.served_journal``), so a process killed
hard loses nothing: its rows are replayed into the store by the next process that starts
(:meth:`start`), by every writer every ``REPLAY_INTERVAL_S``, and, for one id, by
:meth:`recover` when feedback names an id the store does not hold yet. Why a journal rather
than writing each request to the database: one ``write()`` to the page cache costs
microseconds and takes no lock another process holds, where a SQLite write transaction per
request queues every worker behind one write lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from serving.store.decisions import NewRecommendation
from serving.store.repository import Store
from serving.store.served_journal import Journal, find, replay_dead

log = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL_S = 0.05
# Queued rows beyond this make log() write synchronously (back-pressure when the store is
# slower than the traffic), so memory stays bounded.
DEFAULT_MAX_PENDING = 50_000
_RETRY_BACKOFF_S = (0.1, 0.5, 1.0, 2.0, 5.0)
# Seconds between the writer's looks for journals of processes that died (a supervisor that
# restarts them replays at their start already; this covers one that does not).
REPLAY_INTERVAL_S = 10.0


class ServedLog:
    """Batched, background logging of served recommendations into ``store``."""

    def __init__(
        self,
        store: Store,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        journal_dir: Path | None = None,
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
        self.journal_dir = journal_dir if self.background else None
        self._journal: Journal | None = None
        self.replayed = 0  # rows of dead processes' journals this one wrote

    @property
    def background(self) -> bool:
        return self.flush_interval_s > 0

    def start(self) -> None:
        """Start the writer thread (no-op when writing synchronously or already started)."""
        if not self.background or self._thread is not None:
            return
        if self.journal_dir is not None:
            self._journal = Journal(self.journal_dir)
            try:
                self.replay()
            except Exception:  # the store may be down at start; the writer tries again later
                log.warning("served log: replaying dead journals failed", exc_info=True)
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
            if self._journal is not None:
                self._journal.append(rows)  # first: raises before anything is queued
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
                # the rows to come go to a new segment; these can go once batch is written
                sealed = self._journal.seal() if self._journal is not None else []
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
                if self._journal is not None:
                    self._journal.discard(sealed)
            self._count(len(batch))

    def close(self) -> None:
        """Stop the writer and write what is left (the app's shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        written = False
        try:
            self.flush()
            written = True
        except Exception:
            log.exception(
                "served log: %d rows could not be written at shutdown; they stay in the "
                "journal for the next process to replay",
                self.pending,
            )
        if self._journal is not None:
            with self._lock:
                self._journal.close(written=written)
                self._journal = None

    def replay(self) -> int:
        """Write the rows of journals whose processes died into the store; returns how many.
        Raises the store's error (the journals then stay for the next attempt)."""
        if self.journal_dir is None:
            return 0
        n = replay_dead(self.journal_dir, self.store.log_recommendations)
        with self._lock:
            self.replayed += n
        return n

    def recover(self, recommendation_id: str) -> bool:
        """Make sure ``recommendation_id`` is in the store if any process served it: write
        this process's queue if it holds the id, else the journals of dead processes, else
        the id's row from any live process's journal (its owner's later batch ignores the
        id then). Returns whether the id was found to write."""
        if self.holds(recommendation_id):
            self.flush()
            return True
        if self.journal_dir is None:
            return False
        self.replay()
        row = find(self.journal_dir, recommendation_id)
        if row is None:
            return False
        self.store.log_recommendations([row])
        return True

    def _count(self, n: int) -> None:
        with self._lock:
            self.written += n
            self.last_error = None

    def _run(self) -> None:
        failures = 0
        next_replay = time.monotonic() + REPLAY_INTERVAL_S
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
            if time.monotonic() >= next_replay:
                next_replay = time.monotonic() + REPLAY_INTERVAL_S
                try:
                    self.replay()
                except Exception:  # the writer must survive; the journals wait for the next try
                    log.warning("served log: replaying dead journals failed", exc_info=True)
