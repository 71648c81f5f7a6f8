"""Hand-built data sets with known answers, and writing data the way an export would.

:func:`make_tiny_data` (the features tests' ``tiny_data`` fixture) is small enough to check
expected values by eye:

accounts (3)   A1 software/dach (50 employees), A2 manufacturing/nordics (1200),
               A3 retail/north_america (300); created 2023.
contacts (5)   A1: P1 economic_buyer, P2 it; A2: P3 marketing, P4 finance (left 2024-04-01);
               A3: P5 end_user.
content        the taxonomy's catalog (C001..C094), ``Taxonomy.content_frame()``.
touchpoints    12 events E01..E12 between 2024-01-08 and 2024-06-10, whole minutes, listed
               in time order; A1 has 6 (E01-E03, E07, E09, E12), A2 has 4 (E04, E05, E08,
               E10), A3 has 2 (E06, E11). E05 has no contact; value is set on E03 (45
               minutes webinar) and E10 (purchase 24000 EUR).
stages         A1 awareness 2024-01-10 -> consideration 2024-03-05;
               A2 selection 2024-02-20 -> purchase 2024-05-02; A3 trigger 2024-01-15.
exposures      X1..X4 (propensities 0.5, 0.25, 1.0, 0.1).

Every frame has exactly the canonical dtypes of ``features.schema`` (built here with
explicit dtypes, not through the loader, so loader tests compare against independent data).

:func:`make_data` (the feature pipeline's tests, as of :data:`AS_OF`) is another small set
whose every feature value can be checked by eye (see its docstring).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.schema import TABLES, JourneyData, column_dtype
from features.taxonomy import Taxonomy

# A fixed "now" for validation, after every timestamp in tiny_data.
NOW = pd.Timestamp("2025-01-01", tz="UTC")


def typed_frame(table: str, columns: dict[str, list[object]], taxonomy: Taxonomy) -> pd.DataFrame:
    """A frame of ``table`` in canonical dtypes from plain Python values; columns not given
    are added as all-missing. Timestamps are strings in UTC."""
    n = len(next(iter(columns.values())))
    out: dict[str, pd.Series] = {}
    for column in TABLES[table].columns:
        values = columns.get(column.name, [None] * n)
        if column.kind == "datetime":
            out[column.name] = pd.Series(pd.to_datetime(pd.Series(values), utc=True)).dt.as_unit(
                "ns"
            )
        elif column.kind == "list":
            out[column.name] = pd.Series([list(v) for v in values], dtype=object)  # type: ignore[call-overload]
        else:
            out[column.name] = pd.Series(values).astype(column_dtype(column, taxonomy))  # type: ignore[arg-type]
    return pd.DataFrame(out)


def canonical_content(taxonomy: Taxonomy) -> pd.DataFrame:
    """The taxonomy's content catalog as a canonical ``content`` table."""
    frame = taxonomy.content_frame()
    return typed_frame("content", {c: frame[c].tolist() for c in frame.columns}, taxonomy)


