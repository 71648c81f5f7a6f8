"""The journey taxonomy: the shipped default, phase-model mappings and clear load errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from features.taxonomy import DEFAULT_TAXONOMY_PATH, Taxonomy, TaxonomyError, load_taxonomy

EIGHT = [
    "trigger",
    "awareness",
    "consideration",
    "selection",
    "purchase",
    "onboarding",
    "impact",
    "expansion",
]


def test_default_taxonomy_loads(taxonomy: Taxonomy) -> None:
    assert taxonomy.default_phase_model == "b2b_8"
    assert taxonomy.phases == EIGHT
    assert sorted(taxonomy.phase_models) == ["b2b_8", "classic_5", "decision_7"]
    assert {"search_ads", "webinar", "trade_fair", "sales_call"} <= set(taxonomy.channel_names)
    assert {c.kind for c in taxonomy.channels} == {"online", "offline"}
    assert {"view", "download", "attend", "purchase", "renewal", "churn"} <= set(
        taxonomy.event_type_names
    )
    assert taxonomy.role_names == [
        "economic_buyer",
        "it",
        "marketing",
        "finance",
        "service",
        "end_user",
    ]


def test_content_catalog_covers_every_type_and_phase(taxonomy: Taxonomy) -> None:
    content = taxonomy.content_frame()
    assert len(content) >= 80
    assert set(content["content_type"]) == set(taxonomy.content_type_names)
    assert {p for phases in content["phases"] for p in phases} == set(EIGHT)
    assert content["content_id"].is_unique


@pytest.mark.parametrize(
    ("model", "phase", "default"),
    [
        ("classic_5", "awareness", "trigger"),
        ("classic_5", "consideration", "consideration"),
        ("classic_5", "decision", "selection"),
        ("classic_5", "retention", "onboarding"),
        ("classic_5", "advocacy", "expansion"),
        ("decision_7", "out_of_market", "trigger"),
        ("decision_7", "trigger", "trigger"),
        ("decision_7", "initial_consideration", "awareness"),
        ("decision_7", "active_evaluation", "selection"),
        ("decision_7", "purchase_decision", "purchase"),
        ("decision_7", "experience", "onboarding"),
        ("decision_7", "loyalty", "expansion"),
        ("b2b_8", "impact", "impact"),
    ],
)
def test_other_phase_models_map_to_the_default(
    taxonomy: Taxonomy, model: str, phase: str, default: str
) -> None:
    assert taxonomy.to_default_phase(phase, model) == default


def test_phase_models_cover_all_eight_phases(taxonomy: Taxonomy) -> None:
    assert len(taxonomy.phase_models["classic_5"].phases) == 5
    assert len(taxonomy.phase_models["decision_7"].phases) == 7
    for model in ("classic_5", "decision_7"):
        shown = [taxonomy.from_default_phase(p, model) for p in EIGHT]
        assert set(shown) <= set(taxonomy.phase_models[model].names)
    assert [taxonomy.from_default_phase(p, "classic_5") for p in EIGHT] == [
        "awareness",
        "awareness",
        "consideration",
        "decision",
        "decision",
        "retention",
        "retention",
        "advocacy",
    ]
    # Both out_of_market and trigger cover "trigger"; the last one is shown.
    assert taxonomy.from_default_phase("trigger", "decision_7") == "trigger"


def test_unknown_phase_or_model_raises(taxonomy: Taxonomy) -> None:
    with pytest.raises(TaxonomyError, match=r"phase 'closing' is not in classic_5"):
        taxonomy.to_default_phase("closing", "classic_5")
    with pytest.raises(TaxonomyError, match=r"unknown phase model 'aida'"):
        taxonomy.to_default_phase("awareness", "aida")


def _write_broken(tmp_path: Path, change: object) -> Path:
    raw = yaml.safe_load(DEFAULT_TAXONOMY_PATH.read_text())
    change(raw)  # type: ignore[operator]
    path = tmp_path / "taxonomy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_broken_phase_mapping_names_the_entry(tmp_path: Path) -> None:
    def break_it(raw: dict) -> None:
        raw["phase_models"]["classic_5"]["phases"][2]["default_phases"] = ["negotiation"]

    path = _write_broken(tmp_path, break_it)

    with pytest.raises(TaxonomyError) as caught:
        load_taxonomy(path)

    message = str(caught.value)
    assert str(path) in message
    assert "phase_models.classic_5.decision: default_phases must be a non-empty list" in message
    assert "got ['negotiation']" in message
    # selection and purchase are no longer covered by any classic_5 phase
    assert "phase_models.classic_5: default phases ['purchase', 'selection']" in message


def test_broken_content_item_names_the_entry(tmp_path: Path) -> None:
    def break_it(raw: dict) -> None:
        raw["content"][0]["topic"] = "astrology"

    path = _write_broken(tmp_path, break_it)

    with pytest.raises(TaxonomyError, match=r"content C001: topic \['astrology'\] not in"):
        load_taxonomy(path)


def test_missing_field_names_its_location(tmp_path: Path) -> None:
    def break_it(raw: dict) -> None:
        del raw["channels"][1]["kind"]

    path = _write_broken(tmp_path, break_it)

    with pytest.raises(TaxonomyError, match=r"channels\.1\.kind: Field required"):
        load_taxonomy(path)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "taxonomy.yaml"
    path.write_text("phase_models: [unclosed")
    with pytest.raises(TaxonomyError, match=r"is not valid YAML"):
        load_taxonomy(path)
    with pytest.raises(TaxonomyError, match=r"cannot read taxonomy file"):
        load_taxonomy(tmp_path / "missing.yaml")
