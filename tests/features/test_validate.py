"""Validation of raw tables: every problem reported at once, with rows, sample and expected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.schema import TABLES, JourneyData, column_dtype
from features.taxonomy import Taxonomy
from features.validate import Problem, ValidationReport, validate_tables
from features.validate.columns import is_unique
from tests.utils.data import NOW, assert_same_data, make_tiny_data


def raw_tables(data: JourneyData) -> dict[str, pd.DataFrame]:
    return {name: frame.copy() for name, frame in data.tables().items()}


def as_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column as str (missing stays missing), as a CSV reader delivers it."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map("|".join)
        else:
            out[column] = out[column].astype("str")
    return out


def problems_of(report: ValidationReport, table: str, column: str) -> list[Problem]:
    return [p for p in report.problems if p.table == table and p.column == column]


def only(report: ValidationReport) -> Problem:
    assert len(report.problems) == 1, report.format()
    return report.problems[0]


def test_canonical_tables_pass_through_unchanged(
    tiny_data: JourneyData, taxonomy: Taxonomy
) -> None:
    data, report = validate_tables(raw_tables(tiny_data), taxonomy, now=NOW)

    assert report.ok
    assert_same_data(data, tiny_data)
    n_content = len(tiny_data.content)
    assert report.format() == (
        f"OK: 6 tables, {29 + n_content} rows (3 accounts, 5 contacts, {n_content} content, "
        "12 touchpoints, 5 stages, 4 exposures)"
    )


def test_string_tables_become_canonical_dtypes(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    raw = {name: as_strings(frame) for name, frame in tiny_data.tables().items()}
    assert raw["accounts"]["employees"].dtype == "str"

    data, report = validate_tables(raw, taxonomy, now=NOW)

    assert report.ok, report.format()
    assert_same_data(data, tiny_data)
    assert data is not None
    for name, frame in data.tables().items():
        for column in TABLES[name].columns:
            dtype = frame[column.name].dtype
            assert dtype == column_dtype(column, taxonomy), (name, column.name)
            if isinstance(dtype, pd.CategoricalDtype):
                assert list(dtype.categories) == taxonomy.vocabulary(column.vocabulary or "")


def test_unknown_channel_lists_rows_sample_and_allowed_values(
    tiny_data: JourneyData, taxonomy: Taxonomy
) -> None:
    raw = raw_tables(tiny_data)
    channel = raw["touchpoints"]["channel"].astype("str")
    channel[[1, 3]] = "fax"  # data rows 2 and 4
    raw["touchpoints"]["channel"] = channel

    data, report = validate_tables(raw, taxonomy, now=NOW)

    assert data is None
    assert not report.ok
    allowed = ", ".join(taxonomy.channel_names)
    assert only(report) == Problem(
        "touchpoints",
        "channel",
        "unknown channel",
        f"one of: {allowed}",
        rows=[2, 4],
        n_rows=2,
        sample=["fax"],
    )
    assert "search_ads" in report.problems[0].expected
    assert report.format() == (
        "1 problem found (row numbers count data rows from 1, the first row after the header):\n"
        f"- touchpoints.channel: 2 rows with unknown channel (rows 2, 4); sample: 'fax'; "
        f"expected one of: {allowed}"
    )


def test_more_than_ten_bad_rows_lists_the_first_ten(
    tiny_data: JourneyData, taxonomy: Taxonomy
) -> None:
    raw = raw_tables(tiny_data)
    raw["touchpoints"]["event_type"] = ["clicked"] * 6 + ["opened"] * 6

    _, report = validate_tables(raw, taxonomy, now=NOW)

    problem = only(report)
    assert problem.rows == list(range(1, 11))
    assert problem.n_rows == 12
    assert problem.sample == ["clicked", "opened"]
    assert problem.format().startswith(
        "touchpoints.event_type: 12 rows with unknown event_type "
        "(rows 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more); sample: 'clicked', 'opened'; "
        "expected one of: view, click, "
    )


def test_wrong_numbers_are_reported(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    raw = raw_tables(tiny_data)
    raw["accounts"] = as_strings(raw["accounts"])
    raw["accounts"]["employees"] = ["50", "many", "12.5"]
    raw["accounts"]["annual_revenue"] = ["5e6", "n/a", None]  # "n/a" is not a number

    _, report = validate_tables(raw, taxonomy, now=NOW)

    assert [(p.column, p.message, p.rows, p.sample, p.expected) for p in report.problems] == [
        ("employees", "non-numeric value", [2], ["many"], "a whole number"),
        ("employees", "non-integer value", [3], ["12.5"], "a whole number"),
        ("annual_revenue", "non-numeric value", [2], ["n/a"], "a number"),
    ]


def test_negative_employees(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    raw = raw_tables(tiny_data)
    raw["accounts"]["employees"] = [50, -3, 300]

    _, report = validate_tables(raw, taxonomy, now=NOW)

    assert only(report).format() == (
        "accounts.employees: 1 row with negative employees (row 2); sample: '-3'; "
        "expected a whole number >= 0"
    )


def test_unparseable_and_future_timestamps(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    raw = raw_tables(tiny_data)
    ts = tiny_data.touchpoints["ts"].astype("str")
    ts[2] = "yesterday"
    ts[4] = "2030-01-01 00:00:00+00:00"
    ts[5] = "2024-13-45"
    raw["touchpoints"]["ts"] = ts

    _, report = validate_tables(raw, taxonomy, now=NOW)

    unparseable, future = report.problems
    assert (unparseable.column, unparseable.message) == ("ts", "unparseable timestamp")
    assert unparseable.rows == [3, 6]
    assert unparseable.sample == ["yesterday", "2024-13-45"]
    assert unparseable.expected == "an ISO 8601 timestamp such as 2024-05-01T12:00:00Z"
    assert (future.message, future.rows) == ("timestamp in the future", [5])
    assert future.sample == ["2030-01-01 00:00:00+00:00"]
    assert future.expected == "a time before now (2025-01-01 00:00:00 UTC)"


def test_now_defaults_to_current_time(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    raw = raw_tables(tiny_data)
    later = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=2)
    raw["stages"].loc[0, "ts"] = later

    _, report = validate_tables(raw, taxonomy)

    assert [(p.table, p.column, p.rows) for p in report.problems] == [("stages", "ts", [1])]


def test_nulls_in_non_nullable_columns(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    raw = raw_tables(tiny_data)
    raw["touchpoints"].loc[5, "account_id"] = np.nan  # row 6
    raw["touchpoints"].loc[[0, 2], "channel"] = np.nan  # rows 1, 3
    raw["touchpoints"].loc[1, "contact_id"] = np.nan  # nullable: fine

    _, report = validate_tables(raw, taxonomy, now=NOW)

    assert [(p.column, p.message, p.rows, p.expected) for p in report.problems] == [
        ("account_id", "missing value", [6], "a value (the column may not be empty)"),
        ("channel", "missing value", [1, 3], "a value (the column may not be empty)"),
    ]


def test_duplicate_ids(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    raw = raw_tables(tiny_data)
    raw["touchpoints"].loc[4, "event_id"] = "E01"  # row 5 repeats row 1

    _, report = validate_tables(raw, taxonomy, now=NOW)

    assert only(report).format() == (
        "touchpoints.event_id: 2 rows with duplicate event_id (rows 1, 5); sample: 'E01'; "
        "expected each event_id once"
    )


@pytest.mark.parametrize(
    ("ids", "unique"),
    [
        (["E01", "E02", "E10"], True),  # in order: one comparison pass
        (["E01", "E02", "E02", "E03"], False),  # in order but repeated
        (["E03", "E01", "E02"], True),  # out of order: the hash pass
        (["E02", "E01", "E02"], False),
        (["E01", None, "E02"], True),
        (["E01", None, None], False),  # as pandas counts missing values
    ],
)
def test_is_unique_agrees_with_pandas(ids: list[str | None], unique: bool) -> None:
    for dtype in ("str", object):
        series = pd.Series(ids, dtype=dtype)
        assert is_unique(series) is unique
        assert series.is_unique is unique


def test_duplicate_ids_in_order_are_reported(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    raw = raw_tables(tiny_data)
    ids = raw["touchpoints"]["event_id"].sort_values(ignore_index=True)
    raw["touchpoints"]["event_id"] = ids.where(ids.index != 2, ids[1]).astype("str")

    _, report = validate_tables(raw, taxonomy, now=NOW)

    assert only(report).message == "duplicate event_id"
    assert only(report).rows == [2, 3]


def test_unknown_references(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    raw = raw_tables(tiny_data)
    raw["contacts"].loc[4, "account_id"] = "A7"
    raw["touchpoints"].loc[1, "account_id"] = "A9"
    raw["touchpoints"].loc[2, "content_id"] = "C999"
    raw["touchpoints"].loc[3, "contact_id"] = "P9"
    raw["stages"].loc[0, "account_id"] = "A8"
    raw["exposures"].loc[3, "content_id"] = "C998"

    _, report = validate_tables(raw, taxonomy, now=NOW)

    assert [(p.table, p.column, p.message, p.rows, p.sample) for p in report.problems] == [
        ("contacts", "account_id", "account_id not in accounts", [5], ["A7"]),
        ("touchpoints", "account_id", "account_id not in accounts", [2], ["A9"]),
        ("touchpoints", "contact_id", "contact_id not in contacts", [4], ["P9"]),
        ("touchpoints", "content_id", "content_id not in content", [3], ["C999"]),
        ("stages", "account_id", "account_id not in accounts", [1], ["A8"]),
        ("exposures", "content_id", "content_id not in content", [4], ["C998"]),
    ]
    assert report.problems[1].expected == "a value of accounts.account_id"


def test_propensity_outside_unit_interval(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    raw = raw_tables(tiny_data)
    raw["exposures"]["propensity"] = [0.5, 0.0, 1.5, 1.0]

    _, report = validate_tables(raw, taxonomy, now=NOW)

    problem = only(report)
    assert (problem.message, problem.rows, problem.sample) == (
        "propensity outside (0, 1]",
        [2, 3],
        ["0.0", "1.5"],
    )
    assert problem.expected == "a probability in (0, 1]"


def test_a_servable_set_must_be_a_json_object_of_content_id_lists(
    tiny_data: JourneyData, taxonomy: Taxonomy
) -> None:
    raw = raw_tables(tiny_data)
    raw["exposures"]["servable"] = ['{"K1": ["C1", "C2"], "": []}', None, "{not json", '["C1"]']

    _, report = validate_tables(raw, taxonomy, now=NOW)

    problem = only(report)
    assert (problem.column, problem.message, problem.rows) == (
        "servable",
        "servable not a JSON object of content id lists",
        [3, 4],
    )


def test_list_columns_are_checked_element_wise(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    raw = raw_tables(tiny_data)
    content = as_strings(raw["content"])
    content.loc[2, "phases"] = "trigger|nonsense"
    content.loc[0, "roles"] = "cto|it"
    content.loc[4, "roles"] = np.nan  # no roles given: fits every role, not a problem
    raw["content"] = content

    _, report = validate_tables(raw, taxonomy, now=NOW)

    assert [(p.column, p.message, p.rows, p.sample) for p in report.problems] == [
        ("phases", "unknown phases", [3], ["nonsense"]),
        ("roles", "unknown roles", [1], ["cto"]),
    ]
    assert report.problems[0].expected == "lists of: " + ", ".join(taxonomy.phases)


def test_missing_lists_read_as_empty_lists(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    raw = raw_tables(tiny_data)
    content = as_strings(raw["content"])
    content.loc[4, "roles"] = np.nan
    raw["content"] = content.drop(columns=["phases"])

    data, report = validate_tables(raw, taxonomy, now=NOW)

    assert report.ok, report.format()
    assert data is not None
    assert all(phases == [] for phases in data.content["phases"])
    assert data.content.loc[4, "roles"] == [] and data.content.loc[3, "roles"] != []


def test_missing_required_column_and_ignored_extra_column(
    tiny_data: JourneyData, taxonomy: Taxonomy
) -> None:
    raw = raw_tables(tiny_data)
    raw["touchpoints"] = raw["touchpoints"].drop(columns=["channel"]).assign(utm_source="x")

    _, report = validate_tables(raw, taxonomy, now=NOW)

    assert only(report).format() == (
        "touchpoints.channel: missing required column; expected a column 'channel' (channel)"
    )
    assert report.notes == ["touchpoints: ignored unknown columns 'utm_source'"]
    assert report.format().endswith("note: touchpoints: ignored unknown columns 'utm_source'")


def test_extra_columns_alone_are_not_an_error(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    raw = raw_tables(tiny_data)
    raw["accounts"]["crm_score"] = [1, 2, 3]

    data, report = validate_tables(raw, taxonomy, now=NOW)

    assert report.ok
    assert data is not None
    assert list(data.accounts.columns) == TABLES["accounts"].names


def test_optional_columns_and_exposures_may_be_absent(
    tiny_data: JourneyData, taxonomy: Taxonomy
) -> None:
    raw = raw_tables(tiny_data)
    del raw["exposures"]
    raw["accounts"] = raw["accounts"].drop(columns=["annual_revenue", "owner_rep_id"])
    raw["touchpoints"] = raw["touchpoints"].drop(columns=["value"])

    data, report = validate_tables(raw, taxonomy, now=NOW)

    assert report.ok, report.format()
    assert data is not None
    assert len(data.exposures) == 0
    assert list(data.exposures.columns) == TABLES["exposures"].names
    assert data.exposures["ts"].dtype == "datetime64[ns, UTC]"
    assert data.accounts["annual_revenue"].isna().all()
    assert data.accounts["owner_rep_id"].dtype == "str"
    assert data.touchpoints["value"].dtype == "float64"
    assert data.touchpoints["value"].isna().all()


def test_missing_table_is_reported_and_its_references_skipped(
    tiny_data: JourneyData, taxonomy: Taxonomy
) -> None:
    raw = raw_tables(tiny_data)
    del raw["accounts"]

    data, report = validate_tables(raw, taxonomy, now=NOW)

    assert data is None
    assert only(report).format() == "accounts: missing table; expected a accounts table"


def test_every_problem_is_reported_at_once(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    raw = raw_tables(tiny_data)
    raw["accounts"]["employees"] = ["50", "x", "300"]
    raw["touchpoints"]["channel"] = (
        raw["touchpoints"]["channel"].astype("str").replace({"blog": "fax"})
    )
    raw["touchpoints"].loc[3, "event_id"] = "E01"
    raw["stages"]["phase"] = ["awareness", "consideration", "negotiation", "purchase", "trigger"]

    _, report = validate_tables(raw, taxonomy, now=NOW)

    assert [(p.table, p.column, p.rows) for p in report.problems] == [
        ("accounts", "employees", [2]),
        ("touchpoints", "event_id", [1, 4]),
        ("touchpoints", "channel", [2]),
        ("stages", "phase", [3]),
    ]
    assert report.format().startswith("4 problems found")


def test_typed_categories_in_another_order_are_reordered(
    tiny_data: JourneyData, taxonomy: Taxonomy
) -> None:
    raw = raw_tables(tiny_data)
    reversed_vocab = list(reversed(taxonomy.channel_names))
    raw["touchpoints"]["channel"] = raw["touchpoints"]["channel"].astype(
        pd.CategoricalDtype(reversed_vocab)
    )
    raw["touchpoints"]["event_type"] = raw["touchpoints"]["event_type"].astype("category")

    data, report = validate_tables(raw, taxonomy, now=NOW)

    assert report.ok
    assert_same_data(data, tiny_data)
    assert data is not None
    assert list(data.touchpoints["channel"].cat.categories) == taxonomy.channel_names


def test_naive_timestamps_are_in_the_given_timezone(
    tiny_data: JourneyData, taxonomy: Taxonomy
) -> None:
    raw = raw_tables(tiny_data)
    raw["stages"]["ts"] = [
        "2024-01-10 01:00",  # Berlin winter time, UTC+1
        "2024-07-05T02:00:00",  # summer time, UTC+2
        "2024-02-20T00:00:00Z",  # explicit UTC
        "2024-05-02T09:00:00+09:00",  # explicit offset
        "2024-01-15 01:00",
    ]

    data, report = validate_tables(raw, taxonomy, now=NOW, timezone="Europe/Berlin")

    assert report.ok, report.format()
    assert data is not None
    assert data.stages["ts"].astype("str").tolist() == [
        "2024-01-10 00:00:00+00:00",
        "2024-07-05 00:00:00+00:00",
        "2024-02-20 00:00:00+00:00",
        "2024-05-02 00:00:00+00:00",
        "2024-01-15 00:00:00+00:00",
    ]


def test_timestamp_format(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    raw = raw_tables(tiny_data)
    raw["stages"]["ts"] = ["10.01.2024 00:00", "05.03.2024", "20.02.2024 00:00", "x", None]

    _, report = validate_tables(raw, taxonomy, now=NOW, timestamp_format="%d.%m.%Y %H:%M")

    assert [(p.message, p.rows, p.expected) for p in report.problems] == [
        ("missing value", [5], "a value (the column may not be empty)"),
        ("unparseable timestamp", [2, 4], "a timestamp in the format '%d.%m.%Y %H:%M'"),
    ]


def test_timestamp_formats_per_table_and_column(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    raw = raw_tables(tiny_data)
    raw["stages"]["ts"] = ["10.01.2024", "05.03.2024", "20.02.2024", "02.05.2024", "2024-01-15"]
    raw["contacts"]["left_at"] = [None, None, None, "20240401 17:00", None]
    raw["contacts"]["created_at"] = raw["contacts"]["created_at"].astype("str")  # ISO 8601
    raw["accounts"]["created_at"] = ["2023-03-01T09:00", "2023-06-15T10:30", "2023-11-20T08:00"]
    formats = {
        "default": "%d.%m.%Y",  # stages, and every table not named
        "contacts.left_at": "%Y%m%d %H:%M",  # a column's own format before its table's
        "contacts": "ISO8601",
        "accounts": "ISO8601",
    }

    data, report = validate_tables(raw, taxonomy, now=NOW, timestamp_format=formats)

    assert [(p.table, p.column, p.rows, p.expected) for p in report.problems] == [
        ("stages", "ts", [5], "a timestamp in the format '%d.%m.%Y'"),
    ]
    raw["stages"].loc[4, "ts"] = "15.01.2024"
    data, report = validate_tables(raw, taxonomy, now=NOW, timestamp_format=formats)
    assert report.ok, report.format()
    assert_same_data(data, tiny_data)


def test_local_times_in_a_dst_gap_or_repeated_hour_are_resolved_and_noted(
    tiny_data: JourneyData, taxonomy: Taxonomy
) -> None:
    raw = raw_tables(tiny_data)
    raw["stages"]["ts"] = [
        "2024-03-31 02:30",  # Berlin springs forward 02:00 -> 03:00: read as 03:30 CEST
        "2024-03-31 02:00",  # the gap's first minute: 03:00 CEST
        "2024-10-27 02:30",  # clocks fall back 03:00 -> 02:00: first occurrence, CEST
        "2024-10-27 03:00",  # after the repeated hour: CET, nothing to resolve
        "not a time",
    ]
    exposure_times = ["2024-03-31 02:15", "2024-10-27 02:15", "2024-06-01 12:00", None]
    raw["exposures"]["ts"] = pd.to_datetime(pd.Series(exposure_times))  # naive, as Parquet

    _, report = validate_tables(raw, taxonomy, now=NOW, timezone="Europe/Berlin")

    assert [p.format() for p in report.problems] == [
        "stages.ts: 1 row with unparseable timestamp (row 5); sample: 'not a time'; expected an "
        "ISO 8601 timestamp such as 2024-05-01T12:00:00Z",
        "exposures.ts: 1 row with missing value (row 4); expected a value (the column may not "
        "be empty)",
    ]
    assert report.notes == [
        "stages.ts: 2 local times in a DST gap shifted forward by the gap, 1 ambiguous local "
        "time read as the first occurrence (Europe/Berlin)",
        "exposures.ts: 1 local time in a DST gap shifted forward by the gap, 1 ambiguous local "
        "time read as the first occurrence (Europe/Berlin)",
    ]
    raw["stages"].loc[4, "ts"] = "2024-01-15 01:00"
    raw["exposures"].loc[3, "ts"] = pd.Timestamp("2024-06-02 12:00")
    data, report = validate_tables(raw, taxonomy, now=NOW, timezone="Europe/Berlin")
    assert data is not None, report.format()
    assert data.stages["ts"].astype("str").tolist() == [
        "2024-03-31 01:30:00+00:00",
        "2024-03-31 01:00:00+00:00",
        "2024-10-27 00:30:00+00:00",
        "2024-10-27 02:00:00+00:00",
        "2024-01-15 00:00:00+00:00",
    ]
    assert data.exposures["ts"].astype("str").tolist()[:2] == [
        "2024-03-31 01:15:00+00:00",
        "2024-10-27 00:15:00+00:00",
    ]


def test_integer_ids_become_strings(taxonomy: Taxonomy) -> None:
    data = make_tiny_data(taxonomy)
    raw = raw_tables(data)
    raw["accounts"]["account_id"] = [1, 2, 3]
    raw["contacts"]["account_id"] = [1, 1, 2, 2, 3]
    raw["touchpoints"]["account_id"] = raw["touchpoints"]["account_id"].str[1:].astype("int64")
    raw["stages"]["account_id"] = [1.0, 1.0, 2.0, 2.0, 3.0]
    raw["exposures"]["account_id"] = [1, 1, 2, 3]

    out, report = validate_tables(raw, taxonomy, now=NOW)

    assert report.ok, report.format()
    assert out is not None
    assert out.accounts["account_id"].tolist() == ["1", "2", "3"]
    assert out.stages["account_id"].tolist() == ["1", "1", "2", "2", "3"]
    assert out.touchpoints["account_id"].dtype == "str"


@pytest.mark.parametrize("rows", [200_000])
def test_large_tables_validate_quickly(
    tiny_data: JourneyData, taxonomy: Taxonomy, rows: int
) -> None:
    """Vectorised checks: 200k string rows (as from CSV) well under a few seconds."""
    import time

    raw = raw_tables(tiny_data)
    big = raw["touchpoints"].sample(rows, replace=True, random_state=0).reset_index(drop=True)
    big["event_id"] = pd.Series(np.arange(rows)).astype("str")
    raw["touchpoints"] = as_strings(big)

    started = time.perf_counter()
    data, report = validate_tables(raw, taxonomy, now=NOW)
    elapsed = time.perf_counter() - started

    assert report.ok, report.format()
    assert data is not None and len(data.touchpoints) == rows
    assert elapsed < 5.0