def make_tiny_data(taxonomy: Taxonomy) -> JourneyData:
    """The tiny data set described in the module docstring."""
    accounts = typed_frame(
        "accounts",
        {
            "account_id": ["A1", "A2", "A3"],
            "industry": ["software", "manufacturing", "retail"],
            "employees": [50, 1200, 300],
            "region": ["dach", "nordics", "north_america"],
            "created_at": ["2023-03-01 09:00", "2023-06-15 10:30", "2023-11-20 08:00"],
            "annual_revenue": [5.0e6, 2.4e8, None],
            "owner_rep_id": ["R1", "R2", "R1"],
        },
        taxonomy,
    )
    contacts = typed_frame(
        "contacts",
        {
            "contact_id": ["P1", "P2", "P3", "P4", "P5"],
            "account_id": ["A1", "A1", "A2", "A2", "A3"],
            "role": ["economic_buyer", "it", "marketing", "finance", "end_user"],
            "created_at": [
                "2023-03-02 09:00",
                "2023-03-02 09:05",
                "2023-06-16 11:00",
                "2023-06-16 11:10",
                "2023-11-21 12:00",
            ],
            "left_at": [None, None, None, "2024-04-01 17:00", None],
        },
        taxonomy,
    )
    # event_id, account, contact, ts, channel, event_type, content, value
    events = [
        ("E01", "A1", "P1", "2024-01-08 10:00", "search_ads", "click", "C007", None),
        ("E02", "A1", "P2", "2024-01-20 14:30", "blog", "view", "C008", None),
        ("E03", "A1", "P2", "2024-02-12 16:00", "webinar", "attend", "C040", 45.0),
        ("E04", "A2", "P3", "2024-02-15 09:15", "website", "download", "C044", None),
        ("E05", "A2", None, "2024-02-28 11:00", "review_portal", "view", None, None),
        ("E06", "A3", "P5", "2024-03-01 13:45", "social_media", "share", "C002", None),
        ("E07", "A1", "P1", "2024-03-10 10:00", "email", "reply", None, None),
        ("E08", "A2", "P4", "2024-03-20 15:00", "meeting", "demo_request", "C056", None),
        ("E09", "A1", "P2", "2024-04-05 08:30", "website", "download", "C027", None),
        ("E10", "A2", "P4", "2024-05-02 12:00", "sales_call", "purchase", None, 24000.0),
        ("E11", "A3", "P5", "2024-05-20 09:00", "newsletter", "click", "C009", None),
        ("E12", "A1", "P1", "2024-06-10 17:20", "trade_fair", "meeting", None, None),
    ]
    names = ("event_id", "account_id", "contact_id", "ts", "channel", "event_type")
    touchpoints = typed_frame(
        "touchpoints",
        {name: [e[i] for e in events] for i, name in enumerate((*names, "content_id", "value"))},
        taxonomy,
    )
    stages = typed_frame(
        "stages",
        {
            "account_id": ["A1", "A1", "A2", "A2", "A3"],
            "ts": [
                "2024-01-10 00:00",
                "2024-03-05 00:00",
                "2024-02-20 00:00",
                "2024-05-02 00:00",
                "2024-01-15 00:00",
            ],
            "phase": ["awareness", "consideration", "selection", "purchase", "trigger"],
        },
        taxonomy,
    )
    exposures = typed_frame(
        "exposures",
        {
            "exposure_id": ["X1", "X2", "X3", "X4"],
            "account_id": ["A1", "A1", "A2", "A3"],
            "contact_id": ["P2", "P1", None, "P5"],
            "ts": [
                "2024-02-10 10:00",
                "2024-04-01 10:00",
                "2024-03-18 10:00",
                "2024-05-18 10:00",
            ],
            "content_id": ["C040", "C027", "C056", "C009"],
            "channel": ["email", "email", "sales_call", "newsletter"],
            "propensity": [0.5, 0.25, 1.0, 0.1],
        },
        taxonomy,
    )
    return JourneyData(
        accounts=accounts,
        contacts=contacts,
        touchpoints=touchpoints,
        content=canonical_content(taxonomy),
        stages=stages,
        exposures=exposures,
    )


def write_csv_dir(data: JourneyData, out_dir: Path, list_separator: str = "|") -> Path:
    """Write each table as ``<table>.csv`` the way an export would: ISO timestamps, lists
    joined with ``list_separator``, missing values as empty cells."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in data.tables().items():
        frame = frame.copy()
        for column in TABLES[name].columns:
            if column.kind == "list":
                frame[column.name] = frame[column.name].map(list_separator.join)
        frame.to_csv(out_dir / f"{name}.csv", index=False)
    return out_dir


# Touchpoint columns a lead, learner or shopper export has: no contact, content or value.
BARE_TOUCHPOINT_COLUMNS = ["event_id", "account_id", "ts", "channel", "event_type"]


def write_bare_dir(data: JourneyData, out_dir: Path) -> Path:
    """Write only what such an export holds, as Parquet: ``accounts`` with nothing but
    account_id and ``touchpoints`` with :data:`BARE_TOUCHPOINT_COLUMNS`; no contacts,
    content, stages or exposures files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data.accounts[["account_id"]].to_parquet(out_dir / "accounts.parquet", index=False)
    data.touchpoints[BARE_TOUCHPOINT_COLUMNS].to_parquet(
        out_dir / "touchpoints.parquet", index=False
    )
    return out_dir


# -- the feature pipeline's hand-built journeys ----------------------------------------------

AS_OF = pd.Timestamp("2024-07-01", tz="UTC")


def canonical(name: str, rows: list[dict[str, object]], taxonomy: Taxonomy) -> pd.DataFrame:
    """A table of ``rows`` in the data contract's dtypes (missing optional columns empty)."""
    frame = pd.DataFrame(rows, columns=TABLES[name].names)
    for column in TABLES[name].columns:
        dtype = column_dtype(column, taxonomy)
        if column.kind == "datetime":
            frame[column.name] = pd.to_datetime(frame[column.name], utc=True).astype(dtype)
        elif column.kind != "list":
            frame[column.name] = frame[column.name].astype(dtype)  # type: ignore[call-overload]
    return frame


def days_before(days: float) -> pd.Timestamp:
    return AS_OF - pd.Timedelta(days=days)


