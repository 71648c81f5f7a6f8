"""Training a binary outcome model from its set's Parquet parts (``training.dask_sets``)
on a Dask cluster, the client holding only what the metrics need.

The training and validation rows are read by the workers from the parts, filtered to the
split's as-of dates (``dask.dataframe.from_map``: one partition per part) and grown into
trees by ``lightgbm.dask`` through ``models.churn.fit`` and ``models.fitting.fit_classifier``
(the category encoding as for pandas frames: the parts keep the features' categorical
dtypes). The baselines (logistic regressions on the RFM columns, on recency, and on every
feature) are fitted in the client on the training rows' columns they read, the one on every
feature on a seeded sample of at most ``LOGISTIC_ROWS`` rows; model and baselines then score
the validation and test rows on the workers, and the client gathers per row the label, the
account id and the scores: what the metrics, their intervals and the gate need.

**Memory budget.** When a set's training rows would take more than ``MEMORY_SHARE`` of the
workers' memory as LightGBM's input (``BYTES_PER_VALUE`` per value: the float64 frame and
its binned copy), the model trains on a seeded sample of accounts, drawn in each part by a
hash of the account id (an account keeps all its rows or none); the share is in the
result's params (``train_sample_share``), never silent.

Not here (the pandas path has them): the simulator's oracle and held hazard, the logged
artifacts, and MLflow logging: ``nba train --engine dask`` trains every model, churn too,
through :func:`train_from_parts` on sampled parts, which the pandas training functions
turn into complete, logged results; this lightgbm.dask path is measured by
``bench.dask_sets``.

**Phase and next content** (:func:`train_sampled_parts`) train as the pandas path trains
them, on the rows of a seeded sample of accounts read into the client: as many as a client
memory budget holds (``CLIENT_SET_BYTES``). Either model already learns from a bounded
sample at 100,000 accounts (phase from at most 300,000 training rows, next content's policy
values from at most 100,000 test decisions), so the sample costs their test metrics
precision, not their method; the share is in the result's params.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.attributes import NO_FITTED_ATTRIBUTES
from features.errors import InvalidInputError
from features.pipeline.dask_files import read_catalog
from features.taxonomy import Taxonomy
from models import churn as binary_model
from models.contract import ATTRIBUTES_ARTIFACT
from models.outcomes import Outcome
from training.baselines import (
    CHURN_RECENCY_COLUMNS,
    RFM_COLUMNS,
    FeatureLogistic,
    RecencyLogistic,
)
from training.dask_sets import SetParts, write_sets_dask
from training.datasets import TrainingSet, TrainingSetError
from training.metrics import roc_auc
from training.model_steps import model_steps
from training.outcome import churn_metrics, interval_metrics, validation_calibration
from training.result import ModelResult
from training.splits import split_rows

SAMPLE_SEED = 7
# The client's budget for a set's sampled rows (every column, as read):
# the pandas path's next-content set at 100,000 accounts (2.1M rows) is about this size.
CLIENT_SET_BYTES = 2 * 1024**3
MEMORY_SHARE = 0.25
BYTES_PER_VALUE = 16
# The logistic regression on every feature is fitted in the client: on at most about this
# many training rows (a seeded sample of accounts beyond).
LOGISTIC_ROWS = 200_000
_BASELINE_COLUMNS = list(dict.fromkeys([*RFM_COLUMNS, *CHURN_RECENCY_COLUMNS]))


@dataclass
class PartsResult:
    """A model trained from parts: the estimator, its test metrics (95 % intervals beside
    them), the run's params (the sample share among them) and the rows it saw."""

    estimator: Any
    metrics: dict[str, float]
    params: dict[str, Any]


def workers_memory_bytes(client: Any) -> int:
    """The workers' memory limits added up (0 when a worker has none)."""
    workers = client.scheduler_info()["workers"].values()
    return int(sum(w.get("memory_limit") or 0 for w in workers))


def sample_share(rows: int, row_bytes: int, budget_bytes: float) -> float:
    """The share of accounts to take: 1 when ``rows`` of ``row_bytes`` each fit the budget,
    else the share that does."""
    need = rows * row_bytes
    return 1.0 if budget_bytes <= 0 or need <= budget_bytes else float(budget_bytes / need)


