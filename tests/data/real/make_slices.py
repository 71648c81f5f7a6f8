"""Cut the small slices of the real data sets that tests/examples runs the examples on.

Usage: python tests/data/real/make_slices.py SOURCE_DIR [OUT_DIR]

SOURCE_DIR holds the published files (shared/data/real/); each slice keeps its file's
name, columns, types and row order, so an example's mapping reads it as it reads the whole
file. OUT_DIR defaults to this script's directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

# Online Retail: whole customers, chosen for cancellations, invoices in the overlap of the
# two files (2010-12-01 .. 2010-12-09) and customers in both years; plus lines without a
# customer, which the example drops.
RETAIL_YEAR1_CUSTOMERS = (15100, 13807, 14237, 17420)
RETAIL_YEAR2_CUSTOMERS = (15100, 13807, 16325, 12852, 17190)
LINES_WITHOUT_CUSTOMER = 20
# Hillstrom: the first rows (visits and conversions among them).
HILLSTROM_ROWS = 2000
# Bank Marketing: every n-th row, so the slice still runs from May 2008 to Nov 2010 in date
# order (the example derives the year from the order).
BANK_EVERY = 137


def _retail(frame: pd.DataFrame, customers: tuple[int, ...]) -> pd.DataFrame:
    chosen = frame["Customer ID"].isin(customers)
    anonymous = frame.index[frame["Customer ID"].isna()][:LINES_WITHOUT_CUSTOMER]
    return frame[chosen | frame.index.isin(anonymous)]


def make_slices(source: Path, out: Path) -> dict[str, int]:
    """Write the slices into ``out``; returns each file's rows."""
    slices = {
        "online_retail_ii_2009_2010.parquet": _retail(
            pd.read_parquet(source / "online_retail_ii_2009_2010.parquet"),
            RETAIL_YEAR1_CUSTOMERS,
        ),
        "online_retail_2010_2011.parquet": _retail(
            pd.read_parquet(source / "online_retail_2010_2011.parquet"), RETAIL_YEAR2_CUSTOMERS
        ),
        "hillstrom_email_2008.parquet": pd.read_parquet(
            source / "hillstrom_email_2008.parquet"
        ).head(HILLSTROM_ROWS),
        "bank_marketing_additional_full.parquet": pd.read_parquet(
            source / "bank_marketing_additional_full.parquet"
        ).iloc[::BANK_EVERY],
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in slices.items():
        frame.to_parquet(out / name, index=False, compression="zstd")
    return {name: len(frame) for name, frame in slices.items()}


if __name__ == "__main__":
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parent
    for name, rows in make_slices(Path(sys.argv[1]), target).items():
        print(f"{name}: {rows} rows")
