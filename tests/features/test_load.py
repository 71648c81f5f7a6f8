"""Reading data directories (CSV and Parquet) and the ``nba validate`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.load import read_data_dir, read_table_file, write_data_dir
from features.mapping import ColumnMapping
from features.schema import TABLES, JourneyData
from features.taxonomy import Taxonomy
from features.validate import DataValidationError, Problem, validate_data_dir
from nba.cli import app
from tests.utils.data import NOW, assert_same_data, write_csv_dir


def test_parquet_directory_round_trips(
    tiny_data: JourneyData, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    write_data_dir(tiny_data, tmp_path)

    loaded = read_data_dir(tmp_path, taxonomy, now=NOW)

    assert_same_data(loaded, tiny_data)
    # Parquet stores lists as arrays; the canonical form is Python lists.
    assert loaded.content["phases"].iloc[0] == ["trigger", "awareness"]


def test_csv_directory_gives_canonical_data(
    tiny_data: JourneyData, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    write_csv_dir(tiny_data, tmp_path)

    loaded = read_data_dir(tmp_path, taxonomy, now=NOW)

    assert_same_data(loaded, tiny_data)


def test_read_table_file_reads_csv_as_strings_and_parquet_typed(
    tiny_data: JourneyData, tmp_path: Path
) -> None:
    write_csv_dir(tiny_data, tmp_path / "csv")
    write_data_dir(tiny_data, tmp_path / "parquet")

    csv = read_table_file(tmp_path / "csv" / "accounts.csv", None)
    parquet = read_table_file(tmp_path / "parquet" / "accounts.parquet", None)

    assert csv["employees"].tolist() == ["50", "1200", "300"]
    assert csv["annual_revenue"].isna().tolist() == [False, False, True]
    assert parquet["employees"].dtype == "Int64"  # nullable in the contract
    with pytest.raises(ValueError, match=r"accounts.xlsx: unknown file type"):
        read_table_file(tmp_path / "accounts.xlsx", None)


def test_exposures_file_is_optional(
    tiny_data: JourneyData, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    write_data_dir(tiny_data, tmp_path)
    (tmp_path / "exposures.parquet").unlink()

    loaded = read_data_dir(tmp_path, taxonomy, now=NOW)

    assert len(loaded.exposures) == 0
    assert list(loaded.exposures.columns) == TABLES["exposures"].names
    assert len(loaded.touchpoints) == 12


@pytest.mark.parametrize(
    ("separator", "text"),
    [
        ("||", "account_id||industry||employees\nA1||soft|ware||50\nA2||retail||1200\n"),
        (";", "account_id;industry;employees\nA1;soft|ware;50\nA2;retail;1200\n"),
        (
            "whitespace",
            "account_id  industry   employees\n"
            "A1          soft|ware  50\n"
            "A2 \t        retail     1200\n",
        ),
    ],
)
def test_csv_separators_of_one_or_more_characters_or_whitespace(
    tmp_path: Path, separator: str, text: str
) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text(text)

    frame = read_table_file(path, ColumnMapping(csv_separator=separator))

    assert frame.to_dict("list") == {
        "account_id": ["A1", "A2"],
        "industry": ["soft|ware", "retail"],  # a regex metacharacter is data, not a separator
        "employees": ["50", "1200"],
    }


def test_missing_and_unreadable_files_are_reported_together(
    tiny_data: JourneyData, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    write_data_dir(tiny_data, tmp_path)
    (tmp_path / "accounts.parquet").unlink()
    (tmp_path / "touchpoints.parquet").write_text("not parquet")

    with pytest.raises(DataValidationError) as caught:
        read_data_dir(tmp_path, taxonomy, now=NOW)

    problems = caught.value.report.problems
    assert problems[0] == Problem(
        "accounts", "", "missing table file", f"accounts.parquet or accounts.csv in {tmp_path}"
    )
    assert problems[1].table == "touchpoints"
    assert problems[1].message.startswith("cannot read touchpoints.parquet: ")
    assert len(problems) == 2  # references into the missing tables are not double-reported


def test_bad_data_raises_with_the_full_report(
    tiny_data: JourneyData, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    tiny_data.touchpoints["channel"] = tiny_data.touchpoints["channel"].astype("str")
    tiny_data.touchpoints.loc[[1, 3], "channel"] = "fax"
    tiny_data.exposures.loc[0, "propensity"] = 0.0
    write_data_dir(tiny_data, tmp_path)

    with pytest.raises(DataValidationError) as caught:
        read_data_dir(tmp_path, taxonomy, now=NOW)

    report = caught.value.report
    assert [(p.table, p.column, p.rows) for p in report.problems] == [
        ("touchpoints", "channel", [2, 4]),
        ("exposures", "propensity", [1]),
    ]
    assert str(caught.value) == report.format()
    assert validate_data_dir(tmp_path, taxonomy, now=NOW).problems == report.problems


def test_cli_validate_exits_0_on_good_data(tiny_data: JourneyData, tmp_path: Path) -> None:
    write_data_dir(tiny_data, tmp_path)

    result = CliRunner().invoke(app, ["validate", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: 6 tables, ")
    assert "12 touchpoints" in result.output


def test_cli_validate_exits_1_with_the_report(tiny_data: JourneyData, tmp_path: Path) -> None:
    tiny_data.touchpoints["channel"] = tiny_data.touchpoints["channel"].astype("str")
    tiny_data.touchpoints.loc[[1, 3], "channel"] = "fax"
    write_data_dir(tiny_data, tmp_path)

    result = CliRunner().invoke(app, ["validate", str(tmp_path)])

    assert result.exit_code == 1
    assert "1 problem found" in result.output
    assert (
        "- touchpoints.channel: 2 rows with unknown channel (rows 2, 4); sample: 'fax'; "
        "expected one of: search_ads, social_ads," in result.output
    )


def test_cli_validate_reports_a_missing_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "nope")])

    assert result.exit_code == 1
    assert "accounts: missing table file" in result.output


def test_cli_validate_json_gives_counts_problems_and_rows_rejected(
    tiny_data: JourneyData, tmp_path: Path
) -> None:
    tiny_data.touchpoints["channel"] = tiny_data.touchpoints["channel"].astype("str")
    tiny_data.touchpoints.loc[[1, 3], "channel"] = "fax"
    write_data_dir(tiny_data, tmp_path)

    result = CliRunner().invoke(app, ["validate", str(tmp_path), "--json"])

    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    assert report["rows"]["touchpoints"] == 12
    assert report["rows_rejected"] == 2
    assert len(report["problems"]) == 1
    assert report["problems"][0].startswith("touchpoints.channel: 2 rows with unknown channel")
    assert report["seconds"] >= 0 and report["peak_memory_mb"] > 0


def test_cli_features_json_counts_rows_and_features_not_constant(
    tiny_data: JourneyData, tmp_path: Path
) -> None:
    write_data_dir(tiny_data, tmp_path / "data")
    out = tmp_path / "features.parquet"

    result = CliRunner().invoke(
        app,
        ["features", "--data", str(tmp_path / "data"), "--as-of", "2024-06-01"]
        + ["--out", str(out), "--json"],
    )

    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    built = pd.read_parquet(out).drop(columns=["account_id", "as_of"])
    assert summary["rows"] == len(built) > 0
    assert summary["features"] == built.shape[1]
    constant = sum(built[c].nunique(dropna=False) <= 1 for c in built.columns)
    assert 0 < constant < built.shape[1]
    assert summary["features_not_constant"] == built.shape[1] - constant
    assert summary["rows_in"]["touchpoints"] == 12
