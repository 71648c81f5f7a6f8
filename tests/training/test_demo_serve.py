"""``nba demo --serve`` runs the service as a child: stopping the demo stops the service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from tests.utils.net import free_port
from tests.utils.server import ROOT, server_env, wait_for

pytestmark = pytest.mark.slow


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=10)
    except httpx.HTTPError:
        return False
    return True


def test_sigterm_to_the_demo_stops_its_service(tmp_path: Path) -> None:
    port = free_port()
    store = f"sqlite:///{tmp_path / 'nba.db'}"
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    program = (
        "import sys\n"
        "from training.demo import Handoff, serve\n"
        f"handoff = Handoff(env={{'NBA_DATABASE_URL': {store!r}, "
        f"'MLFLOW_TRACKING_URI': {tracking!r}}}, "
        f"serve_args=('serve', '--host', '127.0.0.1', '--port', '{port}'), key='', urls={{}})\n"
        "sys.exit(serve(handoff))\n"
    )
    demo = subprocess.Popen(
        [sys.executable, "-c", program],
        env=server_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        health = f"http://127.0.0.1:{port}/health"
        wait_for(lambda: _answers(health), "the demo's service answering")
        children = psutil.Process(demo.pid).children(recursive=True)
        assert children, "the service runs as the demo's child"
        os.kill(demo.pid, signal.SIGTERM)  # the demo alone, as a process manager stops it
        demo.wait(timeout=120)
        wait_for(lambda: not any(c.is_running() and c.status() != "zombie" for c in children),
                 "the service stopped with the demo")  # fmt: skip
        assert not _answers(health)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
