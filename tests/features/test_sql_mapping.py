"""Mappings that give tables as DuckDB queries over a customer's export files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.load import write_data_dir
from features.mapping import MappingError, load_mapping
from features.schema import JourneyData
from features.sql_tables import Source, read_sql_tables
from features.taxonomy import Taxonomy
from features.validate import check_data_dir
from nba.cli import app
from tests.utils.data import NOW, assert_same_data, canonical_content

# A small CRM export: leads and deals of two companies (wall-clock times in Berlin; O-2 was
# written at 02:30 on the night the clocks sprang forward), the companies' master data and
# monthly web counts in wide form.
EXPORT = {
    "leads.csv": """lead_id,company,email,role,source,created
L1,ACME GmbH,anna@acme.example,Decision Maker,Webinar,2024-01-02 09:00:00
L2,ACME GmbH,ben@acme.example,IT,,2024-01-05 10:00:00
L3,Nordwind AB,cara@nordwind.example,Marketing,Trade Fair,2024-02-01 08:00:00
""",
    "deals.csv": """Order;Customer;Company;Ordered;Amount
O-1;anna@acme.example;ACME GmbH;08.01.2024 11:00;1200,50
O-2;cara@nordwind.example;Nordwind AB;31.03.2024 02:30;99,00
""",
    "companies.csv": """company;industry;country;employees
ACME GmbH;Software;DE;50
Nordwind AB;;SE;1200
""",
    "web.csv": """company,month,page_views,downloads
ACME GmbH,2024-02,12,3
Nordwind AB,2024-02,4,0
""",
}

# The worked example of docs/mappings.md ("one event file, several tables").
MAPPING = """
timezone: Europe/Berlin
sources:
  leads: leads.csv
  deals:
    path: deals.csv
    options: {delim: ";", decimal_separator: ",", timestampformat: "%d.%m.%Y %H:%M"}
  companies: {path: companies.csv, options: {delim: ";"}}
  web: web.csv
sql:
  accounts: |
    WITH seen AS (
      SELECT company, created AS ts FROM leads
      UNION ALL
      SELECT Company, Ordered FROM deals
    )
    SELECT s.company AS account_id,
           coalesce(c.industry, 'Manufacturing') AS industry,  -- a default
           CASE c.country WHEN 'SE' THEN 'nordics' ELSE 'dach' END AS region,
           c.employees,
           min(s.ts) AS created_at                              -- the first event
    FROM seen s JOIN companies c USING (company)
    GROUP BY ALL
  contacts: |
    SELECT md5(lower(email)) AS contact_id, any_value(company) AS account_id,
           any_value(role) AS role, min(created) AS created_at
    FROM leads GROUP BY email
  touchpoints: |
    SELECT 'lead-' || lead_id AS event_id, company AS account_id,
           md5(lower(email)) AS contact_id, created AS ts,
           coalesce(source, 'Website') AS channel, 'register' AS event_type,
           NULL::VARCHAR AS content_id, NULL::DOUBLE AS value
    FROM leads
    UNION ALL
    SELECT md5("Order"), Company, md5(lower(Customer)), Ordered,
           'Phone Call', 'purchase', NULL, Amount
    FROM deals
    UNION ALL
    SELECT md5(company || month || kind), company, NULL, strptime(month, '%Y-%m'),
           'Website', CASE kind WHEN 'page_views' THEN 'view' ELSE 'download' END, NULL, n
    FROM (UNPIVOT web ON page_views, downloads INTO NAME kind VALUE n)
    WHERE n > 0
  stages: |
    SELECT company AS account_id, min(created) AS ts, 'awareness' AS phase
    FROM leads GROUP BY company
    UNION ALL
    SELECT Company, min(Ordered), 'purchase' FROM deals GROUP BY Company
values:
  accounts:
    industry: {Software: software, Manufacturing: manufacturing}
  contacts:
    role: {Decision Maker: economic_buyer, IT: it, Marketing: marketing}
  touchpoints:
    channel: {Webinar: webinar, Website: website, Trade Fair: trade_fair, Phone Call: sales_call}
