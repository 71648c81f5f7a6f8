"""The served log's journal: every served action on disk before its answer leaves.

The served log (``serving.store.served_log``) writes to the database in batches, so a
process killed hard would lose the rows of its last interval, and feedback on those ids would
answer 404 for good. Each process therefore appends a request's rows to its own journal with
one ``write()`` before the answer is sent; data a process has written sits in the operating
system's page cache and survives the process being killed (``kill -9``, an out-of-memory
kill), though not the machine losing power (nothing is fsynced: that would put a disk flush on
every request). Once a batch is in the database its journal segment is deleted.

Layout of the directory (one per database, see :func:`default_journal_dir`):

- ``<owner>.lock``: held with ``flock`` by the living process ``owner`` (the kernel releases
  it when the process dies, however it dies: so a lock that can be taken marks a dead owner);
- ``<owner>.<n>.jsonl``: the owner's segments, one JSON object per served action and line.
  The owner starts a new segment when its writer takes a batch, so a segment holds exactly
  rows of batches not yet written.

Any process replays dead owners' segments into the database (:func:`replay_dead`) and can
find one id in every segment, live ones included (:func:`find`); both are safe to repeat and
to race, because the database ignores an id it holds already. A line without its newline is
a write the process did not finish (its answer never left) and is skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from features.errors import UnavailableError
from features.timestamps import from_ns, to_ns
from serving.store.decisions import NewRecommendation

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
SEGMENT_SUFFIX = ".jsonl"


class JournalError(UnavailableError):
    """The served-action journal cannot be written or used (a full disk, a directory owned by
    someone else); the request is not answered, so no id is handed out unlogged."""


def default_journal_dir(database_url: str, schema: str | None = None) -> Path:
    """Where the journal of ``database_url`` lives unless configured: next to a SQLite file
    (``nba.db`` -> ``nba.db.served``), else in the temp directory under a name derived from
    the URL and schema, so every process of one service on this machine finds the others'
    journals and no journal is replayed into another database."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(str(url.database)).resolve().parent / f"{Path(str(url.database)).name}.served"
    key = f"{url.render_as_string(hide_password=True)}|{schema or ''}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"nba-served-{digest}"


def encode(rows: Sequence[NewRecommendation]) -> bytes:
    """``rows`` (each with its ``served_at``) as journal lines."""
    return b"".join(
        json.dumps(
            {
                "id": r.id,
                "request_id": r.request_id,
                "account_id": r.account_id,
                "contact_id": r.contact_id,
                "content_id": r.content_id,
                "rank": int(r.rank),
                "expected_value": float(r.expected_value),
                "propensity": float(r.propensity),
                "policy": r.policy,
                "model_versions": dict(r.model_versions),
                "served_at": to_ns(r.served_at),
                "kind": r.kind,
                "segment": r.segment,
                "p_response": r.p_response,
                "servable": r.servable,
            },
            separators=(",", ":"),
        ).encode()
        + b"\n"
        for r in rows
    )


def _decode(line: bytes) -> NewRecommendation:
    fields: dict[str, Any] = json.loads(line)
    fields["served_at"] = from_ns(int(fields["served_at"]))
    return NewRecommendation(**fields)


def _lines(path: Path) -> list[bytes]:
    """The complete lines of segment ``path`` ([] if it is gone: its rows are written)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return data.split(b"\n")[:-1]  # the part after the last newline is an unfinished write


def read_segment(path: Path) -> list[NewRecommendation]:
    """The rows of one segment; a line that does not parse is skipped with a warning."""
    rows = []
    for line in _lines(path):
        try:
            rows.append(_decode(line))
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("served journal %s: skipping a line that does not parse: %s", path, exc)
    return rows


def _check_directory(directory: Path) -> None:
    """Create ``directory`` (only we may write it) and refuse one another user owns: its
    segments would be replayed into our database."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        owner = directory.stat().st_uid
    except OSError as exc:
        raise JournalError(f"served journal directory {directory}: {exc}") from exc
    if owner != os.getuid():
        raise JournalError(
            f"served journal directory {directory} belongs to uid {owner}, not to this "
            "process's user; set NBA_SERVED_LOG_DIR to a directory of its own"
        )


