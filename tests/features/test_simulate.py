"""The journey simulator: determinism, the data contract, the journey structure it promises
(touchpoints to purchase, late and noisy CRM, churn drivers, the response lever) and its
ground-truth functions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.schema import TABLES, column_dtype
from features.simulate import (
    Simulation,
    SimulationParams,
    load_truth,
    sent_response_probability,
    simulate,
    true_churn_probability,
    true_phases,
    true_response_probability,
    write_simulation,
)
from features.taxonomy import Taxonomy, load_taxonomy

START = pd.Timestamp("2024-01-01", tz="UTC")


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="module")
def small(taxonomy: Taxonomy) -> Simulation:
    """300 accounts over 6 months."""
    return simulate(300, 11, months=6, taxonomy=taxonomy)


@pytest.fixture(scope="module")
def full(taxonomy: Taxonomy) -> Simulation:
    """1,500 accounts over the default 24 months (about a second)."""
    return simulate(1500, 3, taxonomy=taxonomy)


def _cell(frame: pd.DataFrame, row: str, column: str) -> float:
    """One cell of a crosstab as a float (0 if the column never occurs)."""
    if column not in frame.columns:
        return 0.0
    return float(frame.to_numpy()[frame.index.get_loc(row), frame.columns.get_loc(column)])


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    """Mann-Whitney AUC (ties count half)."""
    ranks = pd.Series(score).rank().to_numpy()
    pos = label.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_same_seed_gives_identical_tables_and_truth(taxonomy: Taxonomy) -> None:
    a = simulate(120, 5, months=3, taxonomy=taxonomy)
    b = simulate(120, 5, months=3, taxonomy=taxonomy)
    for name, frame in a.data.tables().items():
        pd.testing.assert_frame_equal(frame, getattr(b.data, name), check_exact=True)
    for name, frame in a.truth.tables().items():
        pd.testing.assert_frame_equal(frame, getattr(b.truth, name), check_exact=True)


def test_different_seed_gives_different_data(taxonomy: Taxonomy, small: Simulation) -> None:
    other = simulate(300, 12, months=6, taxonomy=taxonomy)
    assert not small.data.touchpoints.equals(other.data.touchpoints)
    assert not small.data.accounts["employees"].equals(other.data.accounts["employees"])


def test_every_table_has_the_canonical_columns_and_dtypes(
    small: Simulation, taxonomy: Taxonomy
) -> None:
    for name, frame in small.data.tables().items():
        schema = TABLES[name]
        assert set(schema.required) <= set(frame.columns), name
        assert set(frame.columns) <= set(schema.names), name
        for column in schema.columns:
            if column.name not in frame:
                continue
            expected = column_dtype(column, taxonomy)
            if expected is object:
                assert all(isinstance(v, list) for v in frame[column.name]), (name, column.name)
            else:
                assert frame[column.name].dtype == expected, (name, column.name)
            if not column.nullable:
                assert frame[column.name].notna().all(), (name, column.name)
    assert small.data.touchpoints["contact_id"].isna().any()  # anonymous web visits
    assert small.data.contacts["left_at"].isna().any()
    expected_content = taxonomy.content_frame()
    assert small.data.content["content_id"].tolist() == expected_content["content_id"].tolist()


def test_ids_look_like_the_contract_and_are_unique(small: Simulation) -> None:
    d = small.data
    for frame, column, pattern in (
        (d.accounts, "account_id", r"A\d{6}"),
        (d.contacts, "contact_id", r"K\d{7}"),
        (d.touchpoints, "event_id", r"E\d{9}"),
        (d.exposures, "exposure_id", r"X\d{9}"),
        (d.accounts, "owner_rep_id", r"R\d{3}"),
    ):
        assert frame[column].str.fullmatch(pattern).all(), column
    for frame, column in (
        (d.accounts, "account_id"),
        (d.contacts, "contact_id"),
        (d.touchpoints, "event_id"),
        (d.exposures, "exposure_id"),
        (d.content, "content_id"),
    ):
        assert frame[column].is_unique, column
    assert d.accounts["owner_rep_id"].isin([f"R{i:03d}" for i in range(1, 51)]).all()


def test_referential_integrity_and_nothing_after_the_end(small: Simulation) -> None:
    d = small.data
    end = START + pd.DateOffset(months=6)
    accounts = set(d.accounts["account_id"])
    contacts = set(d.contacts["contact_id"])
    content = set(d.content["content_id"])
    for name in ("contacts", "touchpoints", "stages", "exposures"):
        assert set(getattr(d, name)["account_id"]) <= accounts, name
    for name in ("touchpoints", "exposures"):
        frame = getattr(d, name)
        assert set(frame["contact_id"].dropna()) <= contacts, name
        assert set(frame["content_id"].dropna()) <= content, name
        assert (frame["ts"] < end).all(), name
    assert (d.stages["ts"] < end).all()
    # A touchpoint's contact belongs to its account and is there at that time.
    tp = d.touchpoints.dropna(subset=["contact_id"]).merge(
        d.contacts, on="contact_id", suffixes=("", "_contact")
    )
    assert (tp["account_id"] == tp["account_id_contact"]).all()
    in_window = tp[tp["ts"] >= START]
    assert (in_window["ts"] >= in_window["created_at"]).all()
    assert ~(in_window["ts"] >= in_window["left_at"]).any()
    assert (d.contacts["left_at"].dropna() > START).all()


def test_accounts_are_heavy_tailed_with_buying_centers_of_four_to_twelve(
    full: Simulation,
) -> None:
    employees = full.data.accounts["employees"]
    assert employees.max() > 20 * employees.median()
    sizes = full.data.contacts.groupby("account_id").size()
    # Replacements of contacts who left can add a few beyond twelve over two years.
    assert sizes.min() >= 4
    originals = full.data.contacts[full.data.contacts["created_at"] < START]
    per_account = originals.groupby("account_id").size()
    assert per_account.between(4, 12).all()
    assert per_account.nunique() >= 7
    # Larger accounts have larger buying groups.
    size = full.data.accounts.set_index("account_id")["employees"].reindex(per_account.index)
    assert per_account[size >= 1000].mean() > per_account[size < 100].mean() + 1


def test_propensities_are_valid_probabilities_of_the_logging_policy(full: Simulation) -> None:
    # The full world: with a CRM that starts late, the small one records too few late phases.
    small = full
    x = small.data.exposures
    assert x["propensity"].between(0.01, 1.0).all()
    # The policy sees the CRM phase recorded by the time of the exposure: every item shown
    # fits it, and the propensities of one CRM phase's items sum to one
    crm = pd.merge_asof(
        x.sort_values("ts"),
        small.data.stages.sort_values("ts").rename(columns={"phase": "crm_phase"}),
        on="ts",
        by="account_id",
    )
    content = small.data.content.set_index("content_id")["phases"]
    # Without a CRM stage yet the sender nurtures: items fitting an early phase.
    early = {"trigger", "awareness", "consideration"}
    fits = [
        (ph in content[c]) if isinstance(ph, str) else bool(early & set(content[c]))
        for ph, c in zip(crm["crm_phase"], crm["content_id"], strict=True)
    ]
    assert all(fits)
    assert crm["crm_phase"].isna().mean() > 0.3  # the CRM starts late
    per_item = crm.groupby(["crm_phase", "content_id"], observed=True)["propensity"]
    assert per_item.nunique().max() == 1
    totals = per_item.first().groupby(level="crm_phase", observed=True).sum()
    # (at most one when a rarely recorded phase did not show every item)
    assert (totals <= 1 + 1e-9).all()
    assert totals.round(9).eq(1.0).sum() >= 6
    assert len(x) > 1500 * 104 * 0.3


def test_touchpoints_from_first_touch_to_purchase_average_20_to_60(full: Simulation) -> None:
    tp = full.data.touchpoints
    purchases = tp[tp["event_type"] == "purchase"]
    earlier_customers = purchases.loc[purchases["ts"] < START, "account_id"].unique()
    first = purchases[purchases["ts"] >= START].groupby("account_id")["ts"].min()
    first = first[~first.index.isin(earlier_customers)]
    before = tp.merge(first.rename("purchased_at"), left_on="account_id", right_index=True)
    counts = (before["ts"] < before["purchased_at"]).groupby(before["account_id"]).sum()
    # A few percent of the accounts buy a year (tests/features/test_realism.py checks it).
    assert len(counts) > 50
    assert 20 <= counts.mean() <= 60
    per_account = len(tp) / len(full.data.accounts)
    assert 30 <= per_account <= 70


def test_touchpoints_depend_on_the_phase(full: Simulation) -> None:
    tp = full.data.touchpoints.sample(min(100_000, len(full.data.touchpoints)), random_state=0)
    tp = tp[tp["ts"] >= START].reset_index(drop=True)
    tp["true_phase"] = true_phases(full.truth, tp["account_id"], tp["ts"]).to_numpy()
    share = pd.crosstab(tp["true_phase"], tp["channel"], normalize="index")
    assert _cell(share, "trigger", "search_ads") > 5 * _cell(share, "impact", "search_ads")
    assert _cell(share, "selection", "meeting") > 3 * _cell(share, "awareness", "meeting")
    assert _cell(share, "impact", "product") > 0.3
    assert _cell(share, "consideration", "review_portal") > _cell(
        share, "onboarding", "review_portal"
    )
    content = full.data.content.set_index("content_id")["content_type"]
    tp["content_type"] = tp["content_id"].map(content)
    types = pd.crosstab(tp["true_phase"], tp["content_type"], normalize="index")
    assert _cell(types, "selection", "case_study") > 5 * _cell(types, "trigger", "case_study")
    assert _cell(types, "onboarding", "training") > 5 * _cell(types, "consideration", "training")
    assert _cell(types, "expansion", "upsell_offer") > 5 * _cell(types, "selection", "upsell_offer")
    values = full.data.touchpoints.groupby("event_type", observed=True)["value"]
    assert values.count()[["view", "attend", "purchase", "renewal"]].gt(0).all()
    assert values.count()[["click", "usage", "churn"]].eq(0).all()


def test_crm_stages_are_late_and_sometimes_wrong(full: Simulation) -> None:
    ph = full.truth.phases
    changes = ph[(ph["start"] >= START) & ph["recorded_at"].notna()]
    lag_days = (changes["recorded_at"] - changes["start"]).dt.total_seconds() / 86_400
    assert 7 <= lag_days.median() <= 21
    assert (lag_days > 0).all()
    wrong = changes["recorded_phase"].astype(str) != changes["phase"].astype(str)
    assert 0.07 <= wrong.mean() <= 0.13
    # The stages table is exactly the recorded changes.
    recorded = ph[ph["recorded_at"].notna()]
    assert len(full.data.stages) == len(recorded)
    assert full.data.stages["ts"].is_monotonic_increasing


def test_true_phases_follow_the_timeline(full: Simulation) -> None:
    ph = full.truth.phases
    rows = ph.iloc[[0, 5, 50, 500]]
    at_start = true_phases(full.truth, rows["account_id"], rows["start"].reset_index(drop=True))
    assert at_start.astype(str).tolist() == rows["phase"].astype(str).tolist()
    before = true_phases(full.truth, ["A000001"], pd.Timestamp("2010-01-01", tz="UTC"))
    assert before.isna().all()
    one_time = true_phases(full.truth, full.data.accounts["account_id"], START)
    assert one_time.notna().all() and len(one_time) == 1500


def test_true_churn_probability_ranks_the_accounts_that_churn(taxonomy: Taxonomy) -> None:
    # The legacy world: its churn hazard holds from week to week, as this probability
    # assumes; in the realistic world churn falls at renewals, which a hazard held from the
    # as-of week cannot see (see docs/realism.md).
    full = simulate(1500, 3, taxonomy=taxonomy, params=SimulationParams.profile("legacy"))
    as_of = [START + pd.DateOffset(months=m) for m in (9, 12, 15)]
    p = true_churn_probability(full.truth, as_of, horizon_days=90)
    assert list(p.columns) == ["account_id", "as_of", "p_churn"]
    assert p["p_churn"].between(0, 1).all()
    # Every account listed is a customer then: the true phase is onboarding/impact/expansion.
    phase = true_phases(full.truth, p["account_id"], p["as_of"])
    assert phase.isin(["onboarding", "impact", "expansion"]).all()
    tp = full.data.touchpoints
    churn = tp[tp["event_type"] == "churn"]
    joined = p.merge(churn[["account_id", "ts"]], on="account_id", how="left")
    hit = (joined["ts"] > joined["as_of"]) & (
        joined["ts"] <= joined["as_of"] + pd.Timedelta(days=90)
    )
    label = hit.groupby([joined["account_id"], joined["as_of"]]).any()
    scored = p.set_index(["account_id", "as_of"])["p_churn"].loc[label.index]
    assert label.sum() > 30
    assert _auc(scored.to_numpy(), label.to_numpy()) > 0.6
    # Calibrated to within a factor of two on average.
    assert 0.5 < scored.mean() / label.mean() < 2


def test_true_response_probability_is_what_the_simulator_used(small: Simulation) -> None:
    x = small.truth.exposures
    p = true_response_probability(
        small.truth, x[["account_id", "contact_id", "content_id", "ts", "channel"]]
    )
    np.testing.assert_allclose(p, x["p_response"].to_numpy(), rtol=1e-12)
    # And the responses happened at that rate.
    assert abs(x["responded"].mean() - x["p_response"].mean()) < 0.01


def test_sent_response_probability_is_the_value_the_logged_responses_measure(
    small: Simulation,
) -> None:
    x = small.truth.exposures
    requests = x[["account_id", "contact_id", "content_id", "ts"]]
    sent = sent_response_probability(small.truth, requests)
    by_email = true_response_probability(small.truth, requests)
    logged = x["p_response"].to_numpy()
    # The sender draws each exposure's channel at random, so over the log the channel mix
    # averages out: sent minus the logged probability is zero within sampling error ...
    diff = sent - logged
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    assert abs(diff.mean()) < 4 * se
    # ... while e-mail alone overstates what the logged responses measure.
    assert (by_email - logged).mean() > 4 * (by_email - logged).std(ddof=1) / np.sqrt(len(x))
    # An exposure sent by e-mail had the e-mail probability.
    email = (x["channel"].astype(str) == "email").to_numpy()
    np.testing.assert_allclose(by_email[email], logged[email], rtol=1e-12)


def test_content_fitting_the_true_phase_gets_more_responses(
    small: Simulation, taxonomy: Taxonomy
) -> None:
    x = small.truth.exposures.sample(2000, random_state=1).reset_index(drop=True)
    content = small.data.content
    fitting = {
        ph: content.loc[content["phases"].map(lambda ps, ph=ph: ph in ps), "content_id"].iloc[0]
        for ph in taxonomy.phases
    }
    far = {
        ph: content.loc[
            content["phases"].map(
                lambda ps, i=i: all(abs(taxonomy.phases.index(q) - i) > 1 for q in ps)
            ),
            "content_id",
        ].iloc[0]
        for i, ph in enumerate(taxonomy.phases)
    }
    fit_req = x.assign(content_id=x["true_phase"].astype(str).map(fitting))
    far_req = x.assign(content_id=x["true_phase"].astype(str).map(far))
    p_fit = true_response_probability(small.truth, fit_req)
    p_far = true_response_probability(small.truth, far_req)
    # (the two items also differ in content type, topic and roles, which now weigh too)
    assert (p_fit > p_far).mean() > 0.85
    assert p_fit.mean() > 2 * p_far.mean()
    # Observed response rates agree: exposures of fitting content are answered more often.
    fit = x.apply(
        lambda r: r["true_phase"] in content.set_index("content_id").loc[r["content_id"], "phases"],
        axis=1,
    )
    assert x.loc[fit, "responded"].mean() > 1.5 * x.loc[~fit, "responded"].mean()


def test_fatigue_lowers_the_response_probability(small: Simulation) -> None:
    x = small.truth.exposures.iloc[:500]
    req = x[["account_id", "contact_id", "content_id", "ts"]]
    now = true_response_probability(small.truth, req)
    # Shown a second later, the exposure itself counts as fatigue (unless one exactly 14 days
    # earlier drops out of the window at the same time).
    later = true_response_probability(
        small.truth, req.assign(ts=req["ts"] + pd.Timedelta(seconds=1))
    )
    assert (later <= now).all()
    assert (later < now).mean() > 0.8


def test_responding_to_fitting_content_speeds_up_progress(taxonomy: Taxonomy) -> None:
    def advances(boost: float) -> int:
        # 1,500 accounts: few are in a buying run at a time and few respond (~3 %).
        sim = simulate(
            1500, 21, months=12, taxonomy=taxonomy, params=SimulationParams(response_boost=boost)
        )
        ph = sim.truth.phases
        codes = ph["phase"].cat.codes
        step = codes.diff().where(ph["account_id"] == ph["account_id"].shift())
        return int((step == 1).sum())

    assert advances(SimulationParams().response_boost) > 1.15 * advances(0.0)


def test_write_simulation_and_load_truth_round_trip(small: Simulation, tmp_path: Path) -> None:
    out = write_simulation(small, tmp_path / "data")
    assert out == tmp_path / "data"
    assert sorted(p.name for p in out.glob("*.parquet")) == sorted(
        f"{name}.parquet" for name in small.data.tables()
    )
    truth = load_truth(out)
    for name, frame in small.truth.tables().items():
        pd.testing.assert_frame_equal(getattr(truth, name), frame, check_dtype=False)
    x = truth.exposures.iloc[:200]
    np.testing.assert_allclose(
        true_response_probability(truth, x), x["p_response"].to_numpy(), rtol=1e-12
    )
    touchpoints = pd.read_parquet(out / "touchpoints.parquet")
    assert len(touchpoints) == len(small.data.touchpoints)


def test_written_data_passes_validation(
    small: Simulation, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    from features.validate import validate_data_dir

    out = write_simulation(small, tmp_path / "data")
    report = validate_data_dir(out, taxonomy)
    assert report.ok, report.format()


def test_importing_the_truth_does_not_import_the_simulator() -> None:
    """The training layer reads only the truth; importing it must stay light."""
    import subprocess
    import sys

    code = (
        "import sys, features.simulate.truth, training.train; "
        "print(' '.join(m for m in sys.modules if m.startswith('features.simulate.')))"
    )
    repo = Path(__file__).resolve().parents[2]  # python -c puts the working directory first
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo
    )
    loaded = set(done.stdout.split())
    assert "features.simulate.truth" in loaded
    assert not loaded & {"features.simulate.run", "features.simulate.tables"}
