"""A large world written in account chunks, with memory bounded by one chunk.

:func:`simulate` steps every account of a run at once, so its memory grows with the
accounts (about 2-3 GB at 100,000). :func:`write_simulation_chunked` splits the accounts into
chunks of at most ``chunk_accounts``, simulates each chunk as its own run and appends its
tables to one Parquet file per table (and per truth table), then drops it.

The seed contract: chunk 0 is ``simulate(n_0, seed)`` and chunk k > 0 is
``simulate(n_k, chunk_seed(seed, k))`` (:func:`chunk_seed`), each numbering its ids after
those of the chunks before it (:class:`~features.simulate.tables.IdStart`). So one chunk is
exactly today's ``simulate(n, seed)``; the same seed and chunk size give the same world; a
different chunk size gives a different (equally distributed) world, since accounts in
different chunks draw from different streams. Accounts do not interact in the simulator, so
a chunked world is the same model as one run. Rows are in chunk order, and within a chunk in
the order one run writes them (touchpoints and exposures in time order), so every chunk is a
block of whole accounts: account ranges partition the files (the Dask engine reads them so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.simulate.params import SimulationParams
from features.simulate.run import simulate
from features.simulate.tables import IdStart, Simulation
from features.taxonomy import Taxonomy

# Tables identical in every chunk (the catalog, the response model): written once.
_ONCE = {"content", "params"}


def chunk_seed(seed: int, k: int) -> int:
    """The seed of chunk ``k`` of a world seeded ``seed``: ``seed`` itself for chunk 0 (so a
    one-chunk world is ``simulate(n, seed)``), else a 63-bit number from numpy's
    ``SeedSequence([seed, k])``."""
    if k == 0:
        return seed
    return int(np.random.SeedSequence([seed, k]).generate_state(1, dtype=np.uint64)[0] >> 1)


def chunk_sizes(n_accounts: int, chunk_accounts: int) -> list[int]:
    """Accounts per chunk: ``chunk_accounts`` each, the rest in the last one."""
    full, rest = divmod(n_accounts, chunk_accounts)
    return [chunk_accounts] * full + ([rest] if rest else [])


@dataclass
class ChunkedSummary:
    """What :func:`write_simulation_chunked` wrote: rows per table, and per chunk."""

    rows: dict[str, int] = field(default_factory=dict)
    chunks: list[int] = field(default_factory=list)


class _Writers:
    """One Parquet writer per output file, opened on the first frame it gets; each frame
    goes in as row groups of its own (a chunk never shares a row group with another)."""

    def __init__(self) -> None:
        self._open: dict[Path, pq.ParquetWriter] = {}

    def write(self, path: Path, frame: pd.DataFrame) -> None:
        writer = self._open.get(path)
        table = pa.Table.from_pandas(
            frame, schema=writer.schema if writer else None, preserve_index=False
        )
        if writer is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(path, table.schema)
            self._open[path] = writer
        writer.write_table(table, row_group_size=1_000_000)

    def close(self) -> None:
        for writer in self._open.values():
            writer.close()
        self._open.clear()


def write_simulation_chunked(
    out_dir: Path | str,
    n_accounts: int,
    seed: int,
    *,
    chunk_accounts: int = 100_000,
    start: pd.Timestamp | str = "2024-01-01",
    months: int = 24,
    taxonomy: Taxonomy | None = None,
    params: SimulationParams | None = None,
    oracle_as_of: Sequence[pd.Timestamp | str] = (),
    oracle_draws: int = 100,
) -> ChunkedSummary:
    """Simulate ``n_accounts`` in chunks (see the module docstring) into ``out_dir``: the
    six tables as ``<table>.parquet`` and the truth as ``truth/<name>.parquet``, as
    :func:`~features.simulate.write_simulation` lays them out. Memory is that of one chunk
    of ``chunk_accounts`` accounts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = ChunkedSummary()
    first = IdStart(world_accounts=n_accounts)
    writers = _Writers()
    try:
        for k, size in enumerate(chunk_sizes(n_accounts, chunk_accounts)):
            sim = simulate(
                size,
                chunk_seed(seed, k),
                start=start,
                months=months,
                taxonomy=taxonomy,
                params=params,
                oracle_as_of=oracle_as_of,
                oracle_draws=oracle_draws,
                first_ids=first,
            )
            _write_chunk(sim, out, writers, first_chunk=k == 0, summary=summary)
            summary.chunks.append(size)
            data = sim.data
            first = IdStart(
                account=first.account + size,
                contact=first.contact + len(data.contacts),
                event=first.event + len(data.touchpoints),
                exposure=first.exposure + len(data.exposures),
                world_accounts=n_accounts,
            )
            del sim, data
    finally:
        writers.close()
    return summary


def _write_chunk(
    sim: Simulation, out: Path, writers: _Writers, *, first_chunk: bool, summary: ChunkedSummary
) -> None:
    for name, frame in sim.data.tables().items():
        if name in _ONCE and not first_chunk:
            continue
        writers.write(out / f"{name}.parquet", frame)
        summary.rows[name] = summary.rows.get(name, 0) + len(frame)
    for name, frame in sim.truth.tables().items():
        if name in _ONCE and not first_chunk:
            continue
        writers.write(out / "truth" / f"{name}.parquet", frame)