class Journal:
    """This process's journal in ``directory``. Not thread-safe: the served log calls it
    under its own lock."""

    def __init__(self, directory: Path) -> None:
        _check_directory(directory)
        self.directory = directory
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        # Locked under a temporary name and then renamed: a replayer never sees a lock file
        # whose owner has not locked it yet (it would take it for a dead owner's).
        staging = directory / f".{self.owner}.tmp"
        self._lock_fd = os.open(staging, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(staging, self._path(LOCK_SUFFIX))
        self._sequence = 0
        self._fd = -1
        self._current = self._path(f".0{SEGMENT_SUFFIX}")
        self._written = 0  # bytes in the current segment
        self._sealed: list[Path] = []

    def _path(self, suffix: str) -> Path:
        return self.directory / f"{self.owner}{suffix}"

    def append(self, rows: Sequence[NewRecommendation]) -> None:
        """Append ``rows`` with one write. Raises :class:`JournalError` when that fails (the
        segment is then sealed, so a partial line never precedes a later row)."""
        data = encode(rows)
        self._written += len(data)  # counted first: a failed write may have left a part
        try:
            if self._fd < 0:
                flags = os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
                self._fd = os.open(self._current, flags, 0o600)
            done = os.write(self._fd, data)
            while done < len(data):  # a short write (a full disk writes what fits)
                done += os.write(self._fd, data[done:])
        except OSError as exc:
            self.seal()
            raise JournalError(f"served journal {self._current}: {exc}") from exc

    def seal(self) -> list[Path]:
        """Start a new segment for the rows to come; returns every sealed segment not yet
        discarded (their rows are the ones queued now)."""
        if self._written:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self._sealed.append(self._current)
            self._sequence += 1
            self._current = self._path(f".{self._sequence}{SEGMENT_SUFFIX}")
            self._written = 0
        return list(self._sealed)

    def discard(self, segments: Sequence[Path]) -> None:
        """Delete ``segments`` (sealed ones whose rows are in the database now)."""
        for path in segments:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        done = set(segments)
        self._sealed = [p for p in self._sealed if p not in done]

    def close(self, *, written: bool) -> None:
        """Release the journal. ``written``: every row is in the database, so the segments
        and the lock file go; otherwise they stay for another process to replay."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if written:
            self.discard([*self._sealed, self._current])
            with contextlib.suppress(FileNotFoundError):
                self._path(LOCK_SUFFIX).unlink()
        os.close(self._lock_fd)  # releases the lock


def _segments(directory: Path, owner: str | None = None) -> list[Path]:
    pattern = f"{owner}.*{SEGMENT_SUFFIX}" if owner else f"*{SEGMENT_SUFFIX}"
    return sorted(directory.glob(pattern))


@contextlib.contextmanager
def _dead_owner(lock: Path) -> Iterator[bool]:
    """Holds ``lock`` while the body runs and yields True if its owner is dead (the lock
    could be taken), False if it lives or the lock file is gone."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def replay_dead(directory: Path, write: Callable[[list[NewRecommendation]], object]) -> int:
    """Write the rows of every dead owner's segments with ``write`` (which must ignore ids
    stored already) and delete them; returns the rows replayed. A failing ``write`` raises
    and leaves the segments for the next attempt."""
    replayed = 0
    if not directory.is_dir():
        return 0
    for lock in sorted(directory.glob(f"*{LOCK_SUFFIX}")):
        owner = lock.name[: -len(LOCK_SUFFIX)]
        with _dead_owner(lock) as dead:
            if not dead:
                continue
            segments = _segments(directory, owner)
            rows = [row for path in segments for row in read_segment(path)]
            if rows:
                write(rows)
                log.warning(
                    "served journal: replayed %d rows of a process that ended without "
                    "writing them (%s)",
                    len(rows),
                    owner,
                )
            for path in segments:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # last, so no segment is ever left without its lock file
            replayed += len(rows)
    return replayed


def find(directory: Path, recommendation_id: str) -> NewRecommendation | None:
    """The row of ``recommendation_id`` in any segment in ``directory`` (live or dead), or
    None."""
    if not directory.is_dir():
        return None
    needle = f'"id":"{recommendation_id}"'.encode()
    for path in _segments(directory):
        for line in _lines(path):
            if needle in line:
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    row = _decode(line)
                    if row.id == recommendation_id:
                        return row
    return None
