"""Empty optional tables: accounts without contacts, content, stages or exposures get
feature rows (counts 0, recencies missing, every other feature as with the full data), in
batch, online and through ``nba validate`` / ``nba features``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.load import write_data_dir
from features.pipeline import build_account_features, build_features
from features.schema import JourneyData
from features.taxonomy import Taxonomy
from nba.cli import app
from tests.utils.data import make_tiny_data

AS_OF = [pd.Timestamp("2024-03-01", tz="UTC"), pd.Timestamp("2024-07-01", tz="UTC")]
EMPTIABLE = ("contacts", "content", "stages", "exposures")


def emptied(data: JourneyData, *tables: str) -> JourneyData:
    """``data`` with ``tables`` left with their columns and no rows."""
    return replace(data, **{t: getattr(data, t).iloc[:0] for t in tables})


def consistent(data: JourneyData) -> JourneyData:
    """``data`` with no references into emptied contacts / content (what validates)."""
    tp = data.touchpoints.copy()
    for column, table in (("contact_id", data.contacts), ("content_id", data.content)):
        if table.empty:
            tp[column] = pd.Series([None] * len(tp), dtype=tp[column].dtype)
    return replace(data, touchpoints=tp)


def columns_of(frame: pd.DataFrame, *prefixes: str) -> list[str]:
    return [c for c in frame.columns if c.startswith(prefixes)]


@pytest.fixture(scope="module")
def full(taxonomy: Taxonomy) -> pd.DataFrame:
    return build_features(make_tiny_data(taxonomy), AS_OF, taxonomy)


# Per emptied table: the count features and the recencies that come from it (which must
# read "nothing there"), and others derived from them.
FROM_TABLE = {
    "contacts": (
        ("n_contacts", "n_roles_", "n_role_", "economic_buyer_left"),
        ("days_since_role_", "share_roles_engaged"),
        (),
    ),
    "content": (
        # responses match exposures to touchpoints by content
        ("n_content_type_", "n_content_phase_", "n_responses_"),
        ("days_since_content_type_", "days_since_content_phase_"),
        ("response_rate_",),
    ),
    "stages": ((), ("crm_phase", "days_in_crm_phase"), ()),
    "exposures": (("n_exposures_", "n_responses_"), ("response_rate_",), ()),
}


@pytest.mark.parametrize("table", EMPTIABLE)
def test_an_empty_table_gives_zero_counts_and_missing_recencies(
    table: str, taxonomy: Taxonomy, full: pd.DataFrame
) -> None:
    frame = build_features(emptied(make_tiny_data(taxonomy), table), AS_OF, taxonomy)

    assert list(frame.columns) == list(full.columns)
    assert frame[["account_id", "as_of"]].equals(full[["account_id", "as_of"]])
    count_prefixes, missing_prefixes, derived_prefixes = FROM_TABLE[table]
    counts = columns_of(frame, *count_prefixes) if count_prefixes else []
    missing = columns_of(frame, *missing_prefixes)
    assert missing and (counts or table == "stages")
    assert (frame[counts].to_numpy() == 0).all()
    assert frame[missing].isna().all().all()
    # the full data has some of these: the test sees a difference
    assert (full[counts].to_numpy() != 0).any() or full[missing].notna().any().any()
    # every feature that does not come from the emptied table is unchanged
    derived = columns_of(frame, *derived_prefixes) if derived_prefixes else []
    others = [c for c in full.columns if c not in {*counts, *missing, *derived}]
    pd.testing.assert_frame_equal(frame[others], full[others])


def test_all_optional_tables_empty_still_scores_every_account(taxonomy: Taxonomy) -> None:
    data = consistent(emptied(make_tiny_data(taxonomy), *EMPTIABLE))

    frame = build_features(data, AS_OF, taxonomy)

    assert len(frame) == 6 and frame["n_contacts"].eq(0).all()
    assert frame["crm_phase"].isna().all() and frame["n_exposures_90d"].eq(0).all()
    a1 = frame[(frame["account_id"] == "A1") & (frame["as_of"] == AS_OF[1])].iloc[0]
    assert a1["n_touchpoints_365d"] == 6  # the touchpoints still count
    assert np.isnan(a1["days_since_role_it"]) and np.isnan(a1["share_roles_engaged_90d"])


def test_tables_without_columns_read_as_empty_tables(taxonomy: Taxonomy) -> None:
    typed = emptied(make_tiny_data(taxonomy), *EMPTIABLE)
    bare = replace(typed, **{t: pd.DataFrame() for t in EMPTIABLE})

    pd.testing.assert_frame_equal(
        build_features(bare, AS_OF, taxonomy), build_features(typed, AS_OF, taxonomy)
    )


def test_an_account_without_contacts_online_equals_batch(taxonomy: Taxonomy) -> None:
    data = make_tiny_data(taxonomy)
    # A3's only contact is gone: the online view of A3 holds no contacts at all
    data = replace(data, contacts=data.contacts[data.contacts["account_id"] != "A3"])
    batch = build_features(data, AS_OF[1:], taxonomy).set_index("account_id")

    online = build_account_features(data, "A3", AS_OF[1], taxonomy)

    assert online["n_contacts"] == 0 and online["n_touchpoints_365d"] == 2
    pd.testing.assert_series_equal(
        online.drop(["account_id", "as_of"]),
        batch.loc["A3"].drop("as_of"),
        check_names=False,
        check_dtype=False,
    )


def test_cli_validate_and_features_accept_empty_tables(taxonomy: Taxonomy, tmp_path: Path) -> None:
    write_data_dir(consistent(emptied(make_tiny_data(taxonomy), *EMPTIABLE)), tmp_path / "data")
    runner = CliRunner()

    checked = runner.invoke(app, ["validate", str(tmp_path / "data")])
    assert checked.exit_code == 0, checked.output
    assert "0 contacts, 0 content" in checked.output

    out = tmp_path / "features.parquet"
    built = runner.invoke(
        app,
        ["features", "--data", str(tmp_path / "data"), "--as-of", "2024-07-01", "--out", str(out)],
    )
    assert built.exit_code == 0, built.output
    frame = pd.read_parquet(out)
    assert sorted(frame["account_id"]) == ["A1", "A2", "A3"]
    assert frame["n_contacts"].eq(0).all() and frame["n_touchpoints_365d"].sum() == 12