"""


def md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()


def write_export(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


@pytest.fixture
def export_dir(tmp_path: Path, taxonomy: Taxonomy) -> Path:
    """The export above, the content catalog as a plain file, and the mapping."""
    directory = write_export(tmp_path / "export", EXPORT)
    canonical_content(taxonomy).to_parquet(directory / "content.parquet")
    (tmp_path / "crm.yaml").write_text(MAPPING)
    return directory


def test_sql_mapping_builds_every_table_from_the_export(
    export_dir: Path, taxonomy: Taxonomy
) -> None:
    mapping = load_mapping(export_dir.parent / "crm.yaml")

    data, report = check_data_dir(export_dir, taxonomy, mapping=mapping, now=NOW)

    assert data is not None, report.format()
    accounts = data.accounts.set_index("account_id")
    assert accounts["industry"].astype(str).to_dict() == {
        "ACME GmbH": "software",
        "Nordwind AB": "manufacturing",  # the default for a missing industry
    }
    assert accounts["region"].astype(str).to_dict() == {
        "ACME GmbH": "dach",
        "Nordwind AB": "nordics",
    }
    # created_at: the first lead or deal, Berlin wall-clock time read in UTC
    assert accounts["created_at"].astype(str).to_dict() == {
        "ACME GmbH": "2024-01-02 08:00:00+00:00",
        "Nordwind AB": "2024-02-01 07:00:00+00:00",
    }
    anna = md5("anna@acme.example")
    assert data.contacts.set_index("contact_id")["role"].astype(str).to_dict() == {
        anna: "economic_buyer",
        md5("ben@acme.example"): "it",
        md5("cara@nordwind.example"): "marketing",
    }
    touchpoints = data.touchpoints.set_index("event_id")
    assert len(touchpoints) == 8  # 3 leads + 2 deals + 3 non-zero web counts
    assert touchpoints.loc["lead-L2", "channel"] == "website"  # missing source filled
    assert touchpoints.loc[md5("O-1"), ["contact_id", "event_type", "value"]].tolist() == [
        anna,
        "purchase",
        1200.5,
    ]
    # O-2 was written at 02:30 on 2024-03-31, inside Berlin's DST gap: read as 03:30 CEST
    assert str(touchpoints.loc[md5("O-2"), "ts"]) == "2024-03-31 01:30:00+00:00"
    web = touchpoints.loc[md5("ACME GmbH2024-02downloads")]
    assert (web["event_type"], web["value"], str(web["ts"])) == (
        "download",
        3.0,
        "2024-01-31 23:00:00+00:00",
    )
    assert sorted(data.stages["phase"].astype(str)) == ["awareness"] * 2 + ["purchase"] * 2
    assert report.notes == [
        "exposures: no table given; read as empty",  # the export has none (issue11-optional)
        "touchpoints.ts: 1 local time in a DST gap shifted forward by the gap (Europe/Berlin)",
        "stages.ts: 1 local time in a DST gap shifted forward by the gap (Europe/Berlin)",
    ]


def test_cli_validates_through_a_sql_mapping(export_dir: Path) -> None:
    mapping = export_dir.parent / "crm.yaml"

    result = CliRunner().invoke(app, ["validate", str(export_dir), "--mapping", str(mapping)])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: 6 tables")
    assert "note: touchpoints.ts: 1 local time in a DST gap" in result.output


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            "SELECT l.lead_id, c.country FROM leads l JOIN companies c USING (company) ORDER BY 1",
            [("L1", "DE"), ("L2", "DE"), ("L3", "SE")],
            id="join",
        ),
        pytest.param(
            'SELECT lead_id AS id FROM leads UNION ALL SELECT "Order" FROM deals ORDER BY 1',
            [("L1",), ("L2",), ("L3",), ("O-1",), ("O-2",)],
            id="union",
        ),
        pytest.param(
            "SELECT company, kind, n FROM (UNPIVOT web ON page_views, downloads "
            "INTO NAME kind VALUE n) ORDER BY ALL",
            [
                ("ACME GmbH", "downloads", 3),
                ("ACME GmbH", "page_views", 12),
                ("Nordwind AB", "downloads", 0),
                ("Nordwind AB", "page_views", 4),
            ],
            id="unpivot",
        ),
        pytest.param(
            "SELECT lead_id, 'dach' AS region, coalesce(source, 'Website') AS channel "
            "FROM leads ORDER BY 1",
            [("L1", "dach", "Webinar"), ("L2", "dach", "Website"), ("L3", "dach", "Trade Fair")],
            id="constants-and-defaults",
        ),
        pytest.param(
            'SELECT md5("Order") AS id FROM deals ORDER BY "Order"',
            [(md5("O-1"),), (md5("O-2"),)],
            id="md5-ids",
        ),
        pytest.param(
            "SELECT \"Order\", strptime(strftime(Ordered, '%d.%m.%Y %H:%M') || ' America/New_York',"
            " '%d.%m.%Y %H:%M %Z') AS ts FROM deals ORDER BY 1",
            [
                ("O-1", pd.Timestamp("2024-01-08 16:00", tz="UTC")),
                ("O-2", pd.Timestamp("2024-03-31 06:30", tz="UTC")),
            ],
            id="strptime-format-and-time-zone",
        ),
        pytest.param(
            "SELECT Ordered FROM read_csv('deals.csv', delim=';', "
            "timestampformat='%d.%m.%Y %H:%M') ORDER BY 1",
            [(pd.Timestamp("2024-01-08 11:00"),), (pd.Timestamp("2024-03-31 02:30"),)],
            id="read-a-file-directly",
        ),
    ],
)
def test_queries_over_export_sources(
    tmp_path: Path, query: str, expected: list[tuple[object, ...]]
) -> None:
    directory = write_export(tmp_path, EXPORT)
    mapping = load_mapping(write_export(tmp_path, {"m.yaml": MAPPING}) / "m.yaml")

    frames, problems = read_sql_tables(
        directory, {"touchpoints": query}, sources=mapping.sources, timezone="Europe/Berlin"
    )

    assert problems == []
    frame = frames["touchpoints"]
    for column in frame.select_dtypes("datetimetz"):
        frame[column] = frame[column].dt.tz_convert("UTC")
    assert list(frame.itertuples(index=False, name=None)) == expected


def test_json_and_parquet_sources(tmp_path: Path) -> None:
    (tmp_path / "visits.jsonl").write_text(
        '{"account": "A1", "pages": ["pricing", "demo"]}\n{"account": "A2", "pages": []}\n'
    )
    pd.DataFrame({"account": ["A3"], "pages": [["blog"]]}).to_parquet(tmp_path / "old.parquet")
    sources = {"visits": Source(path="visits.jsonl"), "old": Source(path="old.parquet")}
    query = "SELECT account, len(pages) AS n FROM visits UNION ALL SELECT account, 1 FROM old"

    frames, problems = read_sql_tables(
        tmp_path, {"touchpoints": query + " ORDER BY 1"}, sources=sources, timezone="UTC"
    )

    assert problems == []
    assert frames["touchpoints"].to_dict("list") == {"account": ["A1", "A2", "A3"], "n": [2, 0, 1]}


def test_typed_query_results_validate_like_files(
    tiny_data: JourneyData, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    """DuckDB's types come through: TIMESTAMPTZ as an instant, a naive TIMESTAMP as a local
    time in the mapping's time zone, integers of any width, decimals, lists."""
    write_data_dir(tiny_data, tmp_path)
    (tmp_path / "m.yaml").write_text("""
timezone: Europe/Berlin
sql:
  accounts: |
    SELECT account_id, industry, employees::INTEGER AS employees, region, created_at,
           annual_revenue::DECIMAL(18, 2) AS annual_revenue, owner_rep_id
    FROM 'accounts.parquet'
  stages: SELECT account_id AS "Company ID", ts, phase FROM 'stages.parquet'
  exposures: |
    SELECT * REPLACE (ts AT TIME ZONE 'Europe/Berlin' AS ts) FROM 'exposures.parquet'
  content: |
    SELECT * REPLACE (string_split(array_to_string(phases, ','), ',') AS phases)
    FROM 'content.parquet'
columns:
  stages: {Company ID: account_id}  # renames apply to query results as to files
""")
    mapping = load_mapping(tmp_path / "m.yaml")

    data, report = check_data_dir(tmp_path, taxonomy, mapping=mapping, now=NOW)

    assert report.ok, report.format()
    assert_same_data(data, tiny_data)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "SELECT * FROM read_csv('nope.csv')",
            "touchpoints: sql query failed: IO Error: No files found that match the pattern "
            '"nope.csv"',
        ),
        (
            "SELECT lead_id, kanal FROM leads",
            'touchpoints: sql query failed: Binder Error: Referenced column "kanal" not found',
        ),
        (
            # Nothing is fetched: httpfs is neither installed nor loaded on demand.
            "SELECT * FROM read_csv('https://example.com/leads.csv')",
            "touchpoints: sql query failed: File "
            "https://example.com/leads.csv requires the extension httpfs to be loaded",
        ),
    ],
)
def test_failing_queries_are_problems_naming_table_and_duckdb_message(
    export_dir: Path, taxonomy: Taxonomy, sql: str, message: str
) -> None:
    mapping = load_mapping(export_dir.parent / "crm.yaml")
    mapping = mapping.model_copy(update={"sql": {**mapping.sql, "touchpoints": sql}})

    data, report = check_data_dir(export_dir, taxonomy, mapping=mapping, now=NOW)

    assert data is None
    assert [p.format()[: len(message)] for p in report.problems] == [message]


