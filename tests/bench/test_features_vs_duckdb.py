"""The side-by-side benchmark measures each process alone and checks the outputs agree."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.features_vs_duckdb import compare, default_as_of, timed
from features.simulate import SimulationParams, simulate, write_simulation
from features.taxonomy import load_taxonomy


def test_timed_reports_the_child_process_alone() -> None:
    allocate = "import numpy; a = numpy.ones(80_000_000 // 8); a += 1"
    measured = timed([sys.executable, "-c", allocate])
    assert measured["peak_rss_mb"] >= 80
    assert measured["cpu_s"] > 0
    assert measured["wall_s"] >= measured["system_s"]
    with pytest.raises(Exception, match="exit status 3"):
        timed([sys.executable, "-c", "raise SystemExit(3)"])


@pytest.mark.slow
def test_compare_runs_both_and_finds_them_equal(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    sim = simulate(
        120, seed=4, months=13, taxonomy=load_taxonomy(), params=SimulationParams.profile("legacy")
    )
    write_simulation(sim, data_dir)
    as_of = default_as_of(data_dir)
    assert as_of == sim.data.touchpoints["ts"].max().normalize() - pd.Timedelta(days=30)
    work = tmp_path / "work"
    work.mkdir()
    result = compare(data_dir, as_of, 1, work)
    assert result["vocabulary_features_equal"] is True
    ours, duck = result["nba_features"], result["duckdb"]
    assert isinstance(ours, dict) and isinstance(duck, dict)
    assert ours["peak_rss_mb"] > 0 and duck["peak_rss_mb"] > 0
    assert result["ratio_wall"] == round(ours["wall_s"] / duck["wall_s"], 2)
