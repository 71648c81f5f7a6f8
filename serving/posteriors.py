"""The online posterior a worker ranks with (learning between retrains): the counts every
worker shares through the store, read off the request path.

A request reads :meth:`PosteriorCache.current`, an attribute: no database round trip. A
background thread reloads the counts every ``refresh_s`` seconds, and at once when this
worker has written feedback (:meth:`PosteriorCache.wake`), so a worker sees what any worker
learnt within about one interval. The one read on a request's path is the first one for a
next-content model version the cache has not seen yet (once per model swap)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from models.arbitration import OnlinePosterior
from serving.store import Store

log = logging.getLogger(__name__)


@dataclass
class PosteriorCache:
    """The latest counts of the online posterior per next-content model version."""

    store: Store
    prior_strength: float
    refresh_s: float
    draw_share: float = 1.0
    _current: OnlinePosterior | None = field(default=None, init=False)
    _version: str | None = field(default=None, init=False)
    _loads: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _wake: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def current(self, model_version: str) -> OnlinePosterior:
        """The posterior of the next-content ``model_version`` as last read from the store."""
        posterior, version = self._current, self._version
        if posterior is None or version != model_version:
            return self.refresh(model_version)
        return posterior

    def refresh(self, model_version: str | None = None) -> OnlinePosterior:
        """Reads the counts of ``model_version`` (default: the one cached) from the store;
        returns the new posterior."""
        version = model_version if model_version is not None else (self._version or "")
        counts = self.store.posterior_counts(version)
        with self._lock:
            self._loads += 1
            posterior = OnlinePosterior(
                counts={key: (float(c.successes), c.expected) for key, c in counts.items()},
                prior_strength=self.prior_strength,
                version=self._loads,
                draw_share=self.draw_share,
            )
            self._current, self._version = posterior, version
        return posterior

    def wake(self) -> None:
        """Have the background thread read the counts now (this worker just wrote some)."""
        self._wake.set()

    def start(self) -> None:
        """Starts the background refresh (no-op when ``refresh_s`` is 0)."""
        if self.refresh_s <= 0 or self._thread is not None:
            return

        def run() -> None:
            while not self._stop.is_set():
                self._wake.wait(self.refresh_s)
                self._wake.clear()
                if self._stop.is_set() or self._version is None:
                    continue
                try:
                    self.refresh()
                except Exception as exc:  # the thread must survive a store hiccup
                    log.warning("reading the online posterior failed: %s", exc)

        self._thread = threading.Thread(target=run, name="nba-posterior", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stops the background refresh."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
