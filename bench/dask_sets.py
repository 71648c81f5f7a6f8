"""Benchmark: training sets built on Dask workers and churn trained from their parts,
against the pandas path on the same data, with the client's and each worker's peak memory.

    python -m bench.dask_sets --data DIR --engine dask [--workers 2] [--partitions N]
                              [--scheduler ADDRESS] [--work DIR] [--models phase,churn,...]
                              [--sets-only]
    python -m bench.dask_sets --data DIR --engine pandas

``dask``: ``training.dask_sets.write_sets_dask`` (phase, churn, next-content sets as
Parquet parts under a temporary work directory beside the data, or ``--work``: on a real
cluster a path every worker shares) on a LocalCluster of ``--workers`` single-threaded
worker processes (or the cluster at ``--scheduler``), then
``training.dask_train.train_outcome_parts`` (churn) and
``training.dask_train.train_sampled_parts`` (phase, next content: a seeded sample of
accounts within the client's budget, the share printed).
``pandas``: what ``nba train`` runs for the same sets in one process (read, features, the
three sets) and ``training.outcome.train_outcome`` (churn). Prints one JSON object: wall
and CPU seconds per step, the client's peak memory, each worker's (``dask``: the worker
process's peak over the run, read from the worker at the end), set rows and the churn
model's test metrics with their 95 % intervals beside the strongest baseline's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.measure import machine, peak_rss_mb

MODELS = ["phase", "churn", "next-content"]
REPORTED = ("roc_auc", "pr_auc", "brier")
SCORERS = ("model", "baseline_rfm_logistic", "baseline_recency_logistic", "baseline_logistic")


def _metrics(metrics: dict[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for who in SCORERS:
        for m in REPORTED:
            if f"{who}.{m}" in metrics:
                out[f"{who}.{m}"] = [
                    round(metrics[f"{who}.{m}{s}"], 4) for s in ("", "_ci_low", "_ci_high")
                ]
    return out


CI = ("_ci_low", "_ci_high")
# Per sampled model, the metrics printed for the model and every baseline, with intervals.
SAMPLED_METRICS = {"phase": ("macro_f1_hindsight",), "next-content": ("roc_auc", "dr_value")}


def _sampled_summary(result: Any) -> dict[str, Any]:
    """A phase or next-content result trained on sampled parts: its sample, the primary
    metric (and, for next content, the policy values by DR) with their intervals, the gate."""
    m = result.metrics
    keys = [k for k in m if k.partition(".")[2] in SAMPLED_METRICS[result.name]]
    gate = result.gate
    return {
        "params": {
            k: result.params.get(k)
            for k in ("set_rows", "set_sample_share", "set_sample_rows", "policy_decisions")
        },
        "metrics": {
            k: [round(m[k], 4), *(round(m.get(f"{k}{e}", float("nan")), 4) for e in CI)]
            for k in keys
        },
        "gate": None if gate is None else gate.summary(),
    }


def run_dask(
    data_dir: Path,
    workers: int,
    partitions: int | None,
    scheduler: str | None = None,
    work_dir: Path | None = None,
    models: list[str] = MODELS,
    train: bool = True,
) -> dict[str, Any]:
    """The Dask path's numbers (see the module docstring); ``train``: churn too."""
    from contextlib import nullcontext

    from dask.distributed import Client, LocalCluster

    from features.pipeline.dask_files import peak_mb, read_catalog
    from features.taxonomy import load_taxonomy
    from models.outcomes import load_outcomes
    from training.dask_sets import write_sets_dask
    from training.dask_train import train_outcome_parts, train_sampled_parts

    taxonomy, outcomes = load_taxonomy(), load_outcomes()
    churn = next(o for o in outcomes if o.name == "churn")
    seconds: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(dir=work_dir or data_dir.parent) as work,
        nullcontext(scheduler)
        if scheduler
        else LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        address = client.scheduler.address
        began, cpu = time.perf_counter(), time.process_time()
        built = write_sets_dask(
            data_dir,
            taxonomy,
            Path(work),
            models,
            outcomes,
            scheduler=address,
            npartitions=partitions,
        )
        seconds["sets_s"] = round(time.perf_counter() - began, 1)
        seconds["sets_client_cpu_s"] = round(time.process_time() - cpu, 1)
        client_after_sets = round(peak_rss_mb(), 1)
        result = None
        sampled: dict[str, Any] = {}
        for model in models if train else []:
            began, cpu = time.perf_counter(), time.process_time()
            if model == "churn":
                result = train_outcome_parts(built.sets["churn"], churn, client=client)
            else:
                content = read_catalog(data_dir, taxonomy) if model == "next-content" else None
                sampled[model] = _sampled_summary(
                    train_sampled_parts(built.sets[model], taxonomy, content=content)
                )
            seconds[f"{model}_train_s"] = round(time.perf_counter() - began, 1)
            seconds[f"{model}_client_cpu_s"] = round(time.process_time() - cpu, 1)
            seconds[f"{model}_client_peak_mb"] = round(peak_rss_mb(), 1)
        workers_peak = {str(k): round(v, 1) for k, v in client.run(peak_mb).items()}
        workers_cpu = client.run(time.process_time)
    out: dict[str, Any] = {
        "engine": "dask",
        "partitions": built.partitions,
        "seconds": seconds,
        "set_pass_seconds": built.seconds,
        "set_rows": {m: s.rows for m, s in built.sets.items()},
        "client_peak_mb_after_sets": client_after_sets,
        "client_peak_mb": round(peak_rss_mb(), 1),
        "worker_peak_mb_in_set_tasks": built.worker_peak_mb,
        "worker_peak_mb": workers_peak,
        "worker_cpu_s": {str(k): round(v, 1) for k, v in workers_cpu.items()},
        **sampled,
    }
    if result is None:
        return out
    return {
        **out,
        "churn_params": {
            k: result.params[k]
            for k in ("train_rows", "train_sample_share", "valid_rows", "test_rows")
        },
        "churn_metrics": _metrics(result.metrics),
        "churn_gate": {
            k: result.params[k]
            for k in ("gate_baseline", "gate_model_valid_roc_auc", "gate_baseline_valid_roc_auc")
        },
    }


