"""Column mappings: loading mapping YAML and reading a CRM export through it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import features
from features.load import read_data_dir
from features.mapping import (
    ColumnMapping,
    MappingError,
    TimestampFormats,
    apply_mapping,
    load_mapping,
    timestamp_format_for,
)
from features.schema import TABLES, JourneyData
from features.taxonomy import Taxonomy
from nba.cli import app
from tests.utils.data import NOW

EXAMPLE = Path(features.__file__).parent / "config" / "mappings" / "example_crm.yaml"


def write_crm_export(
    data: JourneyData, mapping: ColumnMapping, taxonomy: Taxonomy, out_dir: Path
) -> Path:
    """Write canonical data the way the example CRM exports it: its file and column names,
    its labels, German dates in Berlin time, ';'-separated, stages in the 7-phase model."""
    out_dir.mkdir(parents=True, exist_ok=True)
    assert mapping.timestamp_format is not None and mapping.phase_model is not None
    for table, frame in data.tables().items():
        frame = frame.copy()
        for name, lookup in mapping.values.get(table, {}).items():
            inverse: dict[str, str] = {}
            for export, canonical in lookup.items():
                inverse.setdefault(canonical, export)
            if TABLES[table].column(name).kind == "list":
                frame[name] = frame[name].map(lambda items, m=inverse: [m[v] for v in items])
                continue
            values = frame[name].astype("str")
            if table == "stages" and name == "phase":
                values = values.map(lambda p: taxonomy.from_default_phase(p, "decision_7"))
            frame[name] = values.map(lambda v, m=inverse: m.get(v, v))
        for column in TABLES[table].columns:
            if column.kind == "list":
                frame[column.name] = frame[column.name].map(mapping.list_separator.join)
            if column.kind == "datetime":
                local = frame[column.name].dt.tz_convert(mapping.timezone)
                frame[column.name] = local.dt.strftime(mapping.timestamp_format)
        to_export = {canonical: export for export, canonical in mapping.columns[table].items()}
        frame = frame.rename(columns=to_export)
        frame.to_csv(out_dir / mapping.files[table], sep=mapping.csv_separator, index=False)
    return out_dir


def test_example_mapping_loads() -> None:
    mapping = load_mapping(EXAMPLE)

    assert mapping.files["touchpoints"] == "activities.csv"
    assert mapping.columns["touchpoints"]["Activity Date"] == "ts"
    assert mapping.values["touchpoints"]["event_type"]["Webinar Attended"] == "attend"
    assert mapping.values["touchpoints"]["event_type"]["Email Opened"] == "view"
    assert mapping.phase_model == "decision_7"
    assert (mapping.timezone, mapping.csv_separator, mapping.list_separator) == (
        "Europe/Berlin",
        ";",
        ",",
    )


def test_crm_export_reads_as_canonical_data(
    tiny_data: JourneyData, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    mapping = load_mapping(EXAMPLE)
    write_crm_export(tiny_data, mapping, taxonomy, tmp_path)
    header = (tmp_path / "activities.csv").read_text().splitlines()[:2]
    assert header == [
        "Activity ID;Company ID;Contact ID;Activity Date;Source;Activity Type;Asset ID;"
        "Duration / Amount",
        "E01;A1;P1;08.01.2024 11:00;Paid Search;Link Clicked;C007;",
    ]

    loaded = read_data_dir(tmp_path, taxonomy, mapping, now=NOW)

    expected = tiny_data
    # decision_7 has one phase (initial consideration) for awareness and consideration, so
    # A1's consideration stage comes back as awareness, its first default phase.
    expected.stages["phase"] = pd.Categorical(
        ["awareness", "awareness", "selection", "purchase", "trigger"],
        categories=taxonomy.phases,
    )
    for name, frame in expected.tables().items():
        pd.testing.assert_frame_equal(getattr(loaded, name), frame, check_exact=True)


def test_cli_validate_with_mapping(
    tiny_data: JourneyData, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    mapping = load_mapping(EXAMPLE)
    write_crm_export(tiny_data, mapping, taxonomy, tmp_path)
    runner = CliRunner()

    good = runner.invoke(app, ["validate", str(tmp_path), "--mapping", str(EXAMPLE)])
    assert good.exit_code == 0, good.output
    assert good.output.startswith("OK: 6 tables")

    activities = tmp_path / "activities.csv"
    activities.write_text(activities.read_text().replace(";Webinar;", ";Fax;"))
    bad = runner.invoke(app, ["validate", str(tmp_path), "--mapping", str(EXAMPLE)])
    assert bad.exit_code == 1
    assert "touchpoints.channel: 1 row with unknown channel (row 3); sample: 'Fax'" in bad.output

    without = runner.invoke(app, ["validate", str(tmp_path)])
    assert without.exit_code == 1
    assert "accounts: missing table file; expected accounts.parquet or accounts.csv" in (
        without.output
    )


def test_apply_mapping_renames_and_replaces_values(taxonomy: Taxonomy) -> None:
    mapping = ColumnMapping(
        columns={"touchpoints": {"Activity Type": "event_type", "Activity Date": "ts"}},
        values={
            "touchpoints": {"event_type": {"Webinar Attended": "attend", "Email Opened": "view"}}
        },
    )
    frame = pd.DataFrame(
        {
            "Activity Type": ["Email Opened", "Webinar Attended", None, "click", "Email Opened"],
            "Activity Date": ["2024-01-01"] * 5,
        },
        dtype="str",
    )

    out = apply_mapping("touchpoints", frame, mapping, taxonomy)

    assert list(out.columns) == ["event_type", "ts"]
    assert out["event_type"].astype("str").tolist()[:2] == ["view", "attend"]
    assert out["event_type"].isna().tolist() == [False, False, True, False, False]
    assert out["event_type"].tolist()[3:] == ["click", "view"]  # unmapped values kept
    assert apply_mapping("touchpoints", frame, None, taxonomy) is frame


def test_apply_mapping_converts_stage_phases(taxonomy: Taxonomy) -> None:
    mapping = ColumnMapping(
        phase_model="classic_5", values={"stages": {"phase": {"Kaufentscheidung": "decision"}}}
    )
    frame = pd.DataFrame({"phase": ["awareness", "Kaufentscheidung", "retention", "advocacy", "x"]})

    out = apply_mapping("stages", frame, mapping, taxonomy)

    assert out["phase"].tolist() == ["trigger", "selection", "onboarding", "expansion", "x"]


def test_unknown_phase_model_is_reported(
    tiny_data: JourneyData, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    mapping = load_mapping(EXAMPLE).model_copy(update={"phase_model": "hype_cycle"})
    write_crm_export(tiny_data, load_mapping(EXAMPLE), taxonomy, tmp_path)

    from features.validate import validate_data_dir

    report = validate_data_dir(tmp_path, taxonomy, mapping, now=NOW)

    assert [p.format() for p in report.problems] == [
        "stages: mapping cannot be applied: phase_model 'hype_cycle' is not a phase model of "
        "the taxonomy; expected one of ['b2b_8', 'classic_5', 'decision_7']"
    ]


@pytest.mark.parametrize(
    ("formats", "expected"),
    [
        (None, [None, None, None]),
        ("%d.%m.%Y", ["%d.%m.%Y"] * 3),
        ({"stages": "%Y", "default": "%d"}, ["%d", "%Y", "%d"]),
        ({"contacts.left_at": "%H", "contacts": "ISO8601"}, [None, None, "%H"]),
    ],
)
def test_timestamp_format_of_a_column_then_its_table_then_the_default(
    formats: TimestampFormats, expected: list[str | None]
) -> None:
    columns = [("accounts", "created_at"), ("stages", "ts"), ("contacts", "left_at")]

    assert [timestamp_format_for(formats, t, c) for t, c in columns] == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("files: {deals: deals.csv}", "files.deals: unknown table"),
        (
            "columns: {touchpoints: {Activity Date: timestamp}}",
            "columns.touchpoints.Activity Date: 'timestamp' is not a column of touchpoints",
        ),
        (
            "columns: {touchpoints: {Date: ts, Created: ts}}",
            "columns.touchpoints: several export columns map to ['ts']",
        ),
        ("values: {touchpoints: {kanal: {Fax: email}}}", "values.touchpoints.kanal: not a column"),
        ("timezone: Mars/Olympus", "timezone: unknown time zone 'Mars/Olympus'"),
        ("csv_separator: ''", "csv_separator: String should have at least 1 character"),
        ("colums: {}", "colums: Extra inputs are not permitted"),
        ("files: [a, b]", "files: Input should be a valid dictionary"),
        ("files: {a: [", "is not valid YAML"),
        ("- a\n- b", "must hold a mapping at the top level"),
    ],
)
def test_bad_mapping_files_name_file_and_entry(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "crm.yaml"
    path.write_text(text)

    with pytest.raises(MappingError) as caught:
        load_mapping(path)

    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_missing_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"cannot read mapping file .*nope.yaml"):
        load_mapping(tmp_path / "nope.yaml")


def test_cli_rejects_a_bad_mapping(tmp_path: Path) -> None:
    path = tmp_path / "crm.yaml"
    path.write_text("files: {deals: deals.csv}")

    result = CliRunner().invoke(app, ["validate", str(tmp_path), "--mapping", str(path)])

    assert result.exit_code == 2
    assert "files.deals: unknown table" in result.output
