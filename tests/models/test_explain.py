"""Reason codes: exact sentences per feature family, and ranking / sign on a tiny model."""

from __future__ import annotations

import math

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.pipeline import feature_definitions
from features.taxonomy import Taxonomy, load_taxonomy
from models import next_content as nc
from models.explain import (
    ExplainError,
    contributions_for,
    describe,
    describe_changes,
    reason_codes,
    taxonomy_labels,
)
from models.next_content import CANDIDATE_DEFINITIONS
from tests.utils.reasons import reason_problems


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="module")
def definitions(taxonomy: Taxonomy) -> dict[str, str]:
    return {**feature_definitions(taxonomy), **CANDIDATE_DEFINITIONS}


@pytest.fixture(scope="module")
def labels(taxonomy: Taxonomy) -> dict[str, str]:
    return taxonomy_labels(taxonomy)


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        # windowed counts per vocabulary
        ("n_content_type_whitepaper_30d", 3, "3 Whitepaper touchpoints in the last 30 days"),
        ("n_content_type_whitepaper_30d", 1, "1 Whitepaper touchpoint in the last 30 days"),
        ("n_content_type_whitepaper_30d", 0, "no Whitepaper touchpoints in the last 30 days"),
        ("n_channel_webinar_90d", 2, "2 Webinar touchpoints in the last 90 days"),
        ("n_event_download_30d", 3, "3 downloads in the last 30 days"),
        ("n_event_register_7d", 1, "1 registration in the last 7 days"),
        ("n_event_support_ticket_90d", 2, "2 support tickets in the last 90 days"),
        ("n_role_it_90d", 0, "no IT contact engaged in the last 90 days"),
        ("n_role_it_90d", 4, "4 touchpoints from IT contacts in the last 90 days"),
        (
            "n_content_phase_selection_30d",
            5,
            "5 touchpoints with Selection content in the last 30 days",
        ),
        ("n_touchpoints_7d", 12, "12 touchpoints in the last 7 days"),
        ("n_topic_security_ever", 4, "4 touchpoints on Security content ever"),
        # recency
        ("days_since_event_purchase", 40.0, "40 days since the last purchase"),
        ("days_since_event_purchase", 40.7, "40 days since the last purchase"),
        ("days_since_event_purchase", 1.0, "1 day since the last purchase"),
        ("days_since_event_purchase", 0.2, "less than 1 day since the last purchase"),
        ("days_since_event_purchase", math.nan, "no purchase so far"),
        ("days_since_event_share", math.nan, "no share of our content so far"),
        ("n_event_share_30d", 3, "3 shares of our content in the last 30 days"),
        ("days_since_channel_webinar", 3.0, "3 days since the last Webinar touchpoint"),
        (
            "days_since_role_economic_buyer",
            math.nan,
            "no Economic decision maker contact engaged so far",
        ),
        ("days_since_last_touch", 12.0, "12 days since the account's last touchpoint"),
        ("days_in_crm_phase", 30.0, "30 days since the CRM last recorded a phase"),
        # shares, trends, buying center
        (
            "share_roles_engaged_90d",
            0.5,
            "half of the buying center's roles engaged in the last 90 days",
        ),
        (
            "share_roles_engaged_90d",
            0.0,
            "none of the buying center's roles engaged in the last 90 days",
        ),
        (
            "share_roles_engaged_90d",
            0.8,
            "80 % of the buying center's roles engaged in the last 90 days",
        ),
        (
            "response_rate_90d",
            math.nan,
            "share of content shown in the last 90 days that got a response: none shown",
        ),
        (
            "trend_touchpoints_30d",
            5.0,
            "5 more touchpoints in the last 30 days than in the 30 days before",
        ),
        (
            "trend_support_tickets_30d",
            -3.0,
            "3 fewer support tickets in the last 30 days than in the 30 days before",
        ),
        ("n_contacts", 5, "5 contacts in the buying center"),
        ("n_contacts_left_365d", 1, "1 contact who left in the last 365 days"),
        ("n_purchases", 0, "no purchases ever"),
        ("is_customer", 1, "the account has purchased and not churned since its last purchase"),
        (
            "dwell_minutes_90d",
            42.5,
            "42.5 minutes spent viewing and attending content in the last 90 days",
        ),
        # categories and firmographics
        ("crm_phase", "selection", "the CRM records the Selection phase"),
        ("industry", "financial_services", "a company in Financial services"),
        ("contact_role", "it", "for the IT contact"),
        ("content_type", "whitepaper", "the item is a Whitepaper"),
        ("content_item", "C040", "the item itself: C040"),
        ("region", "dach", "an account in DACH"),
        ("employees", 250.0, "250 employees"),
        ("log_employees", math.log10(250), "about 250 employees"),
        ("account_age_days", 700.0, "700 days since the account was created"),
        # fallback: "<definition>: <value>"
        ("annual_revenue", 12_300_000.0, "annual revenue in EUR: 12.3 million"),
        ("revenue_365d", 120_000.0, "purchase and renewal amounts in the last 365 days: 120,000"),
        ("content_value", 2.0, "business value of the item: 2"),
        # never a raw zero or a bare feature name
        ("n_exposures_90d", 0, "no items shown or sent to the account in the last 90 days"),
        ("n_exposures_90d", 3, "3 items shown or sent to the account in the last 90 days"),
        ("revenue_365d", 0.0, "no purchase and renewal amounts in the last 365 days"),
        ("employees", 0.0, "no employees"),
        ("as_of_month", 3, "in March"),
        ("as_of_weekday", 0, "on a Monday"),
        ("decision_weekday", 6, "on a Sunday"),
        ("position", 1.0, "shown first"),
        ("topic_rank_ever", 0, "the item's topic leads the account's topics by touchpoints"),
        (
            "topic_rank_ever",
            2,
            "the item's topic comes 3rd among the account's topics by touchpoints",
        ),
        ("days_since_type", math.nan, "no touchpoint with this content type so far"),
        (
            "response_rate_90d",
            0.001,
            "less than 1 % of content shown in the last 90 days got a response",
        ),
    ],
)
def test_sentence_per_family(
    name: str, value: object, text: str, definitions: dict[str, str], labels: dict[str, str]
) -> None:
    assert describe(name, value, definitions.get(name, ""), labels=labels) == text


