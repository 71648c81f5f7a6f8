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
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.errors import UnavailableError
from features.schema import JourneyData

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
    try:
        return process.wait()
    except KeyboardInterrupt:  # the server got the same Ctrl-C: let it finish
        return process.wait()


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