def in_sample(account_ids: pd.Series, share: float, seed: int = SAMPLE_SEED) -> np.ndarray:
    """Whether each account is in the seeded sample of ``share`` of the accounts (the same
    answer for an account wherever its rows are)."""
    hashed = pd.util.hash_pandas_object(
        account_ids.astype(str), index=False, hash_key=f"{seed:016d}"[-16:]
    ).to_numpy()
    return (hashed % np.uint64(2**32)) < np.uint64(int(share * 2**32))


def _gathered(frame: Any) -> pd.DataFrame:
    """The Dask ``frame`` computed into the client. Dask concatenates the parts' categorical
    columns by inserting them one at a time into a frame, which pandas warns about
    (``PerformanceWarning``: "DataFrame is highly fragmented") on every set with a few
    hundred features; the callers read the result column by column or sort it into a new
    frame at once, so the warning says nothing to act on and is kept out of the output."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        return frame.compute()


def _part_meta(path: Path, columns: list[str]) -> pd.DataFrame:
    """The pandas dtypes of ``columns`` of a part (its first row, read alone)."""
    batch = next(pq.ParquetFile(path).iter_batches(batch_size=1, columns=columns))
    return pa.Table.from_batches([batch]).to_pandas().iloc[:0]


def _read_part(
    path: Path,
    *,
    wanted: list[str],
    dates: list[pd.Timestamp],
    share: float,
    seed: int,
    dtypes: dict[str, Any],
) -> pd.DataFrame:
    # not named `columns`: Dask would narrow it to the columns used, dropping account_id
    frame = pd.read_parquet(path, columns=wanted, filters=[("as_of", "in", dates)])
    if share < 1.0:
        frame = frame.loc[in_sample(frame["account_id"], share, seed)]
    return frame.astype(dtypes).reset_index(drop=True)


def read_rows(
    parts: SetParts,
    dates: Sequence[pd.Timestamp],
    columns: Sequence[str],
    *,
    share: float = 1.0,
    seed: int = SAMPLE_SEED,
) -> Any:
    """A Dask frame of the parts' rows on ``dates`` (keys and ``columns``), one partition
    per part, read on the workers; with ``share`` < 1 the seeded sample of accounts."""
    import dask.dataframe as dd

    wanted = list(dict.fromkeys(["account_id", "as_of", *columns]))
    meta = _part_meta(parts.paths[0], wanted)
    return dd.from_map(
        _read_part,
        parts.paths,
        wanted=wanted,
        dates=list(dates),
        share=share,
        seed=seed,
        dtypes=meta.dtypes.to_dict(),
        meta=meta,
        enforce_metadata=False,
    )


def _scored(frame: pd.DataFrame, scorers: dict[str, Any], label: str) -> pd.DataFrame:
    """Per row of a partition: account, label and each scorer's probability (the model's
    raw one as ``p``): what the client gathers."""
    out = pd.DataFrame({"account_id": frame["account_id"].astype(str).to_numpy()})
    out["y"] = frame[label].to_numpy(dtype=np.int64)
    for who, scorer in scorers.items():
        if not len(frame):
            out[who] = np.zeros(0)
        elif who == "p":
            out[who] = binary_model.predict_proba(scorer, frame)
        else:
            out[who] = scorer.predict_proba(frame)
    return out


def train_outcome_parts(
    parts: SetParts,
    outcome: Outcome,
    *,
    client: Any,
    params: dict[str, Any] | None = None,
    budget_bytes: float | None = None,
    seed: int = SAMPLE_SEED,
) -> PartsResult:
    """Fit ``outcome``'s model on the parts' training dates (early stopping on validation),
    calibrate it on validation and score model and baselines on the test dates (see the
    module docstring). ``budget_bytes``: the training rows' memory budget (default
    ``MEMORY_SHARE`` of the workers' memory)."""
    split, label, columns = parts.split, parts.label_column, parts.feature_columns
    budget = MEMORY_SHARE * workers_memory_bytes(client) if budget_bytes is None else budget_bytes
    train_rows = parts.rows_on(split.train)
    share = sample_share(train_rows, len(columns) * BYTES_PER_VALUE, budget)
    train = read_rows(parts, split.train, [*columns, label], share=share, seed=seed)
    valid = read_rows(parts, split.valid, [*columns, label])
    estimator = binary_model.fit(
        train[columns], train[label], valid[columns], valid[label], params=params, client=client
    )
    base = read_rows(parts, split.train, [*_BASELINE_COLUMNS, label], share=share, seed=seed)
    base_rows = _gathered(base)
    y_base = base_rows[label].to_numpy(dtype=np.int64)
    logistic_share = min(share, LOGISTIC_ROWS / max(train_rows, 1))
    wide = read_rows(parts, split.train, [*columns, label], share=logistic_share, seed=seed)
    wide_rows = _gathered(wide)
    baselines: dict[str, FeatureLogistic | RecencyLogistic] = {
        "baseline_rfm_logistic": FeatureLogistic(RFM_COLUMNS).fit(base_rows, y_base),
        "baseline_logistic": FeatureLogistic(tuple(columns)).fit(
            wide_rows, wide_rows[label].to_numpy(dtype=np.int64)
        ),
        "baseline_recency_logistic": RecencyLogistic().fit(base_rows, y_base),
    }
    del wide_rows
    scorers: dict[str, Any] = {"p": estimator, **baselines}
    meta = _scored(valid._meta, scorers, label)

    def gathered(rows: Any) -> pd.DataFrame:
        scored = _gathered(rows.map_partitions(_scored, scorers, label, meta=meta))
        return scored.reset_index(drop=True)

    v = gathered(valid)
    t = gathered(read_rows(parts, split.test, [*columns, label]))
    y_valid, y_test = v["y"].to_numpy(), t["y"].to_numpy()
    calibration = validation_calibration(v["p"].to_numpy(), y_valid)
    scores = {
        "model": binary_model.calibrate(t["p"].to_numpy(), calibration),
        "model_uncalibrated": t["p"].to_numpy(),
        **{who: t[who].to_numpy() for who in baselines},
    }
    on_valid = {who: roc_auc(y_valid, v[who].to_numpy()) for who in baselines}
    strongest = max(on_valid, key=lambda who: on_valid[who])
    metrics = {
        f"{who}.{k}": value
        for who, p in scores.items()
        for k, value in churn_metrics(y_test, p).items()
    }
    metrics.update(
        interval_metrics(
            y_test,
            scores,
            peer=f"baseline_{outcome.peer}",
            strongest=strongest,
            groups=t["account_id"].astype(str).to_numpy(),
        )
    )
    run_params = {
        **calibration,
        "outcome": outcome.name,
        "train_rows": train_rows,
        "train_sample_share": round(share, 6),
        "train_sample_seed": seed,
        "baseline_logistic_sample_share": round(logistic_share, 6),
        "valid_rows": len(v),
        "test_rows": len(t),
        "gate_baseline": strongest,
        "gate_model_valid_roc_auc": round(roc_auc(y_valid, v["p"].to_numpy()), 6),
        "gate_baseline_valid_roc_auc": round(on_valid[strongest], 6),
    }
    return PartsResult(estimator, metrics, run_params)


