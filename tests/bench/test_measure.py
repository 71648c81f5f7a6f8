"""A process's peak memory can be started again (what a forked Dask worker needs)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from bench.measure import peak_rss_since_reset_mb, reset_peak_rss


@pytest.mark.skipif(sys.platform != "linux", reason="clear_refs is Linux's")
def test_reset_starts_the_peak_again_from_the_current_size() -> None:
    block = np.ones(60_000_000 // 8)
    block += 1
    high = peak_rss_since_reset_mb()
    del block
    reset_peak_rss()
    assert peak_rss_since_reset_mb() < high - 40
