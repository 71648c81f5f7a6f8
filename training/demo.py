"""``nba demo``: the main job end to end on simulated data, ending one command from a
running service.

:func:`run_demo` simulates accounts whose data end today (UTC, at midnight: the demo is
deterministic given its seed and end date), trains and registers the three models in the
demo's own MLflow store, writes the quality report, and hands over to the service: it loads
the data into the demo's own store and creates a key with ``nba load`` and
``nba keys create`` (the serving layer's commands, run as commands: training does not
import serving), and returns the exact ``nba serve`` command and the page URLs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from features.errors import UnavailableError
from features.schema import JourneyData
from features.simulate import SimulationParams
from features.taxonomy import Taxonomy

# What the demo's key may do: read recommendations and worklists (any rep's: it has no rep),
# give feedback and send events, so every page and route of the demo works with it.
DEMO_KEY_NAME = "demo"
DEMO_KEY_SCOPES = "recommendations:read,worklists:read,feedback:write,events:write"
DEMO_MONTHS = 24


@dataclass(frozen=True)
class Handoff:
    """How to reach the demo's service: the environment ``nba serve`` needs (store and
    tracking URI), the command as a user types it, the key and the URLs to open."""

    env: dict[str, str]
    serve_args: tuple[str, ...]
    key: str
    urls: dict[str, str]

    @property
    def serve_command(self) -> str:
        """``nba serve`` with the demo's store and tracking URI, as a user types it."""
        assignments = " ".join(f"{k}={v}" for k, v in self.env.items())
        return " ".join([assignments, *nba_command(), *self.serve_args])

    def text(self) -> str:
        """The lines that tell a user how to start and use the service."""
        return "\n".join(
            [
                "",
                "The service is one command away (its store holds the demo's data, its "
                "models are the demo's champions):",
                "",
                f"  {self.serve_command}",
                "",
                "(or run the demo with --serve). Then open, with the demo's API key "
                f"{self.key} (shown once):",
                "",
                *(f"  {what}: {url}" for what, url in self.urls.items()),
                "",
            ]
        )


@dataclass(frozen=True)
class DemoRun:
    """What a demo run did: its JSON summary, the handoff to the service and, when some
    model lost its gate, the note that says so (empty otherwise)."""

    summary: dict[str, Any]
    handoff: Handoff
    losers_note: str


def run_demo(
    out: Path,
    accounts: int,
    seed: int,
    taxonomy: Taxonomy,
    *,
    params: SimulationParams,
    end: str | None,
    host: str,
    port: int,
    force: bool,
) -> DemoRun:
    """Simulate, validate, build features, train and register the three models (MLflow store
    in OUT/mlflow.db), write OUT/quality.md and hand over to the service (see the module
    docstring). ``force`` makes every model champion even if it loses its gate."""
    from features.pipeline import build_features
    from features.simulate import simulate as run_simulation
    from features.simulate import write_simulation
    from training.report import champions_report
    from training.tracking import configure_tracking, log_result
    from training.train import prepare, train_models

    tax = taxonomy
    steps: dict[str, float] = {}
    started = time.perf_counter()
    last_day = demo_end(end)
    sim = run_simulation(
        accounts,
        seed,
        start=demo_start(last_day),
        months=DEMO_MONTHS,
        taxonomy=tax,
        params=params,
    )
    data_dir = write_simulation(sim, out / "data")
    steps["simulate_s"] = time.perf_counter() - started
    started = time.perf_counter()
    prepared = prepare(data_dir, tax, n_dates=12)
    models = ["phase", "churn", "next-content"]
    prepared.plan(models)
    prepared.features  # noqa: B018 - computed now, so the step's time includes them
    steps["load_and_features_s"] = time.perf_counter() - started
    latest = build_features(prepared.data, [prepared.as_of[-1]], tax)
    latest.to_parquet(out / "features.parquet", index=False)

    started = time.perf_counter()
    uri = configure_tracking(f"sqlite:///{(out / 'mlflow.db').resolve()}")
    versions = {}
    for result in train_models(models, prepared, tax):
        logged = log_result(result, artifact_root=out / "mlruns", force=force)
        versions[logged.registered_name] = {
            "version": logged.version,
            "champion": logged.champion,
            result.primary_metric: round(result.metrics[result.primary_metric], 4),
        }
    steps["train_and_log_s"] = time.perf_counter() - started
    report_file = out / "quality.md"
    report_file.write_text(champions_report())

    started = time.perf_counter()
    handoff = hand_over(out, sim.data, uri, host=host, port=port)
    steps["store_and_key_s"] = time.perf_counter() - started
    summary = {
        "data_dir": str(data_dir),
        "data_end": str(last_day.date()),
        "tables": {name: len(f) for name, f in sim.data.tables().items()},
        "features_file": str(out / "features.parquet"),
        "features": latest.shape[1] - 2,
        "as_of_grid": [str(d.date()) for d in (prepared.as_of[0], prepared.as_of[-1])],
        "tracking_uri": uri,
        "models": versions,
        "quality_report": str(report_file),
        "store": handoff.env["NBA_DATABASE_URL"],
        "serve": handoff.serve_command,
        "urls": handoff.urls,
        "seconds": {k: round(v, 2) for k, v in steps.items()},
    }
    losers = [name for name, v in versions.items() if not v["champion"]]
    note = ""
    if losers:
        note = (
            f"Not champion (lost to its strongest baseline, see {report_file}): "
            f"{', '.join(losers)}; the service answers without "
            + (
                "any model (not ready)"
                if len(losers) == len(versions)
                else ("it" if len(losers) == 1 else "them")
            )
            + ". To serve it anyway: the same demo with --force (tagged nba.forced)."
        )
    return DemoRun(summary, handoff, note)


