"""Training sets built on Dask workers, one account range at a time, written as Parquet.

At a million accounts no process holds the data, the as-of grid's features or a model's
training set. Here the client reads only the data's span (first touchpoint, data end: a
DuckDB scan) and the accounts' ids, and decides what needs the whole data: the as-of dates
(``training.datasets.as_of_grid``, ``training.outcome_sets.outcome_moments``) and each set's
split by as-of date (``training.splits``). Each account range
(``features.pipeline.dask_files.account_ranges``) is then read, validated and turned into
its rows of every set on a worker, by the functions the pandas path builds whole sets with
(``phase_rows``, ``outcome_rows``, ``next_content_rows``), and written as
``<workdir>/sets/<model>/part-<i>.parquet``: the parts together are the pandas set's rows.

The phase set's labels read figures of the whole population: which phases the CRM records
(its classes) and, for hindsight labels, which phase purchases lead to and the phase
durations (``training.hindsight``). Three passes over the ranges give them:

1. features of the range on every as-of date (``<workdir>/features/part-<i>.parquet``), the
   phases its CRM records and the purchase evidence; the range's stages and lifecycle
   touchpoints go to ``<workdir>/hindsight/`` (small);
2. from those small files, the record pairs the durations are read from (per as-of date);
3. the rows of every set, from the range's data (read again) and features.

Only the grid's anchors are supported: outcomes scored at anchored moments, custom
attributes and next-action sets (a "no action" control) need the pandas engine.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.errors import InvalidInputError
from features.files import find_table_file
from features.pipeline.compute import compute_features
from features.pipeline.dask_engine import dask_client
from features.pipeline.dask_files import (
    ACCOUNTS_PER_PARTITION,
    account_ranges,
    cross_range_duplicates,
    peak_mb,
    raise_range_problems,
    read_range,
)
from features.schema import NO_ACTION_CONTENT_ID, JourneyData, empty_table
from features.taxonomy import Taxonomy
from features.timestamps import to_utc
from models import churn as binary_model
from models import next_content as nc
from models import phase as phase_model
from models.outcomes import Outcome
from training import next_content
from training.datasets import (
    PHASE_TEST_DATES,
    PHASE_VALID_DATES,
    TrainingSetError,
    as_of_grid,
    phase_rows,
    recorded_phases,
)
from training.hindsight import (
    HINDSIGHT_DAYS,
    LIFECYCLE_EVENTS,
    HindsightStats,
    after_purchase_of,
    hindsight_stats,
    purchase_evidence,
    readable_pairs,
)
from training.labels import PHASE_LABEL_LAG_DAYS, label_phase
from training.outcome_sets import (
    GRID_VALID_DATES,
    Moments,
    outcome_moments,
    outcome_rows,
)
from training.outcome_sets import LABEL_COLUMN as OUTCOME_LABEL
from training.splits import AsOfSplit, split_as_of_dates


class DaskSetsError(InvalidInputError):
    """The training sets cannot be built on the workers as asked; the message says why."""


@dataclass
class SetParts:
    """One model's training set as Parquet parts (``paths``, account-range order): its rows,
    columns and split, as the pandas path's ``TrainingSet`` has them."""

    model: str
    paths: list[Path]
    rows: int
    feature_columns: list[str]
    label_column: str
    horizon_days: int
    split: AsOfSplit
    class_names: list[str] = field(default_factory=list)
    rows_per_date: dict[pd.Timestamp, int] = field(default_factory=dict)

    def rows_on(self, dates: Sequence[pd.Timestamp]) -> int:
        """How many rows the parts hold on ``dates``."""
        return sum(self.rows_per_date.get(pd.Timestamp(d), 0) for d in dates)