def test_flags_shares_and_counts_of_the_candidate_features_read_as_sentences() -> None:
    defs = {**nc.CANDIDATE_DEFINITIONS}
    assert describe("fits_role", 1, defs["fits_role"]) == "the item fits the contact's role"
    assert describe("fits_role", 0, defs["fits_role"]) == "the item does not fit the contact's role"
    assert describe("topic_share_ever", 0.25, defs["topic_share_ever"]) == (
        "a quarter of all the account's content touchpoints were on the item's topic"
    )
    assert describe("topic_touchpoints_ever", 1, defs["topic_touchpoints_ever"]) == (
        "1 content touchpoint on the item's topic so far"
    )
    assert describe("type_touchpoints_90d", 0, defs["type_touchpoints_90d"]) == (
        "no touchpoints with this content type in the last 90 days"
    )
    assert describe("type_touchpoints_90d", 4, defs["type_touchpoints_90d"]) == (
        "4 touchpoints with this content type in the last 90 days"
    )
    # a flag without a negation in its definition still reads
    assert describe("x", 0, "1 if the sky is blue") == "not the case that the sky is blue"


def test_a_share_of_a_whole_that_did_something(definitions: dict[str, str]) -> None:
    assert describe("response_rate_90d", 0.8, definitions["response_rate_90d"]) == (
        "80 % of content shown in the last 90 days got a response"
    )
    assert describe("is_customer", 0, definitions["is_customer"]) == (
        "the account is not a customer: it never purchased, or churned since"
    )


def test_candidate_reasons_name_the_items_topic() -> None:
    names = ["topic_touchpoints_ever", "fits_role"]
    values = {
        "topic_touchpoints_ever": 27,
        "fits_role": 1,
        "content_topic": "security",
        "contact_role": "it",
    }
    reasons = reason_codes(
        np.array([0.5, 0.2, 0.0]),
        names,
        values,
        definitions=nc.CANDIDATE_DEFINITIONS,
        labels={"security": "Security", "it": "IT"},
    )
    assert [r.text for r in reasons] == [
        "27 content touchpoints on Security so far",
        "the item fits the IT role",
    ]


def test_labels_come_from_the_definition_without_a_taxonomy(definitions: dict[str, str]) -> None:
    name = "n_content_type_case_study_30d"
    assert describe(name, 2, definitions[name]) == "2 Case study touchpoints in the last 30 days"
    # a feature with neither definition nor label still reads as words
    assert describe("n_topic_security_365d", 1, "") == (
        "1 touchpoint on Security content in the last 365 days"
    )


def test_reason_codes_rank_by_signed_contribution_and_skip_the_other_sign() -> None:
    names = ["n_event_download_30d", "n_role_it_90d", "days_since_event_purchase", "n_contacts"]
    contributions = np.array([0.2, -0.9, 0.7, 0.0, -1.5])  # last: bias, never a reason
    values = pd.Series(
        {
            "n_event_download_30d": 3,
            "n_role_it_90d": 0,
            "days_since_event_purchase": 40.0,
            "n_contacts": 2,
        }
    )
    defs = {"n_contacts": "contacts in the buying center"}
    up = reason_codes(contributions, names, values, definitions=defs)
    assert [r.feature for r in up] == ["days_since_event_purchase", "n_event_download_30d"]
    assert [r.text for r in up] == [
        "40 days since the last purchase",
        "3 downloads in the last 30 days",
    ]
    assert up[0].contribution == pytest.approx(0.7)
    assert up[0].value == 40.0
    down = reason_codes(contributions, names, values, definitions=defs, direction=-1)
    assert [r.text for r in down] == ["no IT contact engaged in the last 90 days"]
    assert len(reason_codes(contributions, names, values, definitions=defs, top=1)) == 1