def run_pandas(data_dir: Path, models: list[str] = MODELS) -> dict[str, Any]:
    """The pandas path's numbers for the same sets and model."""
    from features.taxonomy import load_taxonomy
    from models.outcomes import load_outcomes
    from training.outcome import train_outcome
    from training.train import build_set, prepare

    taxonomy, outcomes = load_taxonomy(), load_outcomes()
    churn = next(o for o in outcomes if o.name == "churn")
    seconds: dict[str, float] = {}
    began, cpu = time.perf_counter(), time.process_time()
    prepared = prepare(data_dir, taxonomy)
    sets = {m: build_set(m, prepared, taxonomy, outcomes) for m in models}
    seconds["sets_s"] = round(time.perf_counter() - began, 1)
    seconds["sets_cpu_s"] = round(time.process_time() - cpu, 1)
    began, cpu = time.perf_counter(), time.process_time()
    result = train_outcome(sets["churn"], churn)
    seconds["churn_train_s"] = round(time.perf_counter() - began, 1)
    seconds["churn_cpu_s"] = round(time.process_time() - cpu, 1)
    return {
        "engine": "pandas",
        "seconds": seconds,
        "set_rows": {m: len(s.frame) for m, s in sets.items()},
        "client_peak_mb": round(peak_rss_mb(), 1),
        "churn_metrics": _metrics(result.metrics),
        "churn_gate": None
        if result.gate is None
        else {"baseline": result.gate.baseline, "model": round(result.gate.model, 6)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--engine", choices=("dask", "pandas"), default="dask")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int)
    parser.add_argument("--scheduler")
    parser.add_argument("--work", type=Path)
    parser.add_argument(
        "--models", default=",".join(MODELS), help="sets to build (churn among them)"
    )
    parser.add_argument("--sets-only", action="store_true", help="build the sets, train no model")
    args = parser.parse_args()
    data_dir = args.data.resolve()
    if args.engine == "dask":
        models = args.models.split(",")
        out = run_dask(
            data_dir,
            args.workers,
            args.partitions,
            args.scheduler,
            args.work,
            models,
            train=not args.sets_only,
        )
    else:
        out = run_pandas(data_dir, args.models.split(","))
    print(json.dumps({**out, "data": str(data_dir), "machine": machine()}))


if __name__ == "__main__":
    main()