@dataclass
class DaskSets:
    """What :func:`write_sets_dask` wrote: each model's parts, the account ranges, each
    worker's peak memory (MB, the largest a task of it reported) and the seconds per pass."""

    sets: dict[str, SetParts]
    partitions: int
    worker_peak_mb: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Plan:
    """What every range's task needs from the client: as-of dates of each set, the data
    end and, for phase, the whole data's classes and hindsight figures."""

    grid: tuple[pd.Timestamp, ...]
    next_content: tuple[pd.Timestamp, ...]
    moments: dict[str, Moments]
    end: pd.Timestamp
    classes: tuple[str, ...] = ()
    hindsight: HindsightStats | None = None

    @property
    def dates(self) -> list[pd.Timestamp]:
        """Every as-of date a set reads features at."""
        found = {*self.grid, *self.next_content}
        for moments in self.moments.values():
            found.update(moments.dates)
        return sorted(found)


def data_span(data_dir: Path) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first touchpoint and the data end (``training.datasets.data_end``: the latest
    timestamp of touchpoints, stages and exposures) of a Parquet data directory, read by a
    DuckDB scan of the ``ts`` columns."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        ends: list[pd.Timestamp] = []
        first: pd.Timestamp | None = None
        for table in ("touchpoints", "stages", "exposures"):
            path = find_table_file(data_dir, table)
            if path is None or path.suffix != ".parquet":
                continue
            low, high = con.execute(
                "SELECT min(ts), max(ts) FROM read_parquet(?)", [str(path)]
            ).fetchone() or (None, None)
            if high is not None:
                ends.append(to_utc(pd.Timestamp(high)))
            if table == "touchpoints" and low is not None:
                first = to_utc(pd.Timestamp(low))
    finally:
        con.close()
    if first is None:
        raise TrainingSetError("table 'touchpoints' is empty; expected events to label from")
    return first, max(ends)


def _span_data(first: pd.Timestamp, end: pd.Timestamp, taxonomy: Taxonomy) -> JourneyData:
    """Data holding only the span: two touchpoints, at ``first`` and ``end``. What the grid
    and moment functions read of the data is its span, so they give the whole data's dates
    from it."""
    tables = {
        name: empty_table(name, taxonomy)
        for name in ("accounts", "contacts", "content", "stages", "exposures")
    }
    touchpoints = pd.DataFrame({"ts": pd.DatetimeIndex([first, end]).as_unit("ns")})
    return JourneyData(touchpoints=touchpoints, **tables)


def _has_control(data_dir: Path) -> bool:
    path = find_table_file(data_dir, "exposures")
    if path is None or path.suffix != ".parquet":
        return False
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        found = con.execute(
            "SELECT count(*) FROM read_parquet(?) WHERE CAST(content_id AS VARCHAR) = ?",
            [str(path), NO_ACTION_CONTENT_ID],
        ).fetchone()
    finally:
        con.close()
    return bool(found and found[0])


def _plan(
    data_dir: Path,
    taxonomy: Taxonomy,
    models: Sequence[str],
    outcomes: Sequence[Outcome],
    n_dates: int,
) -> _Plan:
    first, end = data_span(data_dir)
    span = _span_data(first, end, taxonomy)
    declared = {o.name: o for o in outcomes}
    moments = {}
    for model in models:
        if model in declared:
            # Anchored moments are read from the rows, which the span alone does not hold.
            if declared[model].score_at.anchored:
                raise DaskSetsError(
                    f"outcome {model!r} is scored at anchored moments "
                    f"({declared[model].score_at.describe()}); on Dask only calendar grids "
                    "are built: train it with --engine pandas"
                )
            moments[model] = outcome_moments(span, declared[model], n_dates=n_dates)
        elif model not in ("phase", "next-content"):
            raise DaskSetsError(f"unknown model {model!r}")
    if "next-content" in models and _has_control(data_dir):
        raise DaskSetsError(
            "the exposures log a 'no action' control: next-action sets are anchored on the "
            "decisions and are built with --engine pandas"
        )
    grid = as_of_grid(span, n_dates) if "phase" in models else []
    nc_grid = (
        as_of_grid(span, n_dates, horizon_days=next_content.HORIZON_DAYS)
        if "next-content" in models
        else []
    )
    return _Plan(tuple(grid), tuple(nc_grid), moments, end)


