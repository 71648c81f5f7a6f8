"""Side measurement of the service benchmark: one account's answer from our API against
``mlflow models serve`` answering the champion churn model for the same feature row."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.serve_load import free_port, percentiles


def _churn_champion_inputs(tracking_uri: str) -> list[str]:
    """The input columns of the champion churn model's signature (from its MLmodel file)."""
    import mlflow
    from mlflow.models import Model

    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = client.get_model_version_by_alias("nba-churn", "champion")
    # MLflow 3 registers logged models by id; source is "models:/<model_id>"
    model_id = version.model_id or str(version.source).removeprefix("models:/")
    location = client.get_logged_model(model_id).artifact_location
    mlmodel = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{location}/MLmodel", dst_path=tempfile.mkdtemp()
    )
    schema = Model.load(mlmodel).get_input_schema()
    assert schema is not None, "the champion churn model has no input signature"
    return list(schema.input_names())


def _log_tail(log: Path, lines: int = 15, width: int = 400) -> str:
    """The last lines of a server log, each cut to ``width`` characters."""
    if not log.exists():
        return f"(no log at {log})"
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return f"last lines of {log}:\n" + "\n".join(line[:width] for line in tail)


def mlflow_serve_comparison(
    base: str, key: str, account_id: str, tracking_uri: str, repeats: int = 200
) -> dict[str, Any]:
    """p50 of one account's scores from our API against `mlflow models serve` answering
    the churn model for the same account's feature row (the model's signature columns)."""
    import httpx

    payload = _churn_payload(account_id, tracking_uri)
    with _mlflow_models_serve(tracking_uri) as (url, log), httpx.Client(timeout=30) as client:
        theirs, prediction, status = _time_mlflow(client, url, payload, repeats, log)
        ours = _time_ours(client, f"{base}/v1/accounts/{account_id}/recommendations", key, repeats)
    ours_p50 = percentiles(ours)["p50_ms"]
    theirs_p50 = percentiles(theirs)["p50_ms"]
    return {
        "ours_full_answer_p50_ms": ours_p50,
        "mlflow_models_serve_churn_only_p50_ms": theirs_p50,
        "mlflow_status": status,
        "mlflow_prediction": prediction,
        "ours_over_theirs": round(ours_p50 / theirs_p50, 2) if theirs_p50 else None,
        "mlflow_log": str(log),
    }


def _churn_payload(account_id: str, tracking_uri: str) -> dict[str, Any]:
    """The /invocations body: the account's feature row as of now, in the columns of the
    champion churn model's signature."""
    import pandas as pd

    from features.pipeline import build_account_features
    from features.taxonomy import load_taxonomy
    from serving.store import Store

    taxonomy = load_taxonomy()
    store = Store(os.environ["NBA_DATABASE_URL"], taxonomy)
    data = store.account_data(account_id)
    assert data is not None
    row = build_account_features(data, account_id, pd.Timestamp.now(tz="UTC"), taxonomy)
    # Only the columns the model takes: the scoring server logs a multi-kB warning naming
    # every extra column on every request otherwise.
    frame = row.to_frame().T[_churn_champion_inputs(tracking_uri)]
    return {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}


@contextlib.contextmanager
def _mlflow_models_serve(tracking_uri: str) -> Iterator[tuple[str, Path]]:
    """`mlflow models serve` of the champion churn model on a free port, ready; yields its
    URL and its log file, and stops it (and the uvicorn child it starts) on exit."""
    port = free_port()
    # The server's output goes to a file, never to an unread pipe: once the 64 KiB pipe
    # buffer is full, the server blocks on its next log write and requests time out.
    db = tracking_uri.removeprefix("sqlite:///")
    logdir = Path(db).parent if db != tracking_uri else Path(tempfile.mkdtemp())
    log = logdir / "mlflow-serve.log"
    # mlflow starts its scoring server with a bare `uvicorn`: it must be on PATH
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": path}
    with log.open("wb") as out:
        # own session: stopping the group also stops the uvicorn child mlflow starts
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/nba-churn@champion",
             "-p", str(port), "--env-manager", "local"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for_mlflow(url, process, log)
        yield url, log
    finally:
        _stop_group(process)


def _wait_for_mlflow(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow models serve exited; {_log_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"mlflow models serve not ready after 120 s; {_log_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        time.sleep(0.5)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stops the process group of ``process``: SIGTERM, then SIGKILL after 20 s."""
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _time_mlflow(
    client: Any, url: str, payload: dict[str, Any], repeats: int, log: Path
) -> tuple[list[float], Any, int]:
    """Seconds per /invocations request, the prediction and the last status code."""
    import httpx

    theirs: list[float] = []
    try:
        # one untimed request: checks the answer and warms the server up
        r = client.post(f"{url}/invocations", json=payload)
        if r.status_code != 200 or "predictions" not in r.json():
            raise RuntimeError(f"/invocations answered {r.status_code}: {r.text[:500]}")
        prediction = r.json()["predictions"]
        for _ in range(repeats):
            t = time.perf_counter()
            r = client.post(f"{url}/invocations", json=payload)
            theirs.append(time.perf_counter() - t)
            r.raise_for_status()
    except (httpx.HTTPError, RuntimeError, ValueError) as exc:
        raise RuntimeError(f"mlflow models serve: {exc!r}; {_log_tail(log)}") from exc
    return theirs, prediction, r.status_code


def _time_ours(client: Any, url: str, key: str, repeats: int) -> list[float]:
    """Seconds per GET of our recommendations at ``url``, after one untimed warm-up."""
    headers = {"Authorization": f"Bearer {key}"}
    client.get(url, headers=headers).raise_for_status()
    ours: list[float] = []
    for _ in range(repeats):
        t = time.perf_counter()
        client.get(url, headers=headers).raise_for_status()
        ours.append(time.perf_counter() - t)
    return ours