def test_reason_codes_reject_mismatched_contributions() -> None:
    with pytest.raises(ExplainError, match="3 values for 3 features"):
        reason_codes(np.zeros(3), ["a", "b", "c"], {}, definitions={})
    with pytest.raises(ExplainError, match="direction"):
        reason_codes(np.zeros(2), ["a"], {}, definitions={}, direction=0)


def _tiny_data(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 600
    x = pd.DataFrame(
        {
            "n_event_download_30d": rng.integers(0, 6, n).astype(float),
            "days_since_event_purchase": rng.uniform(0, 300, n),
            "noise": rng.normal(size=n),
        }
    )
    # downloads raise the label, long time since purchase lowers it
    logit = 1.2 * x["n_event_download_30d"] - 0.02 * x["days_since_event_purchase"]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    return x, y


def test_contributions_sum_to_the_raw_score_and_explain_the_signal() -> None:
    x, y = _tiny_data()
    model = lgb.LGBMClassifier(n_estimators=30, num_leaves=4, verbose=-1, random_state=1)
    model.fit(x, y)
    row = pd.DataFrame(
        {
            "n_event_download_30d": [5.0],
            "days_since_event_purchase": [280.0],
            "noise": [0.0],
            "unused": [1.0],
        }
    )
    contrib = contributions_for(model, row)
    assert contrib.shape == (1, 4)
    raw = model.predict_proba(row[x.columns], raw_score=True)
    assert contrib[0].sum() == pytest.approx(float(np.ravel(raw)[0]), abs=1e-9)
    defs = feature_definitions(load_taxonomy())
    up = reason_codes(contrib[0], list(x.columns), row.iloc[0], definitions=defs, top=1)
    down = reason_codes(
        contrib[0], list(x.columns), row.iloc[0], definitions=defs, top=1, direction=-1
    )
    assert [r.text for r in up] == ["5 downloads in the last 30 days"]
    assert [r.text for r in down] == ["280 days since the last purchase"]
    # a raw Booster gives the same numbers
    np.testing.assert_allclose(contributions_for(model.booster_, row), contrib)


def test_multiclass_contributions_are_sliced_per_class() -> None:
    x, _ = _tiny_data(1)
    y = np.digitize(x["n_event_download_30d"].to_numpy(), [2, 4])  # 3 classes
    model = lgb.LGBMClassifier(n_estimators=10, num_leaves=4, verbose=-1, random_state=1)
    model.fit(x, y)
    row = x.iloc[:2]
    raw = np.asarray(model.predict_proba(row, raw_score=True))
    for k in range(3):
        contrib = contributions_for(model, row, class_index=k)
        assert contrib.shape == (2, 4)
        np.testing.assert_allclose(contrib.sum(axis=1), raw[:, k], atol=1e-9)
    with pytest.raises(ExplainError, match="pass class_index"):
        contributions_for(model, row)
    with pytest.raises(ExplainError, match="outside 0..2"):
        contributions_for(model, row, class_index=3)


def test_no_feature_of_the_catalogue_reads_as_a_bare_name_or_a_raw_zero(
    definitions: dict[str, str], labels: dict[str, str], taxonomy: Taxonomy
) -> None:
    """Every feature the models may explain, at values a reason may hold (zero, one, a few,
    a share, missing, and for categories each level), phrased for a rep."""
    topics = {
        f"n_topic_{t}_{w}": f"content touchpoints on '{t}' content, {w}"
        for t in taxonomy.topic_names
        for w in ("365d", "ever")
    }
    catalogue = {**definitions, **topics}
    levels: dict[str, list[str]] = {
        "crm_phase": list(taxonomy.phases),
        "industry": list(taxonomy.industries),
        "region": list(taxonomy.regions),
        "contact_role": taxonomy.role_names,
        "content_type": taxonomy.content_type_names,
        "content_topic": taxonomy.topic_names,
        "content_item": ["C001", "C040"],
    }
    bad = []
    for name, definition in catalogue.items():
        values: list[object] = levels.get(name, [0, 0.0, 1, 2, 3.5, 0.25, 0.001, math.nan])
        for value in values:
            text = describe(name, value, definition, labels=labels)
            problems = reason_problems(text, catalogue)
            if problems:
                bad.append(f"{name}={value!r}: {text!r} ({', '.join(problems)})")
    assert not bad, "\n".join(bad[:40])


def test_what_changed_reads_as_a_phrase_most_frequent_first() -> None:
    assert describe_changes({}) == "nothing new"
    assert describe_changes({"view": 0}) == "nothing new"
    assert describe_changes({"register": 1}) == "1 registration"
    assert describe_changes({"attend": 1, "download": 2, "view": 0}) == (
        "2 downloads and 1 attendance"
    )
    assert describe_changes({"reply": 1, "click": 3, "attend": 1}) == (
        "3 clicks, 1 attendance and 1 reply"
    )