def _split_dates(parts: SetParts) -> list[pd.Timestamp]:
    """The as-of dates of the parts' training, validation and test splits (not the purged)."""
    return [*parts.split.train, *parts.split.valid, *parts.split.test]


def _bytes_per_row(meta: pd.DataFrame) -> int:
    """A row's in-memory size by the parts' dtypes (text counted as 16 bytes a value)."""
    return int(sum(getattr(t, "itemsize", 16) or 16 for t in meta.dtypes))


def sampled_set(
    parts: SetParts,
    *,
    budget_bytes: float = CLIENT_SET_BYTES,
    seed: int = SAMPLE_SEED,
) -> tuple[TrainingSet, float]:
    """The parts' rows of a seeded sample of accounts (all of them when they fit
    ``budget_bytes``) as the pandas path's ``TrainingSet``: every column, rows in (as_of,
    account_id) order, split on the parts' as-of dates. Returns it and the share of accounts
    sampled."""
    columns = pq.ParquetFile(parts.paths[0]).schema_arrow.names
    meta = _part_meta(parts.paths[0], columns)
    dates = _split_dates(parts)
    share = sample_share(parts.rows_on(dates), _bytes_per_row(meta), budget_bytes)
    frame = _gathered(read_rows(parts, dates, columns, share=share, seed=seed))
    frame = frame.sort_values(["as_of", "account_id"], kind="stable", ignore_index=True)
    if frame.empty:
        raise TrainingSetError(
            f"the {parts.model} parts' sample of {share:.4f} of the accounts holds no row; "
            "expected rows on the split's dates (a larger budget or more data)"
        )
    split = split_rows(frame, parts.split)
    return (
        TrainingSet(
            name=parts.model,
            frame=frame,
            feature_columns=list(parts.feature_columns),
            label_column=parts.label_column,
            horizon_days=parts.horizon_days,
            split=split,
            class_names=list(parts.class_names),
        ),
        share,
    )


