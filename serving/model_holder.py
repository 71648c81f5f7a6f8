"""Keeping the serving :class:`~serving.model_set.ModelSet` and swapping it when the
registry alias moves.

:class:`ModelHolder` compares the alias versions with the held ones and, when one moved,
loads a complete new set (``serving.model_set.load_model_set``) and swaps it in with one
reference assignment: a request reads ``holder.current`` once and uses that snapshot to the
end, so it never mixes versions and never waits for a load. A loaded set is smoke-tested
first (``serving.model_check``: each model predicts on its own input example what its
registered name promises). A load that fails (including a set refused for missing what
``models.contract`` requires) or a set the smoke test rejects leaves the previous set
serving and is recorded in :meth:`ModelHolder.status` (for ``/ready`` and ``/metrics``); the
error clears once a set is swapped in or the alias points at the serving set again. A
rejected set is not loaded again until the alias moves (a version's files do not change);
any other failure is retried at every check, so a worker that started without a loadable
set serves as soon as one exists.

A worker that cannot load the alias's set at start does not fall back to an earlier
version: the registry keeps no history of which versions were champion, so "the newest
loadable earlier version" may be a challenger that lost its promotion. It stays not ready
(``/ready`` says which model, version and what is missing) and retries.

Several uvicorn workers: the app creates its holder in the lifespan, i.e. in each worker
after the fork (LightGBM's OpenMP threads do not survive a fork; see ``serving.model_set``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from models.contract import CHALLENGER, CHAMPION, NEXT_CONTENT
from serving.model_check import ModelSetRejected, check_model_set
from serving.model_set import (
    CHALLENGER_KEY,
    ModelLoadError,
    ModelSet,
    alias_versions,
    load_model_set,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejection:
    """The latest set the smoke test rejected: the failing model, its version and check."""

    model: str
    version: str
    check: str


@dataclass(frozen=True)
class HolderStatus:
    """What ``/ready`` and ``/metrics`` show about the models. ``last_error`` and
    ``rejected`` describe the latest failed attempt while it is still the alias's set;
    ``retry_interval_s`` is the polling interval (None: not polling)."""

    ready: bool
    alias: str
    versions: Mapping[str, str]
    loaded_at: pd.Timestamp | None
    last_check: pd.Timestamp | None
    last_error: str | None
    last_error_at: pd.Timestamp | None
    reloads: int
    failures: int
    rejections: int = 0
    rejected: Rejection | None = None
    retry_interval_s: float | None = None
    parts_missing: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ModelHolder:
    """The serving :class:`ModelSet`, reloaded when the registry alias moves.

    Create it in the app's lifespan (after uvicorn forked its workers) and call
    :meth:`load` (or :meth:`reload_if_moved`) there; requests read :attr:`current` once.
    ``phases`` (the service's taxonomy's phases) must equal the phases a phase model was
    trained on for its set to serve (None: not checked).
    """

    tracking_uri: str
    alias: str = CHAMPION
    phases: tuple[str, ...] | None = None
    # Also serve the next-content version under trial (the ``challenger`` alias) beside the
    # alias's set, reloading when it moves (``NBA_CHALLENGER_SHARE`` above 0).
    challenger: bool = False
    _current: ModelSet | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _last_check: pd.Timestamp | None = None
    _last_error: str | None = None
    _last_error_at: pd.Timestamp | None = None
    _reloads: int = 0
    _failures: int = 0
    _rejections: int = 0
    _rejected: ModelSetRejected | None = None
    _rejected_versions: dict[str, str] | None = None
    _interval_s: float | None = None

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
                wanted = alias_versions(self.tracking_uri, self.alias, challenger=self.challenger)
                held = self._current
                if not force and held is not None and dict(held.versions) == wanted:
                    self._clear_error()  # the alias is back on the serving set
                    return False
                if not force and wanted == self._rejected_versions:
                    return False  # rejected before; its files have not changed
                new, trial_failure = self._load(wanted)
            except ModelSetRejected as exc:
                self._rejections += 1
                self._rejected, self._rejected_versions = exc, wanted
                self._record_failure(exc)
                return False
            except Exception as exc:  # any load failure keeps the old set
                self._rejected = self._rejected_versions = None  # no longer the latest
                self._record_failure(exc)
                return False
            self._current = new  # the atomic swap: one reference assignment
            self._reloads += 1
            self._clear_error()
            if trial_failure is not None:
                # Served without its trial, said in /ready; not tried again until an alias
                # moves (its files do not change).
                self._record_failure(trial_failure)
                self._rejected, self._rejected_versions = None, wanted
            log.info("serving models %s", dict(new.versions))
            return True

    def _load(self, wanted: dict[str, str]) -> tuple[ModelSet, Exception | None]:
        """The checked set of ``wanted`` and None; when only the version on trial keeps it
        from loading or passing its checks, the set without it and why (a broken trial
        must not keep the champion from serving)."""
        try:
            new = load_model_set(self.tracking_uri, self.alias, versions=wanted)
            check_model_set(new, self.phases)
            return new, None
        except Exception as exc:
            if CHALLENGER_KEY not in wanted:
                raise
            champion = {k: v for k, v in wanted.items() if k != CHALLENGER_KEY}
            new = load_model_set(self.tracking_uri, self.alias, versions=champion)
            check_model_set(new, self.phases)
            log.warning(
                "the version on trial, %s v%s, cannot serve: %s; the champion serves every "
                "decision",
                NEXT_CONTENT,
                wanted[CHALLENGER_KEY],
                exc,
            )
            return new, ModelLoadError(
                f"{NEXT_CONTENT} v{wanted[CHALLENGER_KEY]} ({CHALLENGER}) is not tried: {exc}"
            )

    def _record_failure(self, exc: Exception) -> None:
        self._failures += 1
        self._last_error = f"{type(exc).__name__}: {exc}"
        self._last_error_at = self._last_check
        if self._current is not None:
            log.warning("model reload failed, keeping the previous set: %s", exc)
        elif self._interval_s:  # before polling, load()'s caller reports it
            log.error(
                "no model set to serve (alias %r): %s; retrying every %g s",
                self.alias,
                exc,
                self._interval_s,
            )

    def _clear_error(self) -> None:
        self._last_error = self._last_error_at = None
        self._rejected = self._rejected_versions = None

    def status(self) -> HolderStatus:
        """Versions held, last check, last error and rejection (None after a successful
        load, or once the alias points at the serving set again)."""
        current = self._current
        rejected = self._rejected
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
            rejections=self._rejections,
            rejected=Rejection(rejected.model, rejected.version, rejected.check)
            if rejected is not None
            else None,
            retry_interval_s=self._interval_s,
            parts_missing=dict(current.missing) if current is not None else {},
        )

    def start_polling(self, interval_s: float) -> None:
        """Check the alias every ``interval_s`` seconds on a daemon thread (a no-op if it
        is already polling)."""
        if interval_s <= 0:
            raise ValueError(f"interval_s = {interval_s}; expected a positive number of seconds")
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._interval_s = interval_s

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
        self._interval_s = None
