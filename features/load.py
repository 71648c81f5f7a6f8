"""Reading and writing data directories of the six input tables (CSV or Parquet)."""

from __future__ import annotations

from pathlib import Path

from features.schema import JourneyData


def write_data_dir(data: JourneyData, out_dir: Path | str) -> Path:
    """Write each table as ``OUT_DIR/<table>.parquet``; returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in data.tables().items():
        frame.to_parquet(out / f"{name}.parquet", index=False)
    return out
