"""Each worked example's run.sh on the committed slices of the real data (tests/data/real/):
it validates, builds features and loads through its mapping alone and prints one JSON line
with what it did; Online Retail and Bank Marketing then train their declared outcome, and
the last line holds the model's and the peer's figures side by side. The expected counts
are the slices' own, counted from the files (see tests/data/real/make_slices.py for how they
were cut)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
SLICES = ROOT / "tests" / "data" / "real"

pytestmark = pytest.mark.slow


def run_example(name: str, data_dir: Path, out_dir: Path) -> subprocess.CompletedProcess[str]:
    """``examples/NAME/run.sh DATA_DIR OUT_DIR`` with this checkout's ``nba``."""
    env = {
        **os.environ,
        "NBA": f"{sys.executable} -m nba",
        "PYTHONPATH": str(ROOT),
        "NBA_DATABASE_URL": "sqlite:///must-not-be-used.db",
    }
    return subprocess.run(
        [str(ROOT / "examples" / name / "run.sh"), str(data_dir), str(out_dir)],
        capture_output=True,
        text=True,
        env=env,
        cwd=out_dir.parent,
        check=False,
    )


def last_json(stdout: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def loaded_json(stdout: str) -> dict[str, Any]:
    """The line with the results of validate, features and load."""
    line = next(
        x for x in reversed(stdout.splitlines()) if x.startswith('{"example"') and '"validate"' in x
    )
    result: dict[str, Any] = json.loads(line)
    return result


def stored_event_types(out_dir: Path) -> dict[str, tuple[int, float | None]]:
    """Stored touchpoints per event type: how many, and their values' sum (None: no values)."""
    with sqlite3.connect(out_dir / "nba.db") as conn:
        rows = conn.execute(
            "SELECT event_type, count(*), round(sum(value), 2) FROM touchpoints GROUP BY event_type"
        ).fetchall()
    return {event_type: (n, total) for event_type, n, total in rows}


@pytest.mark.parametrize(
    ("name", "rows", "event_types"),
    [
        # 190 lines after the overlap (26 lines of 6 invoices in both files counted once);
        # 40 without a customer are dropped; 35 invoices of 7 customers, 15 of them
        # cancellations; GBP 4,631.52 ordered and 774.20 cancelled; 117 product codes
        (
            "online_retail",
            {"accounts": 7, "content": 117, "touchpoints": 35, "exposures": 0},
            {"purchase": (20, 4631.52), "support_ticket": (15, 774.2)},
        ),
        # 2,000 customers, each a logged decision (an e-mail or no_action); 2,000 last
        # purchases worth the past year's spend and 28 conversions (USD 490,748.17
        # together), 306 visits
        (
            "hillstrom",
            {"accounts": 2000, "content": 3, "touchpoints": 2334, "exposures": 2000},
            {"purchase": (2028, 490748.17), "view": (306, None)},
        ),
        # 301 calls, 16 earlier contacts with a date, 15 of them successes, 37 subscriptions;
        # no amounts (and no call duration)
        (
            "bank_marketing",
            {"accounts": 301, "content": 0, "touchpoints": 369, "exposures": 0},
            {"meeting": (317, None), "purchase": (52, None)},
        ),
    ],
)
def test_example_runs_on_slices(
    tmp_path: Path,
    name: str,
    rows: dict[str, int],
    event_types: dict[str, tuple[int, float | None]],
) -> None:
    out_dir = tmp_path / "out"
    done = run_example(name, SLICES, out_dir)
    if name == "online_retail":
        # 7 customers: training is refused with one line naming the split and why.
        assert done.returncode == 2, done.stderr
        assert (
            done.stderr.strip()
            .splitlines()[-1]
            .startswith(
                "error: outcome 'repurchase': the validation split (5 rows, as-of 2011-03-01 .. "
                "2011-03-01) has labels all 0; expected positives and negatives in every split"
            )
        )
    else:
        assert done.returncode == 0, done.stderr
    result = loaded_json(done.stdout)
    assert result["example"] == name
    validate, features, load = result["validate"], result["features"], result["load"]
    assert validate["ok"] and validate["problems"] == [] and validate["rows_rejected"] == 0
    assert {t: validate["rows"][t] for t in rows} == rows
    assert load["rows_in"] == validate["rows"] == load["rows_stored"]
    assert 0 < features["features_not_constant"] < features["features"]
    assert features["rows"] > 0 and (out_dir / "features.parquet").is_file()
    for part in (validate, features, load):
        assert part["peak_memory_mb"] > 0
    assert stored_event_types(out_dir) == event_types
    assert not (tmp_path / "must-not-be-used.db").exists()
    if name == "hillstrom":
        check_policy_values(result, out_dir)


def check_policy_values(result: dict[str, Any], out_dir: Path) -> None:
    """Hillstrom's last line: per reward the learned policy's and the best single action's
    DR values side by side, each inside its 95 % interval, and a verdict that says which is
    higher; each model in its own MLflow store."""
    assert set(result["metrics"]) == {"visit_value_dr", "spend_value_dr"}
    for part in result["metrics"].values():
        low, high = part["model_ci"]
        assert low <= part["model"] <= high
        low, high = part["peer_ci"]
        assert low <= part["peer"] <= high
        assert part["peer_name"].startswith("best single action: ")
        higher = part["model"] >= part["peer"]
        assert part["verdict"] == ("model >= peer" if higher else "model < peer")
    assert result["peer"].startswith(("best single action: ", "visits: "))
    assert result["verdict"].startswith("visits: model ")
    for run in ("visits", "spend"):
        assert result["train"][run]["peak_mb"] > 0
        assert (out_dir / run / "mlflow.db").is_file()
    check_served(result, out_dir)


def check_served(result: dict[str, Any], out_dir: Path) -> None:
    """Hillstrom serves each champion with `nba score`: every account answered, e-mails
    only (ranked by uplift over no_action, never no_action itself), the first served
    model's answers stored in the example's store; a model without a champion says so."""
    served = result["served"]
    assert set(served) == {"visits", "spend"}
    # a model is served only when it became champion: it beat its gate beyond noise
    for name in ("visits", "spend"):
        if not result["train"][name]["champion"]:
            assert "no registered model has the alias 'champion'" in served[name]["not_served"]
    # on the slice the visits model loses its gate; the spend model, once served because
    # it was ahead on the point values, ties its baseline (the difference's interval holds
    # 0) and a tie loses: neither is served. The serving path run.sh takes for a champion
    # is then checked on spend promoted by force, as a user overriding the gate would.
    assert not result["train"]["visits"]["champion"]
    spend = served["spend"]
    if not result["train"]["spend"]["champion"]:
        spend = forced_spend_served(out_dir)
    assert spend["accounts"] == spend["stored"] == 2000
    with sqlite3.connect(out_dir / "nba.db") as conn:
        (stored,) = conn.execute("SELECT count(DISTINCT account_id) FROM account_scores").fetchone()
    assert stored == 2000
    assert spend["ranking"] == "uplift over no_action"
    assert spend["missing"].keys() == {"phase", "risk"} and "next_actions" not in spend["missing"]
    shares = spend["first_action_share"]
    assert set(shares) <= {"mens_email", "womens_email", "none"}
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
    assert spend["seconds"] > 0 and spend["peak_memory_mb"] > 0
    scores = pd.read_parquet(out_dir / "spend" / "scores.parquet")
    assert len(scores) == 2000 and scores["account_id"].is_unique
    actions = scores[[f"action_{s}_content_id" for s in (1, 2, 3)]]
    assert not actions.isin(["no_action"]).any().any()
    first = scores["action_1_content_id"].fillna("none").value_counts(normalize=True)
    assert {c: round(v, 4) for c, v in first.items()} == shares


def forced_spend_served(out_dir: Path) -> dict[str, Any]:
    """``nba promote next-content --force`` of the spend model, then the `nba score` run.sh
    runs for a champion (the first served: it stores its answers); its JSON object."""
    spend_dir = out_dir / "spend"
    tracking = f"sqlite:///{spend_dir / 'mlflow.db'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    nba = [sys.executable, "-m", "nba"]
    mapping = ROOT / "examples" / "hillstrom" / "mapping.yaml"
    promoted = subprocess.run(
        [*nba, "promote", "next-content", "--data", str(SLICES), "--mapping", str(mapping)]
        + ["--tracking-uri", tracking, "--reward", "value", "--reward-event", "purchase"]
        + ["--force"],
        capture_output=True,
        text=True,
        env=env,
        cwd=spend_dir,
        check=False,
    )
    assert promoted.returncode == 0, promoted.stderr
    assert "forced" in promoted.stdout + promoted.stderr
    scored = subprocess.run(
        [*nba, "score", "--json", "--as-of", "2008-03-01"]
        + ["--out", str(spend_dir / "scores.parquet"), "--chunk-accounts", "4000"]
        + ["--store-scores"],
        capture_output=True,
        text=True,
        env={
            **env,
            "NBA_DATABASE_URL": f"sqlite:///{out_dir / 'nba.db'}",
            "MLFLOW_TRACKING_URI": tracking,
        },
        cwd=spend_dir,
        check=False,
    )
    assert scored.returncode == 0, scored.stderr
    assert '"no_action":' not in scored.stdout.strip().splitlines()[-1]  # as run.sh checks
    return last_json(scored.stdout)


def test_example_without_its_files_stops_with_the_report(tmp_path: Path) -> None:
    empty = tmp_path / "data"
    empty.mkdir()
    done = run_example("online_retail", empty, tmp_path / "out")
    assert done.returncode == 1
    report = last_json(done.stdout)
    assert not report["ok"]
    assert any("online_retail_ii_2009_2010.parquet" in p for p in report["problems"])
    assert not (tmp_path / "out").exists()


def test_bank_marketing_trains_and_reports_model_beside_peer(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    done = run_example("bank_marketing", SLICES, out_dir)
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["example"] == "bank_marketing" and result["outcome"] == "subscription"
    assert result["peer"] == "baseline_logistic"
    trained = result["train"]["models"]
    assert [f"{m['registered']} v{m['version']}" for m in trained] == ["nba-subscription v1"]
    assert result["train"]["peak_mb"] > 0
    split = result["split"]
    assert split["horizon_days"] == 1
    assert sum(split[part]["rows"] for part in ("train", "valid", "test")) <= 317  # the calls
    assert split["train"]["as_of"][1] < split["valid"]["as_of"][0]
    assert split["valid"]["as_of"][1] < split["test"]["as_of"][0]
    for metric in ("roc_auc", "pr_auc"):
        figures = result["metrics"][metric]
        assert set(figures) >= {"model", "peer", "model_ci", "peer_ci", "verdict"}
        assert figures["peer_ci"][0] <= figures["peer"] <= figures["peer_ci"][1]
    assert (out_dir / "mlflow.db").is_file() and (out_dir / "mlruns").is_dir()
    # served with `nba score` when the model won its gate, else the reason it was not
    served = result["served"]
    if trained[0]["champion"]:
        assert served["models"] == {"nba-subscription": "1"} and served["accounts"] > 0
        assert set(served["missing"]) == {"phase", "risk", "next_actions"}
        scores = pd.read_parquet(out_dir / "scores.parquet")
        assert scores["outcome_subscription"].between(0, 1).all()
    else:
        assert "no registered model has the alias 'champion'" in served["not_served"]
        assert not (out_dir / "scores.parquet").exists()