def train_sampled_parts(
    parts: SetParts,
    taxonomy: Taxonomy,
    *,
    content: pd.DataFrame | None = None,
    params: dict[str, Any] | None = None,
    budget_bytes: float = CLIENT_SET_BYTES,
    seed: int = SAMPLE_SEED,
    outcomes: Sequence[Outcome] | None = None,
) -> ModelResult:
    """A model (phase, next content, or an outcome of ``outcomes``) trained by its pandas
    training function on :func:`sampled_set`'s rows (see the module docstring);
    ``content``: next content's catalog. The result's params carry the sample
    (``set_sample_share``, ``set_sample_seed``, ``set_rows``: the parts' rows on the
    split's dates)."""
    training_set, share = sampled_set(parts, budget_bytes=budget_bytes, seed=seed)
    kwargs: dict[str, Any] = {"params": params, "truth": None, "taxonomy": taxonomy}
    if parts.model == "next-content":
        kwargs["content"] = content
    result = model_steps(parts.model, outcomes).train(training_set, **kwargs)
    result.params.update(
        {
            "set_sample_share": round(share, 6),
            "set_sample_seed": seed,
            "set_rows": parts.rows_on(_split_dates(parts)),
            "set_sample_rows": len(training_set.frame),
        }
    )
    return result


@dataclass
class PartsRun:
    """What :func:`train_from_parts` did: the results, each model's skip reason, the seconds
    per step, each worker's peak memory (MB) in the set tasks and the account ranges."""

    results: list[ModelResult]
    skipped: dict[str, str]
    seconds: dict[str, float]
    worker_peak_mb: dict[str, float]
    partitions: int


def train_from_parts(
    data_dir: Path,
    taxonomy: Taxonomy,
    models: Sequence[str],
    outcomes: Sequence[Outcome],
    *,
    workdir: Path,
    scheduler: str | None = None,
    npartitions: int | None = None,
    n_dates: int = 12,
    params: dict[str, dict[str, Any]] | None = None,
    on_result: Callable[[ModelResult], object] | None = None,
    on_skip: Callable[[str, str], object] | None = None,
    budget_bytes: float = CLIENT_SET_BYTES,
) -> PartsRun:
    """``nba train --engine dask`` on a Parquet data directory: every model's set built on
    the workers as parts under ``workdir`` (``training.dask_sets.write_sets_dask``; the
    features never reach the client), then each model trained by
    :func:`train_sampled_parts` and handed to ``on_result`` as soon as it is done. With
    ``on_skip``, a model its sample cannot train (an :class:`InvalidInputError`) is skipped
    with the reason and the others train, as ``training.train.train_models`` does."""
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    built = write_sets_dask(
        data_dir,
        taxonomy,
        workdir,
        models,
        outcomes,
        n_dates=n_dates,
        scheduler=scheduler,
        npartitions=npartitions,
    )
    seconds["sets_s"] = time.perf_counter() - began
    content = read_catalog(data_dir, taxonomy) if "next-content" in models else None
    results: list[ModelResult] = []
    skipped: dict[str, str] = {}
    for model in models:
        began = time.perf_counter()
        try:
            result = train_sampled_parts(
                built.sets[model],
                taxonomy,
                content=content,
                params=(params or {}).get(model) or None,
                budget_bytes=budget_bytes,
                outcomes=outcomes,
            )
        except InvalidInputError as exc:
            if on_skip is None:
                raise
            skipped[model] = exc.details
            on_skip(model, exc.details)
            continue
        finally:
            seconds[f"{model}_train_s"] = time.perf_counter() - began
        # Parts carry no custom attribute (write_sets_dask builds none): serving encodes
        # with exactly these, as after training in one process.
        result.extra_artifacts[ATTRIBUTES_ARTIFACT] = json.dumps(NO_FITTED_ATTRIBUTES.to_dict())
        results.append(result)
        if on_result is not None:
            on_result(result)
    return PartsRun(results, skipped, seconds, built.worker_peak_mb, built.partitions)
