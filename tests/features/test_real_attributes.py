"""Custom attributes on real data: a committed slice of Online Retail II (320 invoice lines
of 23 customers, tests/data/online_retail) read through its SQL mapping."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.load import read_data_dir
from features.mapping import load_mapping
from features.pipeline import build_account_features, build_features
from features.pipeline.attributes import fit_attributes
from features.taxonomy import Taxonomy

DATA = Path(__file__).parents[1] / "data" / "online_retail"


def test_online_retail_slice_gives_attribute_features(taxonomy: Taxonomy) -> None:
    mapping = load_mapping(DATA / "mapping.yaml")
    data = read_data_dir(DATA, taxonomy, mapping)
    lines = pd.read_parquet(DATA / "invoice_lines.parquet")
    assert len(data.touchpoints) == len(lines) == 320
    fitted = fit_attributes(data, mapping.attributes)
    # levels: each customer's country (of its last line), most customers first, ties by name
    last = lines.sort_values("InvoiceDate").groupby("Customer ID")["Country"].last()
    ranked = sorted(last.value_counts().items(), key=lambda item: (-item[1], item[0]))
    assert fitted.levels_of("accounts", "country") == tuple(c for c, _ in ranked)
    as_of = pd.Timestamp("2010-12-09", tz="UTC")
    features = build_features(data, [as_of], taxonomy, attributes=fitted)
    row = features.set_index("account_id").loc["12346"]
    mine = lines[lines["Customer ID"] == 12346]
    recent = mine["InvoiceDate"].dt.tz_localize("Europe/London").dt.tz_convert("UTC") > (
        as_of - pd.Timedelta(days=365)
    )
    assert row["touchpoint_quantity_sum_365d"] == mine.loc[recent, "Quantity"].sum() > 0
    assert row["account_country"] == mine.sort_values("InvoiceDate")["Country"].iloc[-1]
    online = build_account_features(data, "12346", as_of, taxonomy, attributes=fitted)
    pd.testing.assert_series_equal(online.drop("account_id"), row, check_names=False)