def _features_pass(
    data_dir: str,
    lo: str | None,
    hi: str | None,
    workdir: str,
    i: int,
    plan: _Plan,
    taxonomy: Taxonomy,
) -> dict[str, Any]:
    """Pass 1 on one range: features on every date; the phases the CRM records and the
    purchase evidence (taxonomy phase order); the range's stages and lifecycle
    touchpoints for pass 2."""
    data, report = read_range(Path(data_dir), lo, hi, taxonomy)
    if data is None:
        return {"problems": report.problems, "lengths": report.row_counts}
    features = compute_features(data, plan.dates, taxonomy)
    features.to_parquet(Path(workdir) / "features" / f"part-{i:05d}.parquet", index=False)
    out: dict[str, Any] = {"rows_in": {n: len(t) for n, t in data.tables().items()}}
    if plan.grid:
        on_grid = features.loc[features["as_of"].isin(list(plan.grid)), ["account_id", "as_of"]]
        label = label_phase(data.stages, on_grid, taxonomy, lag_days=PHASE_LABEL_LAG_DAYS)
        out["recorded"] = sorted(set(label.dropna().astype(str)))
        phases = list(taxonomy.phases)
        out["evidence"] = purchase_evidence(
            data.stages, data.touchpoints, phases, PHASE_LABEL_LAG_DAYS
        )
        tp = data.touchpoints
        life = tp.loc[tp["event_type"].astype(str).isin(LIFECYCLE_EVENTS)]
        hindsight = Path(workdir) / "hindsight"
        data.stages[["account_id", "ts", "phase"]].to_parquet(
            hindsight / f"stages-{i:05d}.parquet", index=False
        )
        life[["account_id", "ts", "event_type"]].to_parquet(
            hindsight / f"lifecycle-{i:05d}.parquet", index=False
        )
    out["peak_mb"] = round(peak_mb(), 1)
    return out


def _pairs_pass(workdir: str, i: int, plan: _Plan, after: int) -> dict[str, Any]:
    """Pass 2 on one range: the record pairs hindsight durations are read from."""
    hindsight = Path(workdir) / "hindsight"
    stages = pd.read_parquet(hindsight / f"stages-{i:05d}.parquet")
    life = pd.read_parquet(hindsight / f"lifecycle-{i:05d}.parquet")
    pairs = readable_pairs(
        stages,
        life,
        list(plan.classes),
        list(plan.grid),
        lag_days=PHASE_LABEL_LAG_DAYS,
        after_purchase=after,
    )
    return {"pairs": pairs, "peak_mb": round(peak_mb(), 1)}


def _set_columns(model: str, taxonomy: Taxonomy, outcomes: dict[str, Outcome]) -> list[str]:
    if model == "phase":
        return phase_model.feature_columns(taxonomy)
    if model == "next-content":
        return nc.feature_columns(taxonomy)
    columns = binary_model.feature_columns(taxonomy)
    return [c for c in columns if c not in outcomes[model].exclude_features]


