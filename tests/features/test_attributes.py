"""Custom attributes: declared, validated on load, and turned into point-in-time features."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.attributes import (
    AttributeDeclaration,
    FittedAttributes,
    InvalidAttributeError,
    attribute_value,
    load_attributes,
    resolve_attributes,
)
from features.load import read_data_dir
from features.mapping import ColumnMapping, load_mapping
from features.pipeline import FeatureError, build_account_features, build_features
from features.pipeline.attributes import fit_attributes
from features.pipeline.specs import feature_definitions
from features.schema import JourneyData
from features.simulate import simulate
from features.taxonomy import Taxonomy
from features.validate import validate_tables
from tests.utils.data import ATTRIBUTES, NOW, with_attributes, write_csv_dir

A1_ONLY = AttributeDeclaration.model_validate(
    {
        "accounts": {"plan": "category"},
        "touchpoints": {"lead_type": "category", "discount": "number"},
    }
)


def tiny_with_attributes(tiny_data: JourneyData) -> JourneyData:
    """tiny_data with a plan per account and, per touchpoint (E01..E12), a lead type and a
    discount on E01 (A1, 2024-01-08), E03 (A1, 2024-02-12) and E09 (A1, 2024-04-05)."""
    lead = ["inbound", "inbound", None, "partner", None, "inbound"] + [None] * 2
    lead += ["outbound", None, None, "inbound"]
    discount = [5.0, None, 2.5, None, None, None, None, None, 10.0, None, None, None]
    return replace(
        tiny_data,
        accounts=tiny_data.accounts.assign(plan=pd.Series(["pro", "basic", None], dtype="str")),
        touchpoints=tiny_data.touchpoints.assign(
            lead_type=pd.Series(lead, dtype="str"), discount=discount
        ),
    )


# --- the declaration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"contracts": {"plan": "category"}}, "attributes.contracts: unknown table"),
        ({"accounts": {"plan": "text"}}, "attributes.accounts.plan: unknown kind 'text'"),
        (
            {"accounts": {"region": "category"}},
            "attributes.accounts.region: clashes with the canonical column accounts.region",
        ),
        ({"touchpoints": {"Lead Type": "category"}}, "not a valid attribute name"),
    ],
)
def test_mapping_rejects_bad_attribute_declarations(
    attributes: dict[str, dict[str, str]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ColumnMapping.model_validate({"attributes": attributes})


def test_mapping_may_rename_an_export_column_onto_an_attribute() -> None:
    mapping = ColumnMapping.model_validate(
        {
            "columns": {"accounts": {"Plan Type": "plan"}},
            "attributes": {"accounts": {"plan": "category"}},
        }
    )
    assert mapping.attributes.of("accounts") == {"plan": "category"}
    with pytest.raises(ValueError, match="'plan' is not a column of accounts"):
        ColumnMapping.model_validate({"columns": {"accounts": {"Plan Type": "plan"}}})


def test_attributes_file_and_its_one_place_rule(tmp_path: Path) -> None:
    file = tmp_path / "attributes.yaml"
    file.write_text("attributes:\n  accounts: {plan: category, seats: number}\n")
    assert load_attributes(file).of("accounts") == {"plan": "category", "seats": "number"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("exposures: {position_x: amount}\n")
    with pytest.raises(InvalidAttributeError, match=r"bad.yaml is invalid: .*unknown kind"):
        load_attributes(bad)
    assert resolve_attributes(load_attributes(file), file) == load_attributes(file)
    other = AttributeDeclaration.model_validate({"accounts": {"plan": "number"}})
    with pytest.raises(InvalidAttributeError, match="differently; declare them in one place"):
        resolve_attributes(other, file)
    assert resolve_attributes(AttributeDeclaration(), None) == AttributeDeclaration()


def test_attribute_values_are_checked_by_kind() -> None:
    assert attribute_value("number", 3) == 3.0
    assert attribute_value("category", 12) == "12"
    assert attribute_value("category", None) is None
    for kind, value in (("number", "12"), ("number", True), ("number", float("nan"))):
        with pytest.raises(InvalidAttributeError):
            attribute_value(kind, value)
    with pytest.raises(InvalidAttributeError, match="not a category"):
        attribute_value("category", ["a"])


# --- loading --------------------------------------------------------------------------------


def test_validation_keeps_declared_columns_and_reports_bad_ones(
    tiny_data: JourneyData, taxonomy: Taxonomy
) -> None:
    raw = tiny_with_attributes(tiny_data).tables()
    raw["touchpoints"] = raw["touchpoints"].astype({"discount": "str"})
    raw["touchpoints"].loc[3, "discount"] = "ten"
    data, report = validate_tables(raw, taxonomy, now=NOW, attributes=A1_ONLY)
    assert data is None
    [problem] = report.problems
    assert (problem.table, problem.column, problem.rows, problem.sample) == (
        "touchpoints",
        "discount",
        [4],
        ["ten"],
    )
    raw["touchpoints"].loc[3, "discount"] = None
    declared = AttributeDeclaration.model_validate(
        {**A1_ONLY.tables, "exposures": {"placement": "category"}}
    )
    data, report = validate_tables(raw, taxonomy, now=NOW, attributes=declared)
    assert data is None
    assert [p.format() for p in report.problems] == [
        "exposures.placement: missing declared attribute column; expected a column "
        "'placement' (declared in attributes.exposures as category)"
    ]
    data, report = validate_tables(raw, taxonomy, now=NOW, attributes=A1_ONLY)
    assert data is not None, report.format()
    assert data.accounts["plan"].tolist()[:2] == ["pro", "basic"]
    assert data.accounts["plan"].isna()[2]
    assert data.touchpoints["discount"].dtype == np.float64
    assert data.touchpoints["discount"].sum() == 17.5
    assert not any("ignored" in note for note in report.notes)


def test_a_mapping_renames_an_export_column_onto_an_attribute(
    tiny_data: JourneyData, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    data = tiny_with_attributes(tiny_data)
    export = replace(data, accounts=data.accounts.rename(columns={"plan": "Plan Type"}))
    write_csv_dir(export, tmp_path / "export")
    (tmp_path / "map.yaml").write_text(
        "columns:\n  accounts: {Plan Type: plan}\n"
        "attributes:\n  accounts: {plan: category}\n  touchpoints: {discount: number}\n"
    )
    mapping = load_mapping(tmp_path / "map.yaml")
    loaded = read_data_dir(tmp_path / "export", taxonomy, mapping, now=NOW)
    assert loaded.accounts["plan"].tolist()[:2] == ["pro", "basic"]
    assert loaded.touchpoints["discount"].sum() == 17.5
    assert "lead_type" not in loaded.touchpoints  # not declared: dropped


def test_exposure_position_must_be_a_slot_number(
    tiny_data: JourneyData, taxonomy: Taxonomy
) -> None:
    raw = tiny_data.tables()
    raw["exposures"] = raw["exposures"].assign(position=[1, None, 2.5, -1])
    _, report = validate_tables(raw, taxonomy, now=NOW)
    [problem] = report.problems
    assert (problem.column, problem.rows) == ("position", [3, 4])


# --- features -------------------------------------------------------------------------------


def test_attribute_features_are_point_in_time(tiny_data: JourneyData, taxonomy: Taxonomy) -> None:
    data = tiny_with_attributes(tiny_data)
    fitted = fit_attributes(data, A1_ONLY)
    assert fitted.levels_of("touchpoints", "lead_type") == ("inbound", "outbound", "partner")
    as_of = pd.Timestamp("2024-04-01", tz="UTC")  # a Monday; E09 (A1, outbound) is after
    row = build_features(data, [as_of], taxonomy, attributes=fitted).set_index("account_id")
    a1 = row.loc["A1"]
    assert a1["account_plan"] == "pro"
    assert a1["touchpoint_lead_type_last"] == "inbound"  # E02 (Jan 20); E09 is not yet
    assert a1["n_touchpoint_lead_type_inbound_90d"] == 2  # E01 (Jan 8), E02
    assert a1["n_touchpoint_lead_type_outbound_90d"] == 0
    assert a1["touchpoint_discount_sum_30d"] == 0.0
    assert a1["touchpoint_discount_sum_90d"] == 7.5  # E01 5.0 + E03 2.5
    assert pd.isna(row.loc["A3", "account_plan"])
    assert row.loc["A2", "touchpoint_lead_type_last"] == "partner"
    assert (a1["as_of_month"], a1["as_of_weekday"]) == (4, 0)
    later = build_features(
        data, [pd.Timestamp("2024-04-06", tz="UTC")], taxonomy, attributes=fitted
    )
    assert later.set_index("account_id").loc["A1", "touchpoint_lead_type_last"] == "outbound"


def test_levels_fixed_at_training_make_unseen_values_missing(
    tiny_data: JourneyData, taxonomy: Taxonomy
) -> None:
    data = tiny_with_attributes(tiny_data)
    fitted = fit_attributes(data, A1_ONLY)
    changed = replace(
        data,
        accounts=data.accounts.assign(plan=pd.Series(["platinum", "basic", "pro"], dtype="str")),
    )
    frame = build_features(changed, [NOW], taxonomy, attributes=fitted)
    assert list(frame["account_plan"].cat.categories) == ["basic", "pro"]
    assert frame["account_plan"].isna().tolist() == [True, False, False]


def test_levels_are_bounded_and_ranked_by_frequency(taxonomy: Taxonomy) -> None:
    data = simulate(30, seed=1, months=3, taxonomy=taxonomy).data
    n = len(data.touchpoints)
    values = pd.Series([f"v{i % 45:02d}" if i % 3 else "common" for i in range(n)], dtype="str")
    declared = AttributeDeclaration.model_validate({"touchpoints": {"source": "category"}})
    fitted = fit_attributes(
        replace(data, touchpoints=data.touchpoints.assign(source=values)), declared
    )
    levels = fitted.levels_of("touchpoints", "source")
    assert len(levels) == 30 and levels[0] == "common"
    counted = [s for s in feature_definitions(taxonomy, fitted) if s.startswith("n_touchpoint_")]
    assert len(counted) == 10


def test_attribute_features_have_definitions_and_reject_clashes(taxonomy: Taxonomy) -> None:
    fitted = FittedAttributes(ATTRIBUTES, {"exposures.placement": ("banner", "email slot")})
    definitions = feature_definitions(taxonomy, fitted)
    assert definitions["n_exposure_placement_email_slot_90d"] == (
        "content shown or sent with placement 'email slot' in the last 90 days"
    )
    assert definitions["touchpoint_discount_sum_30d"] == (
        "sum of discount over touchpoints in the last 30 days"
    )
    clash = AttributeDeclaration.model_validate({"accounts": {"age_days": "number"}})
    with pytest.raises(FeatureError, match=r"\['account_age_days'\] that already exist"):
        feature_definitions(taxonomy, FittedAttributes(clash))


def test_online_row_equals_batch_row_with_attributes(taxonomy: Taxonomy) -> None:
    data = with_attributes(simulate(60, seed=5, months=8, taxonomy=taxonomy).data)
    fitted = fit_attributes(data, ATTRIBUTES)
    as_of = data.touchpoints["ts"].max().normalize()
    batch = build_features(data, [as_of], taxonomy, attributes=fitted).set_index("account_id")
    account = str(batch.index[batch["n_exposure_placement_banner_90d"].to_numpy().argmax()])
    online = build_account_features(data, account, as_of, taxonomy, attributes=fitted)
    pd.testing.assert_series_equal(
        online.drop(["account_id"]), batch.loc[account], check_names=False
    )
