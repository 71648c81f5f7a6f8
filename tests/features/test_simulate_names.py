"""The simulator's names: every account and contact named, by region, deterministic by seed,
drawn apart from the run (the names' stream does not move any other draw)."""

from __future__ import annotations

import pandas as pd
import pytest

from features.schema import JourneyData
from features.simulate import SimulationParams, run, simulate
from features.simulate.names import _LEGAL

N = 120


def _world(seed: int) -> JourneyData:
    return simulate(
        N, seed, start="2024-01-01", months=3, params=SimulationParams.profile("legacy")
    ).data


def test_every_account_and_contact_has_a_name_that_fits_its_region() -> None:
    data = _world(3)
    accounts, contacts = data.accounts, data.contacts
    assert accounts["name"].notna().all() and contacts["name"].notna().all()
    assert accounts["name"].nunique() > 0.9 * N  # a few repeats, as in a real CRM
    for name, region in zip(accounts["name"], accounts["region"].astype(str), strict=True):
        assert name.endswith(_LEGAL[region]), (name, region)
    # "First Last" (a last name may have a particle: "de Jong")
    assert contacts["name"].str.split(" ").map(len).ge(2).all()
    assert contacts["name"].nunique() > 0.5 * len(contacts)


def test_names_are_deterministic_by_seed_and_move_no_other_draw(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b, c = _world(3), _world(3), _world(4)
    pd.testing.assert_series_equal(a.accounts["name"], b.accounts["name"])
    pd.testing.assert_series_equal(a.contacts["name"], b.contacts["name"])
    assert (a.accounts["name"] != c.accounts["name"]).mean() > 0.9
    # the same run without names: every other column of every table is the same
    monkeypatch.setattr(run, "add_names", lambda data, seed: None)
    plain = _world(3)
    assert "name" not in plain.accounts or plain.accounts["name"].isna().all()
    for table, frame in a.tables().items():
        other = plain.tables()[table]
        columns = [c for c in frame.columns if c != "name"]
        pd.testing.assert_frame_equal(frame[columns], other[columns], obj=table)
