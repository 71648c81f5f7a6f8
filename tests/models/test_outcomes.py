"""The outcomes file: the shipped default is today's churn model; every mistake is one
message naming the file, the key and what was expected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from features.taxonomy import Taxonomy, load_taxonomy
from models.outcomes import (
    Outcome,
    OutcomeConfigError,
    load_outcomes,
    select_outcomes,
)


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "outcomes.yaml"
    path.write_text(text)
    return path


def test_default_declares_todays_churn_model(taxonomy: Taxonomy) -> None:
    (churn,) = load_outcomes(taxonomy=taxonomy)
    assert churn.name == "churn" and churn.registered_name == "nba-churn"
    assert churn.positive.kind == "events" and churn.positive.events == ("churn",)
    assert churn.population.kind == "customers"
    assert churn.horizon_days == 90
    assert churn.score_at.grid == "monthly" and not churn.score_at.anchored
    assert churn.peer == "rfm_logistic"
    assert json.loads(churn.to_json())["positive"]["events"] == ["churn"]


def test_every_kind_parses_from_its_short_and_long_form(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
outcomes:
  - {name: conversion, positive: {stage: purchase}, population: open_leads,
     horizon_days: 60, score_at: at_entry}
  - {name: dropout, positive: {lapse: [usage]}, population: {kind: active, active_days: 30},
     horizon_days: 30, score_at: {days_after_start: 14}}
  - {name: buy_again, positive: {events: [purchase, renewal]},
     population: {kind: customers, exclude_after: [churn]}, horizon_days: 90,
     score_at: weekly, peer: logistic}
  - {name: respond, positive: {events: [click]}, population: all, horizon_days: 7,
     score_at: each_exposure}
  - {name: after_call, positive: {events: [purchase]}, population: all, horizon_days: 1,
     score_at: {each_event: [meeting]}}
""",
    )
    conversion, dropout, buy_again, respond, after_call = load_outcomes(path)
    assert conversion.positive.kind == "stage" and conversion.score_at.at_entry
    assert dropout.positive.kind == "lapse" and dropout.population.active_days == 30
    assert dropout.score_at.days_after_start == 14 and dropout.score_at.anchored
    assert buy_again.population.exclude_after == ("churn",) and buy_again.score_at.grid == "weekly"
    assert buy_again.peer == "logistic"
    assert respond.score_at.each_exposure
    assert after_call.score_at.each_event == ("meeting",)
    assert [o.name for o in select_outcomes([conversion, dropout], ["dropout"])] == ["dropout"]
    with pytest.raises(OutcomeConfigError, match="outcome 'nope' is not declared"):
        select_outcomes([conversion], ["nope"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("outcomes: [", "is not valid YAML"),
        ("- a\n- b\n", "must hold a mapping with the key 'outcomes'"),
        ("outcomes: []\n", "key outcomes: Tuple should have at least 1 item"),
        (
            "outcomes:\n  - {name: x, positive: {events: [churn], stage: purchase}, "
            "population: all, horizon_days: 9}\n",
            r"key outcomes.0.positive \(x\): expected exactly one of events, stage or lapse",
        ),
        (
            "outcomes:\n  - {name: x, positive: {events: [churn]}, population: leads, "
            "horizon_days: 9}\n",
            r"key outcomes.0.population.kind \(x\): Input should be 'customers', 'open_leads'",
        ),
        (
            "outcomes:\n  - {name: x, positive: {events: [churn]}, population: active, "
            "horizon_days: 9}\n",
            "active_days is required with kind 'active'",
        ),
        (
            "outcomes:\n  - {name: x, positive: {events: [churn]}, population: all}\n",
            r"key outcomes.0.horizon_days \(x\): required",
        ),
        (
            "outcomes:\n  - {name: x, positive: {events: [churn]}, population: all, "
            "horizon_days: 0}\n",
            "horizon_days \\(x\\): Input should be greater than or equal to 1",
        ),
        (
            "outcomes:\n  - {name: x, positive: {events: [churn]}, population: all, "
            "horizon_days: 9, score_at: yearly}\n",
            "expected one of monthly, weekly, daily, at_entry, each_exposure",
        ),
        (
            "outcomes:\n  - {name: x, positive: {events: [churn]}, population: all, "
            "horizon_days: 9, colour: red}\n",
            r"key outcomes.0.colour \(x\): unknown key",
        ),
        (
            "outcomes:\n  - {name: x, positive: {events: [churn]}, population: all, "
            "horizon_days: 9}\n  - {name: x, positive: {events: [churn]}, population: all, "
            "horizon_days: 9}\n",
            r"outcome names must be distinct, \['x'\]",
        ),
    ],
)
def test_mistakes_name_file_key_and_expectation(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(OutcomeConfigError, match=message) as caught:
        load_outcomes(path)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_event_types_and_stages_are_checked_against_the_taxonomy(
    tmp_path: Path, taxonomy: Taxonomy
) -> None:
    unknown_event = write(
        tmp_path,
        "outcomes:\n  - {name: x, positive: {events: [won]}, population: all, horizon_days: 9}\n",
    )
    with pytest.raises(OutcomeConfigError, match=r"key outcomes.0 \(x\): event types \['won'\]"):
        load_outcomes(unknown_event, taxonomy=taxonomy)
    unknown_stage = write(
        tmp_path,
        "outcomes:\n  - {name: x, positive: {stage: won}, population: all, horizon_days: 9}\n",
    )
    with pytest.raises(OutcomeConfigError, match="positive.stage: 'won' is not a phase"):
        load_outcomes(unknown_stage, taxonomy=taxonomy)
    assert load_outcomes(unknown_stage)[0].positive.stage == "won"  # unchecked without one


def test_missing_file_is_a_message(tmp_path: Path) -> None:
    with pytest.raises(OutcomeConfigError, match="cannot read outcomes file .*nope.yaml"):
        load_outcomes(tmp_path / "nope.yaml")


def test_outcome_is_a_value() -> None:
    a = Outcome.model_validate(
        {"name": "a", "positive": {"events": ["churn"]}, "population": "all", "horizon_days": 3}
    )
    assert a.score_at.grid == "monthly" and a.event_types() == {"churn"}