def demo_end(end: str | None) -> pd.Timestamp:
    """The last simulated day: ``end`` (a date) or today, UTC, at midnight."""
    stamp = pd.Timestamp(end) if end is not None else pd.Timestamp.now(tz="UTC")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.normalize()


def demo_start(end: pd.Timestamp) -> pd.Timestamp:
    """The first simulated day of :data:`DEMO_MONTHS` months ending at ``end``."""
    return end - pd.DateOffset(months=DEMO_MONTHS)


def nba_command() -> list[str]:
    """``nba`` as the user started it (``.venv/bin/nba`` stays as typed), else this
    interpreter's ``python -m nba``."""
    if Path(sys.argv[0]).name == "nba":
        return [sys.argv[0]]
    return [sys.executable, "-m", "nba"]


def hand_over(out: Path, data: JourneyData, tracking_uri: str, *, host: str, port: int) -> Handoff:
    """Loads ``out/data`` into a fresh store ``out/nba.db`` and creates the demo key there
    (the serving commands, run in this interpreter); returns how to serve it."""
    database = (out / "nba.db").resolve()
    for old in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        old.unlink(missing_ok=True)
    shutil.rmtree(Path(f"{database}.served"), ignore_errors=True)
    env = {"NBA_DATABASE_URL": f"sqlite:///{database}", "MLFLOW_TRACKING_URI": tracking_uri}
    _run_nba(["load", str((out / "data").resolve()), "--json"], env)
    key = _run_nba(
        ["keys", "create", "--name", DEMO_KEY_NAME, "--scopes", DEMO_KEY_SCOPES], env
    ).strip()
    account, rep = _example(data)
    base = f"http://{host}:{port}"
    urls = {"account widget": f"{base}/widget/accounts/{account}#key={key}"}
    if rep is not None:
        urls["rep worklist"] = f"{base}/reps/{rep}#key={key}"
    urls["API docs"] = f"{base}/docs"
    urls["recommendations"] = (
        f'curl -H "Authorization: Bearer {key}" {base}/v1/accounts/{account}/recommendations?k=3'
    )
    return Handoff(
        env=env,
        serve_args=("serve", "--host", host, "--port", str(port)),
        key=key,
        urls=urls,
    )


def serve(handoff: Handoff) -> int:
    """Runs ``nba serve`` as the handoff says until it stops (Ctrl-C); its exit code."""
    process = subprocess.Popen(
        [sys.executable, "-m", "nba", *handoff.serve_args], env={**os.environ, **handoff.env}
    )

    # A process manager (or `timeout`, `docker stop`) stops the demo with SIGTERM, which only
    # this process receives: pass it on, or the server would be left running on its port.
    def stop(signum: int, _frame: object) -> None:
        process.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return process.wait()
    except KeyboardInterrupt:  # the server got the same Ctrl-C: let it finish
        return process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_nba(args: list[str], env: dict[str, str]) -> str:
    """Runs ``python -m nba ARGS`` with ``env`` added; its stdout. Raises
    :class:`UnavailableError` with its error output when it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "nba", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise UnavailableError(
            f"`nba {' '.join(args)}` failed (exit {done.returncode}) after "
            f"{time.perf_counter() - started:.1f} s: {done.stderr.strip()[-2000:]}"
        )
    return done.stdout


def _example(data: JourneyData) -> tuple[str, str | None]:
    """An account to open the widget on (the one with the latest touchpoint, among those a
    rep owns when any is) and its rep (None when no account has one)."""
    accounts = data.accounts
    owned = accounts[accounts["owner_rep_id"].notna()] if "owner_rep_id" in accounts else None
    pool = owned if owned is not None and len(owned) else accounts
    touchpoints = data.touchpoints
    recent = touchpoints[touchpoints["account_id"].isin(pool["account_id"])]
    latest = recent.sort_values("ts", kind="stable")["account_id"].astype(str)
    account = latest.iloc[-1] if len(latest) else str(pool["account_id"].iloc[0])
    if pool is accounts:
        return account, None
    return account, str(pool.loc[pool["account_id"] == account, "owner_rep_id"].iloc[0])