def test_a_source_that_cannot_be_read_is_a_problem_of_the_tables_reading_it(
    export_dir: Path, taxonomy: Taxonomy
) -> None:
    (export_dir / "web.csv").unlink()
    mapping = load_mapping(export_dir.parent / "crm.yaml")

    _, report = check_data_dir(export_dir, taxonomy, mapping=mapping, now=NOW)

    assert [p.format() for p in report.problems] == [
        "touchpoints: source 'web' (web.csv) cannot be read: IO Error: No files found that "
        'match the pattern "web.csv"; '
        f"expected a file web.csv in {export_dir} that DuckDB's read_csv reads with the "
        "source's options"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "sql: {touchpoints: 'SELEC 1'}",
            'sql.touchpoints: Parser Error: syntax error at or near "SELEC"',
        ),
        (
            "sql: {touchpoints: 'SELECT 1; SELECT 2'}",
            "sql.touchpoints: expected one SELECT statement, found 2 statements",
        ),
        ("sql: {touchpoints: 'INSTALL httpfs'}", "sql.touchpoints: expected a SELECT statement"),
        (
            "files: {touchpoints: t.csv}\nsql: {touchpoints: SELECT 1}",
            "sql.touchpoints: touchpoints is also given by files; give it one way",
        ),
        ("sql: {deals: SELECT 1}", "sql.deals: unknown table"),
        ("sources: {leads: leads.csv}", "sources.leads: not read by any sql query"),
        (
            "sources: {my-leads: leads.csv}\nsql: {touchpoints: SELECT * FROM my-leads}",
            "sources.my-leads: not a name a query can use",
        ),
        (
            "sources: {leads: leads.xlsx}\nsql: {touchpoints: SELECT * FROM leads}",
            "sources.leads: Value error, cannot tell the format of 'leads.xlsx'",
        ),
        (
            "timestamp_format: {touchpoints.created: '%Y'}",
            "timestamp_format.touchpoints.created: not 'default', a table or a timestamp column",
        ),
    ],
)
def test_bad_sql_mappings_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "crm.yaml"
    path.write_text(text)

    with pytest.raises(MappingError) as caught:
        load_mapping(path)

    assert message in str(caught.value)


def test_reader_options_become_duckdb_literals() -> None:
    source = Source(
        path="it's.csv",
        options={"delim": ";", "header": True, "skip": 2, "types": {"Customer ID": "VARCHAR"}},
    )

    assert source.reader_sql() == (
        "read_csv('it''s.csv', delim = ';', header = true, skip = 2, "
        "types = {'Customer ID': 'VARCHAR'})"
    )
