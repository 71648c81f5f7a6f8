"""Keeping the serving :class:`~serving.model_set.ModelSet` and swapping it when the
registry alias moves.

:class:`ModelHolder` compares the alias versions with the held ones and, when one moved,
loads a complete new set (``serving.model_set.load_model_set``) and swaps it in with one
reference assignment: a request reads ``holder.current`` once and uses that snapshot to the
end, so it never mixes versions and never waits for a load. A load that fails (including a
set refused for missing what ``models.contract`` requires) leaves the previous set serving
and is recorded in :meth:`ModelHolder.status` (for ``/ready`` and ``/metrics``).

Several uvicorn workers: the app creates its holder in the lifespan, i.e. in each worker
after the fork (LightGBM's OpenMP threads do not survive a fork; see ``serving.model_set``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from models.contract import CHAMPION
from serving.model_set import ModelLoadError, ModelSet, alias_versions, load_model_set

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HolderStatus:
    """What ``/ready`` and ``/metrics`` show about the models."""

    ready: bool
    alias: str
    versions: Mapping[str, str]
    loaded_at: pd.Timestamp | None
    last_check: pd.Timestamp | None
    last_error: str | None
    last_error_at: pd.Timestamp | None
    reloads: int
    failures: int


@dataclass
class ModelHolder:
    """The serving :class:`ModelSet`, reloaded when the registry alias moves.

    Create it in the app's lifespan (after uvicorn forked its workers) and call
    :meth:`load` (or :meth:`reload_if_moved`) there; requests read :attr:`current` once.
    """

    tracking_uri: str
    alias: str = CHAMPION
    _current: ModelSet | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _last_check: pd.Timestamp | None = None
    _last_error: str | None = None
    _last_error_at: pd.Timestamp | None = None
    _reloads: int = 0
    _failures: int = 0

    @property
    def current(self) -> ModelSet:
        """The serving set (one reference read: the caller's snapshot). Raises
        :class:`ModelLoadError` if no set was ever loaded."""
        current = self._current
        if current is None:
            raise ModelLoadError(
                f"no models loaded from {self.tracking_uri} (alias {self.alias!r}): "
                f"{self._last_error or 'load() was not called'}"
            )
        return current

    @property
    def ready(self) -> bool:
        return self._current is not None

    def load(self) -> bool:
        """Load the alias's models unconditionally; True on success. A failure keeps the
        previous set and is recorded (see :meth:`status`)."""
        return self._refresh(force=True)

    def reload_if_moved(self) -> bool:
        """Swap in the alias's models if any alias version differs from the held ones (or
        nothing is held). True when a new set was swapped in; failures keep the previous
        set and are recorded."""
        return self._refresh(force=False)

    def _refresh(self, *, force: bool) -> bool:
        # One reload at a time; requests never take this lock (they read _current).
        with self._lock:
            self._last_check = pd.Timestamp.now(tz="UTC")
            try:
                wanted = alias_versions(self.tracking_uri, self.alias)
                held = self._current
                if not force and held is not None and dict(held.versions) == wanted:
                    return False
                new = load_model_set(self.tracking_uri, self.alias, versions=wanted)
            except Exception as exc:  # any load failure keeps the old set
                self._failures += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                self._last_error_at = self._last_check
                log.warning("model reload failed, keeping the previous set: %s", exc)
                return False
            self._current = new  # the atomic swap: one reference assignment
            self._reloads += 1
            self._last_error = None
            log.info("serving models %s", dict(new.versions))
            return True

    def status(self) -> HolderStatus:
        """Versions held, last check, last error (None after a successful load)."""
        current = self._current
        return HolderStatus(
            ready=current is not None,
            alias=self.alias,
            versions=dict(current.versions) if current is not None else {},
            loaded_at=current.loaded_at if current is not None else None,
            last_check=self._last_check,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            reloads=self._reloads,
            failures=self._failures,
        )

    def start_polling(self, interval_s: float) -> None:
        """Check the alias every ``interval_s`` seconds on a daemon thread (a no-op if it
        is already polling)."""
        if interval_s <= 0:
            raise ValueError(f"interval_s = {interval_s}; expected a positive number of seconds")
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval_s):
                self.reload_if_moved()

        self._thread = threading.Thread(target=run, name="nba-model-poll", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop polling and wait up to ``timeout_s`` for the thread to end."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        self._thread = None
