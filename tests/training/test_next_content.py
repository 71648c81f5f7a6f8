"""The next-content training set, training and policy evaluation: exposures paired with the
features as of the month start before them, labels only from after, splits by time, and a
model whose top-1 policy beats random, most-popular and the logging policy on the
simulator's ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from features.pipeline import build_features
from features.schema import JourneyData
from features.simulate import Simulation, sent_response_probability, simulate
from features.taxonomy import Taxonomy, load_taxonomy
from models import next_content as nc
from tests.utils.models import Reversed
from training import policy
from training.baselines import hand_rule_scores
from training.datasets import TrainingSet, as_of_grid
from training.next_content import (
    EXPOSURE_WINDOW_DAYS,
    HORIZON_DAYS,
    build_next_content_set,
    crm_phase_at,
    label_responses,
    paired_next_content,
    score_next_content,
    train_next_content,
)
from training.policy import (
    Decisions,
    build_decisions,
    decision_sample,
    evaluate_policies,
    popular_items,
)
from training.result import ModelResult
from training.splits import check_time_split

DAY = pd.Timedelta(days=1)


@dataclass
class World:
    taxonomy: Taxonomy
    sim: Simulation
    features: pd.DataFrame
    ts: TrainingSet
    result: ModelResult


@pytest.fixture(scope="module")
def world() -> World:
    taxonomy = load_taxonomy()
    sim = simulate(1500, 11, taxonomy=taxonomy)
    features = build_features(sim.data, as_of_grid(sim.data, n_dates=12), taxonomy)
    ts = build_next_content_set(sim.data, taxonomy, features)
    result = train_next_content(ts, truth=sim.truth, taxonomy=taxonomy, content=sim.data.content)
    return World(taxonomy, sim, features, ts, result)


def test_rows_are_exposures_of_the_four_weeks_after_each_as_of(world: World) -> None:
    frame = world.ts.frame
    window = EXPOSURE_WINDOW_DAYS * DAY
    assert EXPOSURE_WINDOW_DAYS == 28  # no month is shorter: every exposure of a month, once
    assert frame["exposure_id"].is_unique
    assert ((frame["ts"] >= frame["as_of"]) & (frame["ts"] < frame["as_of"] + window)).all()
    ex = world.sim.data.exposures
    grid = pd.DatetimeIndex(world.features["as_of"].unique())
    in_window = np.zeros(len(ex), dtype=bool)
    for t in grid:
        in_window |= ((ex["ts"] >= t) & (ex["ts"] < t + window)).to_numpy()
    assert len(frame) == int(in_window.sum())  # every exposure of the windows, once
    assert set(frame["as_of"].unique()) <= set(grid)
    assert frame[nc.LABEL_COLUMN].isin([0, 1]).all()


def test_features_are_the_pipeline_row_as_of_the_grid_date(world: World) -> None:
    frame, feats = world.ts.frame, world.features
    row = frame.iloc[len(frame) // 2]
    f = feats[(feats["account_id"] == row["account_id"]) & (feats["as_of"] == row["as_of"])]
    assert len(f) == 1
    for c in ("n_touchpoints_30d", "n_exposures_90d", "days_in_crm_phase"):
        assert row[c] == pytest.approx(float(f[c].iloc[0]), rel=1e-6, nan_ok=True)
    assert str(row["crm_phase"]) == str(f["crm_phase"].iloc[0])


def test_splits_by_time_and_no_label_window_reaches_the_next_split(world: World) -> None:
    split = world.ts.split
    assert world.ts.horizon_days == HORIZON_DAYS == EXPOSURE_WINDOW_DAYS + 7
    assert split.train["as_of"].max() < split.valid["as_of"].min()
    assert split.valid["as_of"].max() < split.test["as_of"].min()
    check_time_split(split, horizon_days=HORIZON_DAYS, key_columns=("exposure_id",))
    # The latest response a training label can see: exposure ts + 7 days.
    assert (split.train["ts"] + 7 * DAY).max() <= split.valid["as_of"].min()
    assert (split.valid["ts"] + 7 * DAY).max() <= split.test["as_of"].min()
    assert len(split.test["as_of"].unique()) == 3


def test_labels_agree_with_the_simulated_responses(world: World) -> None:
    frame = world.ts.frame
    truth = world.sim.truth.exposures.set_index("exposure_id")["responded"]
    responded = truth.reindex(frame["exposure_id"]).to_numpy()
    label = frame[nc.LABEL_COLUMN].to_numpy() == 1
    assert (label[responded]).all()  # every simulated response is found
    # Organic touchpoints of the same contact and item add a few positives, no more.
    assert 0 <= label.mean() - responded.mean() < 0.01


def test_label_responses_on_hand_built_events(world: World) -> None:
    t0 = pd.Timestamp("2025-03-03 09:00", tz="UTC")
    exposures = pd.DataFrame(
        {
            "account_id": ["A", "A", "A", "B"],
            "contact_id": ["K1", "K2", "K3", None],
            "content_id": ["C001", "C001", "C001", "C002"],
            "ts": [t0, t0, t0, t0],
        }
    )
    touchpoints = pd.DataFrame(
        {
            "account_id": ["A", "A", "A", "B"],
            "contact_id": ["K1", "K2", "K3", "K9"],
            "content_id": ["C001", "C001", "C001", "C002"],
            "ts": [t0 + 3 * DAY, t0 + 8 * DAY, t0 + DAY, t0 + DAY],
            "event_type": pd.Categorical(["download", "download", "view", "click"]),
        }
    )
    # K1 within 7 days: yes; K2 after 8 days: no; K3 only viewed: no; B (no contact): any.
    assert label_responses(exposures, touchpoints, world.taxonomy).tolist() == [
        True,
        False,
        False,
        True,
    ]


def test_crm_phase_at_reads_the_last_record_at_or_before(world: World) -> None:
    t0 = pd.Timestamp("2025-01-01", tz="UTC")
    stages = pd.DataFrame(
        {
            "account_id": ["A", "A", "B"],
            "ts": [t0, t0 + 10 * DAY, t0 + 5 * DAY],
            "phase": ["awareness", "consideration", "selection"],
        }
    )
    got = crm_phase_at(
        stages,
        pd.Series(["A", "A", "A", "B"]),
        pd.Series([t0 + DAY, t0 + 10 * DAY, t0 - DAY, t0 + 5 * DAY]),
        world.taxonomy,
    )
    assert got.astype(object).tolist()[:2] == ["awareness", "consideration"]
    assert pd.isna(got.iloc[2])
    assert got.iloc[3] == "selection"


def test_the_oracle_is_above_every_policy_and_every_value_has_an_interval(world: World) -> None:
    m = world.result.metrics
    policies = ("model", "baseline_random", "baseline_popular", "baseline_hand_rule")
    for who in (*policies, "baseline_logging"):
        # the oracle (the truly best eligible item) is a true upper reference
        assert m["oracle.true_value"] >= m[f"{who}.true_value_ci_low"]
        assert m["oracle.true_value"] >= m[f"{who}.true_value"]
        low, high = m[f"{who}.true_value_ci_low"], m[f"{who}.true_value_ci_high"]
        assert low <= m[f"{who}.true_value"] <= high
    for who in policies:
        for est in ("ips_value", "snips_value", "dr_value"):
            assert m[f"{who}.{est}_ci_low"] <= m[f"{who}.{est}"] <= m[f"{who}.{est}_ci_high"]
    # the hand rule (role fit + topic share) beats random: it is a baseline worth beating
    assert m["baseline_hand_rule.true_value"] > m["baseline_random.true_value_ci_high"]
    assert 0 < m["baseline_hand_rule.share_of_oracle_gain"] < 1
    low, high = m["model.share_of_oracle_gain_ci_low"], m["model.share_of_oracle_gain_ci_high"]
    assert low <= m["model.share_of_oracle_gain"] <= high <= 1
    # the doubly robust estimate against the true value: its error's interval and coverage
    error = m["model.dr_value"] - m["model.true_value"]
    assert m["model.dr_error"] == pytest.approx(error)
    assert m["model.dr_error_ci_low"] <= error <= m["model.dr_error_ci_high"]
    covers = m["model.dr_value_ci_low"] <= m["model.true_value"] <= m["model.dr_value_ci_high"]
    assert m["model.dr_covers_truth"] == float(covers)


def test_model_beats_the_baselines_on_true_policy_value(world: World) -> None:
    m = world.result.metrics
    assert world.result.name == "next-content"
    assert world.result.primary_metric == "model.roc_auc"
    assert m["model.roc_auc"] > 0.58
    assert m["model.true_value"] > 1.2 * m["baseline_logging.true_value"]
    assert m["model.true_value"] > m["baseline_popular.true_value"]
    assert m["model.true_value"] > m["baseline_random.true_value"]
    assert m["oracle.roc_auc"] > m["model.roc_auc"] - 0.02
    assert m["model.share_of_oracle_gain"] > 0.5
    # Random and logging pick from the same eligible items and value them alike.
    assert m["baseline_random.true_value"] == pytest.approx(
        m["baseline_logging.true_value"], rel=0.1
    )
    for who in ("model", "baseline_random", "baseline_popular"):
        for est in ("ips_value", "snips_value", "dr_value"):
            assert 0 < m[f"{who}.{est}"] < 1
    assert "model.dr_relative_error" in m
    assert "| model top-1 |" in world.result.report_markdown
    assert "| hand rule (role fit + topic share) |" in world.result.report_markdown
    # The gate: the top-1 policy on the validation split against the stronger of the best
    # single item and the logging policy (DR values, one per decision).
    gate = world.result.gate
    assert gate is not None and gate.metric == "policy_value_dr"
    assert gate.baseline == "logging policy" or gate.baseline.startswith("best single action: ")
    assert 0 < gate.baseline_value < 1 and 0 < gate.model < 1


def test_score_is_the_test_roc_auc(world: World) -> None:
    score = score_next_content(world.result.estimator, world.ts)
    assert score == pytest.approx(world.result.metrics["model.roc_auc"])
    assert list(world.result.input_example.columns) == world.ts.feature_columns


def test_without_truth_only_estimates_are_reported(world: World) -> None:
    result = train_next_content(
        world.ts,
        taxonomy=world.taxonomy,
        content=world.sim.data.content,
        params={"n_estimators": 30},
    )
    assert not any(k.endswith("true_value") for k in result.metrics)
    assert "model.dr_value" in result.metrics
    assert result.params["n_estimators"] == 30


def _tiny_decisions(taxonomy: Taxonomy) -> tuple[Decisions, pd.DataFrame]:
    content = taxonomy.content_frame().iloc[:3].reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "account_id": ["A", "B"],
            "decision_crm_phase": ["awareness", "awareness"],
            "content_id": [content["content_id"][0], content["content_id"][1]],
            "contact_role": ["marketing", "it"],
            **{f"n_topic_{t}_ever": [0, 0] for t in taxonomy.topic_names},
        }
    )
    # Items 0-2 fit economic buyers and marketing; their topics: security, analytics, automation.
    frame["n_topic_security_ever"] = [3, 0]
    frame["n_topic_analytics_ever"] = [1, 0]
    frame["n_topic_automation_ever"] = [0, 2]
    d = Decisions(
        frame=frame,
        eligible=np.array([[True, True, False], [True, True, True]]),
        logged=np.array([0, 1]),
        propensity=np.array([0.5, 0.25]),
        reward=np.array([1.0, 0.0]),
        scores=np.array([[0.6, 0.2, np.nan], [0.1, 0.3, 0.2]]),
    )
    return d, content


def test_policy_estimates_on_hand_built_decisions() -> None:
    taxonomy = load_taxonomy()
    d, content = _tiny_decisions(taxonomy)
    popularity = np.zeros((len(taxonomy.phases), 3))
    popularity[taxonomy.phases.index("awareness"), 2] = 1.0  # item 2 ineligible in decision 0
    m = evaluate_policies(d, popularity, content, taxonomy)
    # Model picks item 0 then item 1 = the logged items: IPS = (1/0.5 * 1 + 1/0.25 * 0) / 2.
    assert m["model.ips_value"] == pytest.approx(1.0)
    assert m["model.snips_value"] == pytest.approx(1 / 3)  # (2 * 1 + 4 * 0) / (2 + 4)
    # DR = mean(q_pick + w (r - q_logged)) = ((0.6 + 2 * 0.4) + (0.3 + 4 * -0.3)) / 2.
    assert m["model.dr_value"] == pytest.approx(0.25)
    # Random: pi = 1/2 and 1/3; IPS = (1 * 1 + 0) / 2.
    assert m["baseline_random.ips_value"] == pytest.approx(0.5)
    # Popular picks item 2 where eligible (decision 1, not logged) and else the first
    # eligible item (decision 0, logged): IPS = (2 * 1 + 0) / 2.
    assert m["baseline_popular.ips_value"] == pytest.approx(1.0)
    assert m["model.match_rate"] == 1.0
    assert m["baseline_logging.observed_value"] == 0.5
    # The hand rule: role fit + topic share picks item 0 (marketing; security 3 of 4), then
    # item 2 (no item fits IT; automation is all its touches): IPS = (2 * 1 + 0) / 2.
    assert m["baseline_hand_rule.ips_value"] == pytest.approx(1.0)
    scores = hand_rule_scores(d.frame, content, taxonomy)
    np.testing.assert_allclose(scores, [[1.75, 1.25, 1.0], [0.0, 0.0, 1.0]], atol=1e-6)


def test_popular_items_counts_responses_per_phase() -> None:
    taxonomy = load_taxonomy()
    content = taxonomy.content_frame().iloc[:3].reset_index(drop=True)
    ids = content["content_id"].tolist()
    train = pd.DataFrame(
        {
            "decision_crm_phase": ["trigger", "trigger", "trigger", "awareness"],
            "content_id": [ids[1], ids[1], ids[0], ids[2]],
            "responded": [1, 1, 0, 1],
        }
    )
    pop = popular_items(train, "responded", content, taxonomy)
    assert pop[0].argmax() == 1
    assert pop[1].argmax() == 2
    assert pop[2].argmax() == 1  # no responses in consideration: overall most popular


def test_empty_exposures_are_rejected(world: World) -> None:
    from training.datasets import TrainingSetError

    d = world.sim.data
    empty = JourneyData(
        accounts=d.accounts,
        contacts=d.contacts,
        touchpoints=d.touchpoints,
        content=d.content,
        stages=d.stages,
        exposures=d.exposures.iloc[:0],
    )
    with pytest.raises(TrainingSetError, match="exposures"):
        build_next_content_set(empty, world.taxonomy, world.features)


def test_off_policy_intervals_resample_accounts_not_decisions() -> None:
    taxonomy = load_taxonomy()
    d, content = _tiny_decisions(taxonomy)
    popularity = np.zeros((len(taxonomy.phases), 3))
    apart = evaluate_policies(d, popularity, content, taxonomy)
    # Two accounts: a resample can draw one twice, so the IPS interval has a width.
    assert apart["model.ips_value_ci_low"] < apart["model.ips_value_ci_high"]
    # One account holding both decisions: every resample draws it whole, the same value.
    d.frame["account_id"] = ["A", "A"]
    together = evaluate_policies(d, popularity, content, taxonomy)
    for est in ("ips_value", "snips_value", "dr_value"):
        assert together[f"model.{est}_ci_low"] == pytest.approx(together[f"model.{est}"])
        assert together[f"model.{est}_ci_high"] == pytest.approx(together[f"model.{est}"])


def test_true_values_in_chunks_equal_all_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = world.ts.split.test.head(300)
    content = world.sim.data.content.reset_index(drop=True)
    d = build_decisions(
        world.result.estimator, rows, world.ts.feature_columns, "responded", content, world.taxonomy
    )
    whole = policy.true_values(d, content, world.sim.truth)
    monkeypatch.setattr(policy, "TRUTH_CHUNK_PAIRS", 97)  # not a divisor of the pairs
    chunked = policy.true_values(d, content, world.sim.truth)
    assert int(d.eligible.sum()) > 97 * 3
    np.testing.assert_array_equal(np.isnan(chunked), ~d.eligible)
    np.testing.assert_allclose(chunked, whole, equal_nan=True)


def test_true_values_are_each_pairs_sent_response_probability(world: World) -> None:
    # The decisions' state is looked up once and shared by their items: each value must be
    # what the simulator's truth gives for that (account, contact, item, time) on its own.
    rows = world.ts.split.test.head(200)
    content = world.sim.data.content.reset_index(drop=True)
    d = build_decisions(
        world.result.estimator, rows, world.ts.feature_columns, "responded", content, world.taxonomy
    )
    matrix = policy.true_values(d, content, world.sim.truth)
    di, ii = np.nonzero(d.eligible)
    requests = pd.DataFrame(
        {
            "account_id": d.frame["account_id"].astype(str).to_numpy()[di],
            "contact_id": d.frame["contact_id"].astype(str).to_numpy()[di],
            "content_id": content["content_id"].astype(str).to_numpy()[ii],
            "ts": d.frame["ts"].to_numpy()[di],
        }
    )
    assert len(np.unique(ii)) > 5 and len(np.unique(di)) > 50
    np.testing.assert_allclose(
        matrix[di, ii], sent_response_probability(world.sim.truth, requests), rtol=1e-12
    )


def test_decisions_score_each_item_as_their_own_row_would(world: World) -> None:
    # Decisions of one account, as-of date and contact role are scored once per group:
    # every score must equal that of scoring each decision's own row.
    rows = world.ts.split.test.head(400)
    content = world.sim.data.content.reset_index(drop=True)
    cols = world.ts.feature_columns
    d = build_decisions(world.result.estimator, rows, cols, "responded", content, world.taxonomy)
    account_cols = [c for c in nc.account_input_columns(world.taxonomy) if c in rows.columns]

    def scored(**chunking: int) -> np.ndarray:
        return nc.score_candidates(
            world.result.estimator,
            rows[account_cols].reset_index(drop=True),
            rows["contact_role"].reset_index(drop=True),
            content,
            world.taxonomy,
            cols,
            eligible=d.eligible,
            **chunking,
        )

    each = scored()
    shared = rows.duplicated(["account_id", "as_of", "contact_role"]).sum()
    assert shared > 20  # the grouping is exercised
    assert rows["contact_role"].nunique() > 2
    np.testing.assert_array_equal(np.isnan(d.scores), ~d.eligible)
    np.testing.assert_allclose(d.scores, each, rtol=1e-12, equal_nan=True)
    # In chunks (each predicted while the next one's rows are built) the same scores.
    np.testing.assert_array_equal(scored(chunk_rows=int(d.eligible.sum()) // 7 + 1), each)


def test_the_policy_sample_keeps_whole_accounts_up_to_the_cap(world: World) -> None:
    test = world.ts.split.test
    cap = len(test) // 3
    sample = decision_sample(test, cap)
    assert 0.5 * cap < len(sample) <= cap
    chosen = set(sample["account_id"].astype(str))
    # every decision of a chosen account, none of another
    in_chosen = test["account_id"].astype(str).isin(chosen)
    assert in_chosen.sum() == len(sample)
    assert sample.index.equals(test.index[in_chosen.to_numpy()])
    assert decision_sample(test, cap).index.equals(sample.index)  # seeded
    assert decision_sample(test, 0) is test and decision_sample(test, len(test)) is test


def test_policy_values_on_a_capped_sample_say_so(world: World) -> None:
    cap = len(world.ts.split.test) // 4
    result = train_next_content(
        world.ts,
        params={"policy_decisions": cap, "n_estimators": 40},
        truth=world.sim.truth,
        taxonomy=world.taxonomy,
        content=world.sim.data.content,
    )
    m = result.metrics
    assert m["decisions"] <= cap < len(world.ts.split.test)
    assert m["policy.decision_share"] == pytest.approx(m["decisions"] / len(world.ts.split.test))
    assert m["test.exposures"] == len(world.ts.split.test)  # response metrics read them all
    assert result.params["policy_decisions"] == cap
    assert "a seeded sample of whole accounts" in result.report_markdown
    assert world.result.metrics["policy.decision_share"] == 1.0
    assert "every test decision" in world.result.report_markdown


def test_promotion_compares_two_models_paired_on_the_test_exposures(world: World) -> None:
    """Challenger minus champion response ROC-AUC on the same resampled accounts: exactly 0
    for the same model, 2 AUC - 1 against one ranking backwards."""
    model = world.result.estimator
    assert paired_next_content(model, model, world.ts) == (0.0, 0.0, 0.0)
    value, low, high = paired_next_content(model, Reversed(model), world.ts)
    auc = score_next_content(model, world.ts)
    assert value == pytest.approx(2 * auc - 1) and 0 < low <= value <= high
