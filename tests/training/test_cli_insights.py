"""``nba insights``: the report on disk (HTML with plots, JSON, CSV) holds the numbers
``features.insights`` computes, and every mistake is one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.insights import Period, compute_insights
from features.load import read_data_dir
from features.simulate import SimulationParams, simulate, write_simulation
from features.taxonomy import load_taxonomy
from nba.cli import app

START, END = "2025-05-01", "2025-08-01"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("insights") / "data"
    write_simulation(simulate(250, 11, params=SimulationParams.profile("legacy")), path)
    return path


@pytest.fixture(scope="module")
def written(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("report")
    args = ["insights", "--data", str(data_dir), "--out", str(out), "--from", START, "--to", END]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.output)


def test_the_report_holds_the_computed_numbers(data_dir: Path, written: tuple[Path, dict]) -> None:
    out, summary = written
    taxonomy = load_taxonomy()
    period = Period(pd.Timestamp(START, tz="UTC"), pd.Timestamp(END, tz="UTC"))
    expected = compute_insights(read_data_dir(data_dir, taxonomy), taxonomy, period)
    kpis = pd.read_csv(out / "kpis.csv").set_index("kpi")
    assert kpis.loc["touchpoints", "value"] == expected.current["touchpoints"] > 0
    assert kpis.loc["click_through", "low"] == pytest.approx(expected.current["click_through_low"])
    assert kpis.loc["won_revenue", "previous"] == pytest.approx(expected.previous["won_revenue"])
    gaps = pd.read_csv(out / "content_gaps.csv")
    assert gaps["status"].tolist() == expected.gaps["status"].tolist()
    assert json.loads((out / "insights.json").read_text())["period"]["from"].startswith(START)
    assert summary["kpis"]["purchases"] == expected.current["purchases"]
    assert summary["gap_cells"] == {
        k: int(v) for k, v in expected.gaps["status"].value_counts().items()
    }


def test_the_html_report_shows_tables_and_plots(written: tuple[Path, dict]) -> None:
    out, summary = written
    page = (out / "index.html").read_text()
    for name in ("trend", "by_channel", "by_content", "content_gaps", "journey"):
        assert f"src='{name}.png'" in page
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<h2>Content gaps" in page and "<h2>Journey map" in page
    assert {"by_phase.csv", "by_role.csv", "trend.csv", "transitions.csv"} <= set(summary["files"])
    assert summary["compute_seconds"] >= 0 and summary["peak_memory_mb"] > 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "give one source: --data DIR or --store URL"),
        (["--data", "{data}", "--store", "sqlite:///x.db"], "give one source"),
        (["--data", "{data}", "--from", "soon"], "from 'soon' is not a date"),
        (["--data", "{data}", "--from", END, "--to", START], "is not before"),
        (["--data", "{data}", "--every", "day"], "every 'day'"),
        (["--store", "sqlite:///{data}/none.db"], "no SQLite file"),
    ],
)
def test_mistakes_are_one_line_and_exit_2_or_3(
    data_dir: Path, tmp_path: Path, args: list[str], says: str
) -> None:
    argv = ["insights", "--out", str(tmp_path / "out"), *[a.format(data=data_dir) for a in args]]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code in (2, 3), result.output
    assert says in result.output