def make_data(taxonomy: Taxonomy) -> JourneyData:
    """Two accounts. A001 has a history written so every number below can be checked by eye;
    A002 has one touchpoint only; A003 is created after AS_OF and gets no row."""
    accounts = canonical(
        "accounts",
        [
            dict(
                account_id="A001",
                industry="software",
                employees=1000,
                region="dach",
                created_at=days_before(400),
                annual_revenue=5e6,
                owner_rep_id="R1",
            ),
            dict(
                account_id="A002",
                industry="retail",
                employees=50,
                region="nordics",
                created_at=days_before(100),
                annual_revenue=None,
                owner_rep_id="R2",
            ),
            dict(
                account_id="A003",
                industry="retail",
                employees=10,
                region="nordics",
                created_at=AS_OF + pd.Timedelta(days=1),
                annual_revenue=None,
                owner_rep_id="R2",
            ),
        ],
        taxonomy,
    )
    contacts = canonical(
        "contacts",
        [
            dict(
                contact_id="K1",
                account_id="A001",
                role="it",
                created_at=days_before(300),
                left_at=None,
            ),
            dict(
                contact_id="K2",
                account_id="A001",
                role="economic_buyer",
                created_at=days_before(300),
                left_at=days_before(10),
            ),
            dict(
                contact_id="K3",
                account_id="A001",
                role="finance",
                created_at=days_before(300),
                left_at=None,
            ),
            dict(
                contact_id="K4",
                account_id="A002",
                role="marketing",
                created_at=days_before(50),
                left_at=None,
            ),
        ],
        taxonomy,
    )
    content = taxonomy.content_frame()
    for column in TABLES["content"].columns:
        if column.kind not in ("list",):
            content[column.name] = content[column.name].astype(column_dtype(column, taxonomy))  # type: ignore[call-overload]
    whitepaper = content[content["content_type"] == "whitepaper"].iloc[0]
    wp_id = str(whitepaper["content_id"])

    tp = [
        # id, account, contact, days before, channel, event, content, value
        ("E1", "A001", "K1", 2, "website", "download", wp_id, None),
        ("E2", "A001", "K1", 20, "website", "download", wp_id, None),
        ("E3", "A001", "K2", 45, "webinar", "attend", None, 30.0),
        ("E4", "A001", None, 200, "search_ads", "click", None, None),
        ("E5", "A001", "K3", 50, "website", "view", None, 10.0),
        ("E6", "A001", "K1", 500, "website", "view", None, 5.0),  # older than a year
        ("E7", "A001", "K1", 100, "web_shop", "purchase", None, 20000.0),
        ("E8", "A001", "K1", 5, "customer_service", "support_ticket", None, None),
        # at or after as-of: must change nothing
        ("E9", "A001", "K1", 0, "website", "download", wp_id, None),
        ("E10", "A001", "K1", -3, "web_shop", "churn", None, None),
        ("E11", "A002", "K4", 7, "blog", "view", None, 3.0),
    ]
    touchpoints = canonical(
        "touchpoints",
        [
            dict(
                event_id=e,
                account_id=a,
                contact_id=k,
                ts=days_before(d),
                channel=c,
                event_type=t,
                content_id=x,
                value=v,
            )
            for e, a, k, d, c, t, x, v in tp
        ],
        taxonomy,
    )
    stages = canonical(
        "stages",
        [
            dict(account_id="A001", ts=days_before(300), phase="awareness"),
            dict(account_id="A001", ts=days_before(90), phase="onboarding"),
            dict(account_id="A001", ts=days_before(-5), phase="impact"),  # future: ignored
        ],
        taxonomy,
    )
    exposures = canonical(
        "exposures",
        [
            # answered by E2 (download of the same item 1 day later)
            dict(
                exposure_id="X1",
                account_id="A001",
                contact_id="K1",
                ts=days_before(21),
                content_id=wp_id,
                channel="email",
                propensity=0.2,
            ),
            # not answered within 7 days
            dict(
                exposure_id="X2",
                account_id="A001",
                contact_id="K1",
                ts=days_before(60),
                content_id=wp_id,
                channel="email",
                propensity=0.1,
            ),
            # answered by E9 at as-of: not known yet at as-of
            dict(
                exposure_id="X3",
                account_id="A001",
                contact_id="K1",
                ts=days_before(1),
                content_id=wp_id,
                channel="email",
                propensity=0.3,
            ),
        ],
        taxonomy,
    )
    return JourneyData(accounts, contacts, touchpoints, content, stages, exposures)


def assert_same_data(actual: JourneyData | None, expected: JourneyData) -> None:
    """Every table of ``actual`` equals ``expected``'s exactly (values and dtypes)."""
    assert actual is not None
    for name, frame in expected.tables().items():
        pd.testing.assert_frame_equal(getattr(actual, name), frame, check_exact=True)
