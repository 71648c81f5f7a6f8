"""Empty and absent optional tables: accounts without contacts, content, stages or exposures
get feature rows (counts 0, recencies missing, every other feature as with the full data), in
batch, online and through ``nba validate`` / ``nba features``; a data directory of accounts
with nothing but their id and touchpoints without contact or content validates and gets
features, its accounts existing from their first activity."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.load import read_data_dir, write_data_dir
from features.pipeline import build_account_features, build_features
from features.schema import TABLES, JourneyData
from features.simulate import simulate
from features.taxonomy import Taxonomy
from nba.cli import app
from tests.utils.data import NOW, make_tiny_data, write_bare_dir

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


@pytest.fixture(scope="module")
def simulated(taxonomy: Taxonomy) -> JourneyData:
    return simulate(150, seed=11, months=12, taxonomy=taxonomy).data


def test_absent_tables_and_columns_load_as_empty_and_missing(
    simulated: JourneyData, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    write_bare_dir(simulated, tmp_path)

    checked = CliRunner().invoke(app, ["validate", str(tmp_path)])
    loaded = read_data_dir(tmp_path, taxonomy)

    assert checked.exit_code == 0, checked.output
    for note in (
        "contacts: no table given; read as the 0 contact ids the touchpoints and exposures name",
        "content: no table given; read as the 0 content ids",
        "stages: no table given; read as empty",
        "exposures: no table given; read as empty",
    ):
        assert f"note: {note}" in checked.output
    for name, frame in loaded.tables().items():
        assert list(frame.columns) == TABLES[name].names
    assert loaded.contacts.empty and loaded.content.empty and loaded.stages.empty
    accounts = loaded.accounts
    assert accounts["employees"].dtype == "Int64" and accounts["employees"].isna().all()
    assert accounts[["industry", "region", "created_at", "owner_rep_id"]].isna().all().all()
    assert loaded.touchpoints["contact_id"].isna().all()


def test_absent_contacts_and_content_are_the_ones_events_name(
    tiny_data: JourneyData, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    write_data_dir(tiny_data, tmp_path)
    (tmp_path / "contacts.parquet").unlink()
    (tmp_path / "content.parquet").unlink()

    loaded = read_data_dir(tmp_path, taxonomy, now=NOW)

    named = pd.concat([tiny_data.touchpoints, tiny_data.exposures])
    assert sorted(loaded.content["content_id"]) == sorted(named["content_id"].dropna().unique())
    assert all(p == [] for p in loaded.content["phases"]) and loaded.content["topic"].isna().all()
    contacts = loaded.contacts.set_index("contact_id")
    assert sorted(contacts.index) == sorted(named["contact_id"].dropna().unique())
    assert contacts["role"].isna().all()
    # P1 (A1) first appears in E01 on 2024-01-08 09:00: it exists from then
    assert contacts.loc["P1", "account_id"] == "A1"
    assert contacts.loc["P1", "created_at"] == named.loc[named["contact_id"] == "P1", "ts"].min()


def test_a_contact_named_with_two_accounts_is_a_problem_without_a_contacts_table(
    tiny_data: JourneyData, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    tiny_data.touchpoints.loc[3, "contact_id"] = "P1"  # E04 is A2's
    write_data_dir(tiny_data, tmp_path)
    (tmp_path / "contacts.parquet").unlink()

    checked = CliRunner().invoke(app, ["validate", str(tmp_path)])

    assert checked.exit_code == 1
    assert (
        "- touchpoints.contact_id: 1 row with contact_id named with several accounts (no "
        "contacts table says which) (row 4); sample: 'P1'" in checked.output
    )


@pytest.mark.parametrize("with_created_at", [True, False])
def test_accounts_without_created_at_exist_from_their_first_activity(
    simulated: JourneyData, taxonomy: Taxonomy, with_created_at: bool
) -> None:
    accounts = simulated.accounts.copy()
    if not with_created_at:
        accounts["created_at"] = pd.Series(
            pd.NaT, index=accounts.index, dtype=accounts["created_at"].dtype
        )
    data = replace(simulated, accounts=accounts)
    dates = [pd.Timestamp("2024-04-01", tz="UTC"), pd.Timestamp("2024-10-01", tz="UTC")]

    frame = build_features(data, dates, taxonomy)

    first = (
        pd.concat(
            [
                data.touchpoints[["account_id", "ts"]],
                data.stages[["account_id", "ts"]],
                data.exposures[["account_id", "ts"]],
            ]
        )
        .groupby("account_id")["ts"]
        .min()
    )
    created = simulated.accounts.set_index("account_id")["created_at"] if with_created_at else first
    for date in dates:
        rows = frame[frame["as_of"] == date].set_index("account_id")
        assert sorted(rows.index) == sorted(created.index[created < date])
        age = (date - created.reindex(rows.index)).dt.total_seconds() / 86_400
        np.testing.assert_allclose(rows["account_age_days"], age.to_numpy())


def test_bare_data_gets_features_with_firmographics_missing(
    simulated: JourneyData, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    loaded = read_data_dir(write_bare_dir(simulated, tmp_path / "data"), taxonomy)
    dates = [pd.Timestamp("2024-07-01", tz="UTC"), pd.Timestamp("2024-12-01", tz="UTC")]

    bare = build_features(loaded, dates, taxonomy)
    full = build_features(simulated, dates, taxonomy)

    assert len(bare) > 100
    assert bare[["employees", "log_employees", "annual_revenue"]].isna().all().all()
    assert bare["industry"].isna().all() and bare["region"].isna().all()
    assert bare["account_age_days"].equals(bare["days_since_first_touch"])
    assert bare["n_contacts"].eq(0).all() and bare["crm_phase"].isna().all()
    assert bare["n_content_type_whitepaper_365d"].eq(0).all()
    # what the touchpoints alone say is what they say with every table there
    keys = ["account_id", "as_of"]
    same = bare[keys].merge(full[keys], on=keys)
    from_touchpoints = [c for c in bare.columns if c.startswith(("n_channel_", "n_event_"))]
    pd.testing.assert_frame_equal(
        bare.merge(same, on=keys)[[*keys, *from_touchpoints]],
        full.merge(same, on=keys)[[*keys, *from_touchpoints]],
    )
    out = tmp_path / "features.parquet"
    built = CliRunner().invoke(
        app,
        ["features", "--data", str(tmp_path / "data"), "--as-of", "2024-12-01", "--out", str(out)],
    )
    assert built.exit_code == 0, built.output
    assert len(pd.read_parquet(out)) == (bare["as_of"] == dates[1]).sum()