def _sets_pass(
    data_dir: str,
    lo: str | None,
    hi: str | None,
    workdir: str,
    i: int,
    plan: _Plan,
    taxonomy: Taxonomy,
    models: Sequence[str],
    outcomes: dict[str, Outcome],
) -> dict[str, Any]:
    """Pass 3 on one range: its rows of every model's set, written as its parts."""
    data, _ = read_range(Path(data_dir), lo, hi, taxonomy)
    assert data is not None  # pass 1 validated the same rows
    features = pd.read_parquet(Path(workdir) / "features" / f"part-{i:05d}.parquet")
    out: dict[str, Any] = {"sets": {}}
    for model in models:
        columns = _set_columns(model, taxonomy, outcomes)
        if model == "phase":
            on_grid = features.loc[features["as_of"].isin(list(plan.grid))]
            frame, _ = phase_rows(
                data,
                taxonomy,
                on_grid.reset_index(drop=True),
                columns,
                classes=plan.classes,
                end=plan.end,
                hindsight=plan.hindsight,
            )
        elif model == "next-content":
            on_grid = features.loc[features["as_of"].isin(list(plan.next_content))]
            try:
                frame = next_content.next_content_rows(
                    data,
                    taxonomy,
                    on_grid.reset_index(drop=True),
                    window_days=next_content.EXPOSURE_WINDOW_DAYS,
                )
            except TrainingSetError as exc:  # no exposure of this range in a window
                out["sets"][model] = {"rows": 0, "dates": {}, "why": exc.details}
                continue
        else:
            frame = outcome_rows(data, features, outcomes[model], plan.moments[model], columns)
        path = Path(workdir) / "sets" / model / f"part-{i:05d}.parquet"
        if len(frame):
            frame.to_parquet(path, index=False)
        per_date = frame["as_of"].value_counts() if len(frame) else pd.Series(dtype=int)
        dates = dict(zip(pd.DatetimeIndex(per_date.index), per_date.tolist(), strict=True))
        out["sets"][model] = {"rows": len(frame), "dates": dates}
    out["peak_mb"] = round(peak_mb(), 1)
    return out


def write_sets_dask(
    data_dir: Path,
    taxonomy: Taxonomy,
    workdir: Path,
    models: Sequence[str],
    outcomes: Sequence[Outcome],
    *,
    n_dates: int = 12,
    scheduler: str | None = None,
    npartitions: int | None = None,
) -> DaskSets:
    """The training sets of ``models`` (phase, next-content, declared ``outcomes`` scored
    on a calendar grid) of the Parquet directory ``data_dir``, built on the workers of the
    cluster at ``scheduler`` (a new local one without) per account range and written under
    ``workdir/sets/<model>/`` (see the module docstring). ``npartitions``: account ranges
    (default one per ``ACCOUNTS_PER_PARTITION`` accounts, at least two per worker). Raises
    DataValidationError with every range's problems, TrainingSetError when a set has no
    rows."""

    root = Path(data_dir).resolve()
    work = Path(workdir).resolve()
    for sub in ("features", "hindsight", "sets"):
        shutil.rmtree(work / sub, ignore_errors=True)
        (work / sub).mkdir(parents=True)
    for model in models:
        (work / "sets" / model).mkdir()
    declared = {o.name: o for o in outcomes}
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    plan = _plan(root, taxonomy, models, outcomes, n_dates)
    seconds["plan_s"] = time.perf_counter() - started
    n_accounts = pq.ParquetFile(find_table_file(root, "accounts")).metadata.num_rows
    peaks: dict[str, float] = {}
    with dask_client(scheduler) as client:
        workers = len(client.scheduler_info()["workers"])  # type: ignore[attr-defined]
        n = npartitions or max(2 * workers, math.ceil(n_accounts / ACCOUNTS_PER_PARTITION))
        ranges = account_ranges(root, n)

        def run(name: str, task: Any, *args: Any) -> list[dict[str, Any]]:
            began = time.perf_counter()
            futures = [
                client.submit(task, *a, key=f"nba-{name}-{i}-{work}", pure=False)  # type: ignore[attr-defined]
                for i, a in enumerate(args)
            ]
            shared = cross_range_duplicates(root) if name == "features" else []
            parts: list[dict[str, Any]] = client.gather(futures)  # type: ignore[attr-defined]
            who = client.who_has(futures)  # type: ignore[attr-defined]
            raise_range_problems(parts, shared)
            for future, part in zip(futures, parts, strict=True):
                for worker in who.get(future.key, ()) or ("unknown",):
                    peaks[worker] = max(peaks.get(worker, 0.0), part["peak_mb"])
            seconds[f"{name}_s"] = time.perf_counter() - began
            return parts

        where = [(str(root), lo, hi, str(work), i) for i, (lo, hi) in enumerate(ranges)]
        first = run("features", _features_pass, *[(*w, plan, taxonomy) for w in where])
        if plan.grid:
            plan = _phase_figures(plan, taxonomy, first)
            pairs = run(
                "pairs",
                _pairs_pass,
                *[(str(work), i, plan, _after(plan)) for i in range(len(ranges))],
            )
            assert plan.hindsight is not None
            stats = hindsight_stats(
                plan.hindsight.after_purchase, len(plan.classes), [p["pairs"] for p in pairs]
            )
            plan = _Plan(plan.grid, plan.next_content, plan.moments, plan.end, plan.classes, stats)
        parts = run(
            "sets", _sets_pass, *[(*w, plan, taxonomy, list(models), declared) for w in where]
        )
    shutil.rmtree(work / "hindsight", ignore_errors=True)
    sets = {m: _set_parts(m, plan, taxonomy, declared, parts, work) for m in models}
    return DaskSets(sets, len(ranges), peaks, {k: round(v, 1) for k, v in seconds.items()})


def _after(plan: _Plan) -> int:
    assert plan.hindsight is not None
    return plan.hindsight.after_purchase


def _phase_figures(plan: _Plan, taxonomy: Taxonomy, parts: list[dict[str, Any]]) -> _Plan:
    """The plan with the phase set's classes and the class purchases lead to (durations
    follow from pass 2)."""
    recorded = pd.Series([p for part in parts for p in part["recorded"]], dtype=object)
    classes = recorded_phases(recorded, taxonomy, PHASE_LABEL_LAG_DAYS)
    evidence = np.sum([part["evidence"] for part in parts], axis=0)
    position = [list(taxonomy.phases).index(c) for c in classes]
    after = after_purchase_of(evidence[:, position])
    return _Plan(
        plan.grid,
        plan.next_content,
        plan.moments,
        plan.end,
        tuple(classes),
        HindsightStats(after, {}),
    )


def _set_parts(
    model: str,
    plan: _Plan,
    taxonomy: Taxonomy,
    outcomes: dict[str, Outcome],
    parts: list[dict[str, Any]],
    work: Path,
) -> SetParts:
    """One model's parts and its split by the as-of dates of all of them."""
    mine = [p["sets"][model] for p in parts]
    rows = sum(m["rows"] for m in mine)
    if rows == 0:
        why = next((m["why"] for m in mine if "why" in m), "no range has a row")
        raise TrainingSetError(f"{model}: {why}")
    rows_per_date: dict[pd.Timestamp, int] = {}
    for m in mine:
        for d, n in m["dates"].items():
            rows_per_date[d] = rows_per_date.get(d, 0) + n
    dates = sorted(rows_per_date)
    paths = [
        work / "sets" / model / f"part-{i:05d}.parquet" for i, m in enumerate(mine) if m["rows"]
    ]
    if model == "phase":
        horizon = max(PHASE_LABEL_LAG_DAYS, HINDSIGHT_DAYS)
        valid, test, label = PHASE_VALID_DATES, PHASE_TEST_DATES, phase_model.LABEL_COLUMN
    elif model == "next-content":
        horizon = next_content.HORIZON_DAYS
        valid, test, label = next_content.VALID_DATES, next_content.TEST_DATES, nc.LABEL_COLUMN
    else:
        horizon = outcomes[model].horizon_days
        valid, test = GRID_VALID_DATES, plan.moments[model].test_dates
        label = OUTCOME_LABEL
    split = split_as_of_dates(
        pd.DatetimeIndex(dates), valid_dates=valid, test_dates=test, horizon_days=horizon
    )
    return SetParts(
        model=model,
        paths=paths,
        rows=rows,
        feature_columns=_set_columns(model, taxonomy, outcomes),
        label_column=label,
        horizon_days=horizon,
        split=split,
        class_names=list(plan.classes) if model == "phase" else [],
        rows_per_date=rows_per_date,
    )
