"""A next-content challenger judged on the service's own served log before promotion
(``training.log_promotion``, ``nba promote next-content`` on data holding decisions)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from features.errors import InvalidInputError
from features.load import write_data_dir
from features.schema import RESPONSE_WINDOW_DAYS, JourneyData
from models import next_content as nc
from models.arbitration import AccountContext, load_arbitration_config, rank_actions
from models.contract import CHAMPION, NEXT_CONTENT
from nba.cli import app as cli
from tests.utils.models import Noisy, Reversed
from tests.utils.registry import TrainedRegistry
from training.datasets import as_of_grid, data_end
from training.labels import CHURN_HORIZON_DAYS
from training.log_promotion import (
    CHURN_RISK_COLUMN,
    PHASE_PROBA_PREFIX,
    PICK_COLUMNS,
    PICKS_ARTIFACT,
    SERVABLE_COLUMN,
    LogJudgement,
    ServedLogError,
    learned_until,
    load_service_models,
    promote_on_log,
    served_decisions,
)
from training.model_steps import model_steps
from training.next_content import EXPOSURE_WINDOW_DAYS, HORIZON_DAYS, label_responses
from training.ope import Estimate
from training.registry import load_version
from training.served_policy import judge, known_contacts, roles_at_decisions, service_ranking
from training.tracking import FORCED_TAG, champion_version, configure_tracking
from training.train import prepare_data

POLICY = "ev-greedy-epsilon-v1"


@pytest.fixture
def registry_copy(trained_registry: TrainedRegistry, tmp_path: Path) -> str:
    """A copy of the session's MLflow store (the session's must not change) with a second
    next-content version (the champion's model registered again: a challenger); its URI."""
    shutil.copy(trained_registry.root / "mlflow.db", tmp_path / "mlflow.db")
    uri = configure_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    v1 = client.get_model_version(NEXT_CONTENT, "1")
    client.create_model_version(NEXT_CONTENT, str(v1.source), run_id=v1.run_id)
    return uri


def _judgement(dr_low: float, champion: float) -> LogJudgement:
    e = Estimate(dr_low + 0.05, dr_low, dr_low + 0.1)
    return LogJudgement(
        decisions=100,
        ips=e,
        snips=e,
        dr=e,
        champion=Estimate(champion, champion - 0.02, champion + 0.02),
    )


def test_the_alias_moves_only_when_the_lower_bound_beats_the_champion(registry_copy: str) -> None:
    client = MlflowClient()
    kept = promote_on_log("2", _judgement(dr_low=0.18, champion=0.20))
    assert not kept.promoted and champion_version(NEXT_CONTENT) == "1"
    assert "does not beat" in kept.format()
    run = client.get_run(kept.run_id)
    assert run.data.metrics["log.challenger.dr_low"] == pytest.approx(0.18)
    assert run.data.metrics["log.champion.served"] == pytest.approx(0.20)
    assert run.data.tags["nba.promoted"] == "false"
    forced = promote_on_log("2", _judgement(dr_low=0.18, champion=0.20), force=True)
    assert forced.promoted and forced.forced and champion_version(NEXT_CONTENT) == "2"
    assert client.get_model_version(NEXT_CONTENT, "2").tags[FORCED_TAG] == "true"
    client.set_registered_model_alias(NEXT_CONTENT, CHAMPION, "1")
    won = promote_on_log("2", _judgement(dr_low=0.21, champion=0.20))
    assert won.promoted and not won.forced and champion_version(NEXT_CONTENT) == "2"
    tags = client.get_model_version(NEXT_CONTENT, "2").tags
    assert tags["nba.log_promotion.run_id"] == won.run_id


def test_a_tie_with_the_champions_own_policy_loses(registry_copy: str) -> None:
    """Held against the champion's own policy, only a paired difference above 0 at its
    lower bound moves the alias, however the challenger compares with what was served."""
    own = Estimate(0.20, 0.18, 0.22)
    tie = dataclasses.replace(
        _judgement(dr_low=0.21, champion=0.15),
        champion_policy=own,
        difference=Estimate(0.01, -0.001, 0.021),
    )
    kept = promote_on_log("2", tie)
    assert not kept.promoted and champion_version(NEXT_CONTENT) == "1"
    assert "does not beat the champion's own policy" in kept.format()
    run = MlflowClient().get_run(kept.run_id)
    assert run.data.metrics["log.champion.dr"] == pytest.approx(0.20)
    won = promote_on_log("2", dataclasses.replace(tie, difference=Estimate(0.01, 0.001, 0.02)))
    assert won.promoted and champion_version(NEXT_CONTENT) == "2"


@pytest.mark.slow
@pytest.mark.parametrize("as_served", [False, True], ids=["served-contact", "as-service"])
def test_the_challenger_is_held_against_the_champions_own_policy(
    trained_registry: TrainedRegistry, registry_copy: str, as_served: bool
) -> None:
    """The champion's own top-1 policy is valued on the same decisions with the same
    reward model: itself ties exactly (every decision's
    difference 0), a champion ranking backwards loses clearly. With the service's models
    and contacts the challenger and champion choose the contact too."""
    data, taxonomy = trained_registry.data, trained_registry.taxonomy
    served = _served(data, data_end(data) - pd.Timedelta(days=150))
    models = load_service_models() if as_served else None
    assert (models is not None) == as_served  # the registry holds champion phase and churn
    rows, columns = served_decisions(served, taxonomy, models=models)
    model = load_version(NEXT_CONTENT, "1")
    extra = (
        {"config": load_arbitration_config(), "contacts": known_contacts(served)}
        if as_served
        else {}
    )
    same = judge(model, rows, columns, data.content, taxonomy, champion=model, **extra)
    assert same.champion_policy is not None and same.difference is not None
    assert same.champion_policy.value == pytest.approx(same.dr.value)
    assert (same.difference.value, same.difference.low, same.difference.high) == (0, 0, 0)
    assert not same.beats_champion
    worse = judge(model, rows, columns, data.content, taxonomy, champion=Reversed(model), **extra)
    assert worse.champion_policy is not None and worse.difference is not None
    assert worse.difference.value == pytest.approx(worse.dr.value - worse.champion_policy.value)
    assert worse.difference.low > 0 and worse.beats_champion
    picks = worse.picks
    assert list(picks.columns) == list(PICK_COLUMNS)
    assert (picks["champion_content_id"] != picks["challenger_content_id"]).mean() > 0.5
    assert picks["champion_propensity"].between(0, 1).all()
    # without a champion model the bar is what was served
    alone = judge(model, rows, columns, data.content, taxonomy, **extra)
    assert alone.champion_policy is None
    assert alone.beats_champion == (alone.dr.low > alone.champion.value)


@pytest.mark.slow
@pytest.mark.parametrize("servable", [False, True], ids=["rules", "logged-servable"])
def test_a_noisy_copy_of_the_champion_does_not_beat_it(
    trained_registry: TrainedRegistry, registry_copy: str, servable: bool
) -> None:
    """A challenger that is the champion with noise on its logits is no better anywhere,
    and its own predictions overrate its picks (it picks them partly for their noise):
    valued with them as they are, it beat the champion by +0.19 [0.16, 0.22] here. Both
    policies are valued with the champion's predictions recalibrated on the log; so also
    where the log says what could be served."""
    data, taxonomy = trained_registry.data, trained_registry.taxonomy
    served = _served(data, data_end(data) - pd.Timedelta(days=150))
    if servable:
        served = _servable_logged(served, seed=4)
    rows, columns = served_decisions(served, taxonomy, models=load_service_models())
    model = load_version(NEXT_CONTENT, "1")
    judged = judge(
        Noisy(model, scale=1.0), rows, columns, data.content, taxonomy,
        config=load_arbitration_config(), contacts=known_contacts(served), champion=model,
    )  # fmt: skip
    assert judged.difference is not None
    picks = judged.picks
    assert (picks["challenger_content_id"] != picks["champion_content_id"]).mean() > 0.3
    assert judged.difference.value < 0.01 and not judged.beats_champion


@pytest.mark.slow
def test_promote_judges_next_content_on_the_served_log(
    trained_registry: TrainedRegistry, registry_copy: str, tmp_path: Path
) -> None:
    """The simulator's exposures of the last months stand in for the service's top-slot
    decisions: served by a known policy with exact propensities, exploration included."""
    data = trained_registry.data
    exposures = data.exposures.copy()
    recent = exposures["ts"] >= data.touchpoints["ts"].max() - pd.Timedelta(days=150)
    exposures["policy"] = pd.array(np.where(recent, POLICY, None), dtype="str")
    exposures["position"] = np.where(recent, 1.0, np.nan)
    write_data_dir(dataclasses.replace(data, exposures=exposures), tmp_path / "served")
    args = ["promote", "next-content", "--data", str(tmp_path / "served"), "--as-of-dates", "6"]
    result = CliRunner().invoke(cli, [*args, "--tracking-uri", registry_copy])
    assert result.exit_code == 0, result.output
    assert "decisions the service served" in result.output
    [run] = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name(NEXT_CONTENT).experiment_id],
        filter_string="tags.`nba.promotion` = 'served-log'",
    )
    m = run.data.metrics
    assert m["log.decisions"] >= 20
    assert m["log.challenger.dr_low"] <= m["log.challenger.dr"] <= m["log.challenger.dr_high"]
    # The challenger is the champion's model registered again: held against the champion's
    # own policy on the same decisions, it ties it exactly, and a tie loses (against what
    # was served, which paid for exploration, a copy of the champion could have won).
    assert m["log.champion.dr"] == pytest.approx(m["log.challenger.dr"])
    assert m["log.difference"] == m["log.difference_low"] == m["log.difference_high"] == 0.0
    assert champion_version(NEXT_CONTENT) == "1"
    assert "does not beat the champion's own policy" in result.output
    # Every judged decision's served item and the challenger's pick, as the run's artifact.
    picks = pd.read_csv(
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=PICKS_ARTIFACT)
    )
    assert list(picks.columns) == list(PICK_COLUMNS) and len(picks) == m["log.decisions"]
    assert set(picks["served_content_id"]) <= set(data.content["content_id"].astype(str))
    assert set(picks["challenger_content_id"]) <= set(data.content["content_id"].astype(str))
    assert (picks["champion_content_id"] == picks["challenger_content_id"]).all()
    # the observed mean reward of what was served is the champion's estimate
    assert picks["reward"].mean() == pytest.approx(m["log.champion.served"])
    print(result.output)  # the figures, for the record (pytest -s)


def test_a_challenger_is_judged_on_decisions_after_what_it_learned_from() -> None:
    tags = {
        "nba.as_of.train": "2025-01-01T00:00:00+00:00,2025-02-01T00:00:00+00:00",
        "nba.as_of.valid": "2025-03-01T00:00:00+00:00",
    }
    # The last as-of date it learned from plus the four weeks of exposures paired with it.
    assert learned_until(tags) == pd.Timestamp("2025-03-29", tz="UTC")
    summarised = {"nba.as_of.train": "2024-01-01..2025-04-01", "nba.as_of.train.count": "400"}
    assert learned_until(summarised) == pd.Timestamp("2025-04-29", tz="UTC")
    assert learned_until({}) is None
    # a model fitted again on every split learned up to its last test date
    refit = {**tags, "nba.as_of.learned": "2025-01-01T00:00:00+00:00,2025-06-01T00:00:00+00:00"}
    assert learned_until(refit) == pd.Timestamp("2025-06-29", tz="UTC")


def test_on_a_served_log_the_registered_model_learns_from_every_split(
    trained_registry: TrainedRegistry,
) -> None:
    """The newest months of a served log are the set's test split: the registered model
    is fitted again on every split with the trees early stopping chose, so it learns from
    them; its figures are the training split's fit's, and the promotion judges it on the
    decisions after all it learnt. Data without a served log train as before."""
    data, taxonomy = trained_registry.data, trained_registry.taxonomy
    steps = model_steps("next-content")
    plain = steps.build_set(prepare_data(data, taxonomy, models=["next-content"]), taxonomy)
    assert not plain.refit
    served = _served(data, data_end(data) - pd.Timedelta(days=150))
    ts = steps.build_set(prepare_data(served, taxonomy, models=["next-content"]), taxonomy)
    assert ts.refit
    result = steps.train(ts, taxonomy=taxonomy, content=data.content)
    rounds = int(result.params["refit_rounds"])
    assert rounds == int(result.metrics["model.best_iteration"]) >= 1
    assert result.estimator.booster_.num_trees() == rounds
    split = ts.as_of_dates
    learned = result.as_of_dates["learned"]
    assert learned == sorted({*split["train"], *split["valid"], *split["test"]})
    # it differs from the fit the figures are of (that one never saw the test months)
    x = ts.split.test[ts.feature_columns]
    evaluated = result.evaluation.y_score
    assert not np.allclose(nc.predict_proba(result.estimator, x), evaluated)
    assert "fitted again on every split" in result.report_markdown
    tags = {f"nba.as_of.{k}": ",".join(v) for k, v in result.as_of_dates.items()}
    last = pd.Timestamp(max(split["test"]))
    assert learned_until(tags) == last + pd.Timedelta(days=EXPOSURE_WINDOW_DAYS)


def _served(data: JourneyData, since: pd.Timestamp) -> JourneyData:
    """``data`` whose exposures from ``since`` on stand in for the service's top-slot
    decisions, plus one made a day before the data end (its response window still open)."""
    exposures = data.exposures.copy()
    young = exposures.iloc[[-1]].copy()
    young["exposure_id"] = "young-decision"
    young["ts"] = data_end(data) - pd.Timedelta(days=1)
    exposures = pd.concat([exposures, young], ignore_index=True)
    served = exposures["ts"] >= since
    exposures["policy"] = pd.array(np.where(served, POLICY, None), dtype="str")
    exposures["position"] = np.where(served, 1.0, np.nan)
    return dataclasses.replace(data, exposures=exposures)


def test_recent_decisions_are_judged_on_their_own_day_and_young_ones_wait(
    trained_registry: TrainedRegistry,
) -> None:
    """Decisions of the last 40 days: all after the monthly grid's last date (a churn
    horizon before the data end), judged with features as of each decision's day, except
    the one whose response window has not closed yet."""
    data, taxonomy = trained_registry.data, trained_registry.taxonomy
    end = data_end(data)
    served = _served(data, end - pd.Timedelta(days=40))
    assert data_end(served) == end
    rows, columns = served_decisions(served, taxonomy)
    decided = served.exposures.loc[served.exposures["policy"].notna(), "exposure_id"]
    assert len(decided) >= 21 and "young-decision" in set(decided)
    # every judged one, no young one
    assert sorted(rows["exposure_id"]) == sorted(set(decided.astype(str)) - {"young-decision"})
    assert (rows["as_of"] == rows["ts"].dt.floor("D")).all()
    assert set(columns) <= set(rows.columns)
    # the reward is a response within the window, as in training
    judged = served.exposures.set_index(served.exposures["exposure_id"].astype(str))
    again = label_responses(judged.loc[rows["exposure_id"]], data.touchpoints, taxonomy)
    assert (rows["responded"].to_numpy() == again).all()
    # only a decision younger than the response window: nothing to judge yet
    young = _served(data, end - pd.Timedelta(days=RESPONSE_WINDOW_DAYS - 1))
    with pytest.raises(ServedLogError, match="response window"):
        served_decisions(young, taxonomy)


def test_next_content_trains_on_exposures_up_to_its_own_horizon(
    trained_registry: TrainedRegistry,
) -> None:
    """The monthly grid of churn ends 90 days before the data end; next content's label
    window is 35 days, so its rows reach the recent decisions the grid would leave out."""
    data, taxonomy = trained_registry.data, trained_registry.taxonomy
    prepared = prepare_data(data, taxonomy, models=["next-content"])
    ts = model_steps("next-content").build_set(prepared, taxonomy)
    end = data_end(data)
    last = ts.frame["as_of"].max()
    assert last == as_of_grid(data, horizon_days=HORIZON_DAYS)[-1] > prepared.as_of[-1]
    assert end - last >= pd.Timedelta(days=HORIZON_DAYS)  # every label window has closed
    assert ts.frame["ts"].max() > end - pd.Timedelta(days=CHURN_HORIZON_DAYS)


def test_the_challenger_ranks_as_the_service_would(trained_registry: TrainedRegistry) -> None:
    """service_ranking's pick equals rank_actions' greedy top action for the same decision
    (its phase probabilities, churn risk, contact role and P(response) per item)."""
    taxonomy, content = trained_registry.taxonomy, trained_registry.data.content
    catalog = content.reset_index(drop=True)
    config = load_arbitration_config().model_copy(update={"exploration_rate": 0.0})
    rng = np.random.default_rng(5)
    n, phases = 300, list(taxonomy.phases)
    roles = rng.choice(list(taxonomy.role_names), n)
    rows = pd.DataFrame({"contact_role": roles})
    proba = rng.dirichlet(np.full(len(phases), 0.4), n)
    for j, name in enumerate(phases):
        rows[PHASE_PROBA_PREFIX + name] = proba[:, j]
    rows[CHURN_RISK_COLUMN] = rng.uniform(0, 1, n)
    p = rng.uniform(0.01, 0.3, (n, len(catalog)))
    weight, eligible = service_ranking(rows, catalog, taxonomy, config)
    picks = nc.top1(p * weight, eligible)
    assert eligible.any(axis=1).mean() > 0.5  # most decisions have an item to serve
    for i in range(n):
        decision = rank_actions(
            AccountContext(
                account_id="A",
                phase_proba=proba[i],
                phase_names=phases,
                churn_risk=float(rows[CHURN_RISK_COLUMN].iloc[i]),
                contacts=pd.DataFrame({"contact_id": ["K1"], "role": [roles[i]]}),
            ),
            pd.DataFrame(
                {"contact_id": "K1", "content_id": catalog["content_id"], "p_response": p[i]}
            ),
            catalog,
            config,
            k=1,
            rng=np.random.default_rng(0),
            now=pd.Timestamp("2025-06-01", tz="UTC"),
            explore=False,
        )
        if not eligible[i].any():
            assert not decision.actions
            continue
        assert decision.actions[0].content_id == catalog["content_id"].iloc[picks[i]]


def test_a_decision_could_address_the_contacts_its_account_had_by_then() -> None:
    """Contacts count by role once first seen; the served contact counts at least once (its
    first touch may be the decision itself)."""
    contacts = pd.DataFrame(
        {
            "account_id": ["A", "A", "A", "B"],
            "role": ["it", "it", "", "it"],
            "first_seen": pd.to_datetime(
                ["2025-01-01", "2025-03-01", "2025-01-01", None], utc=True
            ),
        }
    )
    rows = pd.DataFrame(
        {
            "account_id": ["A", "A", "B"],
            "ts": pd.to_datetime(["2025-02-01", "2025-04-01", "2025-02-01"], utc=True),
            "contact_role": ["it", "marketing", None],
        }
    )
    roles, counts = roles_at_decisions(rows, contacts)
    assert roles == ["", "it", "marketing"]
    assert counts.tolist() == [[1, 1, 0], [1, 2, 1], [1, 1, 0]]


def _servable_logged(data: JourneyData, seed: int) -> JourneyData:
    """``data`` whose service decisions also log what could be served: for each of the
    account's contacts a random third of the catalog, the served item among them for the
    served contact."""
    rng = np.random.default_rng(seed)
    items = data.content["content_id"].astype(str).to_numpy()
    by_account = data.contacts.groupby(data.contacts["account_id"].astype(str))["contact_id"]
    contacts_of = {a: [str(c) for c in ids] for a, ids in by_account}
    ex = data.exposures
    logged = []
    for account, contact, item, policy in zip(
        ex["account_id"].astype(str), ex["contact_id"], ex["content_id"].astype(str),
        ex["policy"], strict=True,
    ):  # fmt: skip
        if pd.isna(policy):
            logged.append(None)
            continue
        served_to = "" if pd.isna(contact) else str(contact)
        sets = {}
        for c in {*contacts_of.get(account, []), served_to}:
            chosen = set(rng.choice(items, size=len(items) // 3, replace=False).tolist())
            sets[c] = sorted(chosen | ({item} if c == served_to else set()))
        logged.append(json.dumps(sets))
    exposures = ex.assign(**{SERVABLE_COLUMN: pd.array(logged, dtype="str")})
    return dataclasses.replace(data, exposures=exposures)


@pytest.mark.slow
@pytest.mark.parametrize("as_served", [False, True], ids=["served-contact", "as-service"])
def test_the_challenger_chooses_among_what_the_service_could_serve(
    trained_registry: TrainedRegistry, registry_copy: str, as_served: bool
) -> None:
    """Where the log holds each decision's servable actions, the challenger and the
    champion pick among them alone (a pick the service could not serve has no evidence in
    the log); among contacts of one role it takes those it could serve the item alike."""
    data, taxonomy = trained_registry.data, trained_registry.taxonomy
    # the last 75 days' decisions: enough to bind, and each judgement scores them all
    served = _servable_logged(_served(data, data_end(data) - pd.Timedelta(days=75)), seed=3)
    models = load_service_models() if as_served else None
    rows, columns = served_decisions(served, taxonomy, models=models)
    assert rows[SERVABLE_COLUMN].notna().all()
    model = load_version(NEXT_CONTENT, "1")
    extra = (
        {"config": load_arbitration_config(), "contacts": known_contacts(served)}
        if as_served
        else {}
    )
    bound = judge(model, rows, columns, data.content, taxonomy, champion=Reversed(model), **extra)
    free = judge(
        model, rows.drop(columns=SERVABLE_COLUMN), columns, data.content, taxonomy,
        champion=Reversed(model), **extra,
    )  # fmt: skip
    roles = data.contacts["role"].astype(object)
    role_of = dict(
        zip(data.contacts["contact_id"].astype(str), roles.where(roles.notna(), ""), strict=True)
    )
    picks = bound.picks.reset_index(drop=True)
    for i, pick in picks.iterrows():
        sets = json.loads(rows[SERVABLE_COLUMN].iat[i])
        served_to = rows["contact_id"].iat[i]
        served_to = "" if pd.isna(served_to) else str(served_to)
        for who in ("challenger", "champion"):
            role = pick[f"{who}_role"]
            addressed = (
                [c for c in sets if role_of.get(c, "") == role] if as_served else [served_to]
            )
            assert any(pick[f"{who}_content_id"] in sets[c] for c in addressed), (i, who)
        same = pick["challenger_content_id"] == pick["served_content_id"] and (
            not as_served or pick["challenger_role"] == role_of.get(served_to, "")
        )
        alike = [
            c
            for c in sets
            if role_of.get(c, "") == role_of.get(served_to, "")
            and pick["served_content_id"] in sets[c]
        ]
        expected = (1.0 / len(alike) if as_served else 1.0) if same else 0.0
        assert pick["challenger_propensity"] == pytest.approx(expected), i
    # the logged sets bind: without them many picks are items the service could not serve
    moved = bound.picks["challenger_content_id"] != free.picks["challenger_content_id"]
    assert moved.mean() > 0.3
    # a copy of the champion still ties it exactly
    same = judge(model, rows, columns, data.content, taxonomy, champion=model, **extra)
    assert same.difference is not None
    assert (same.difference.value, same.difference.low, same.difference.high) == (0, 0, 0)


def test_a_servable_set_that_is_not_json_is_refused_by_its_exposure(
    trained_registry: TrainedRegistry,
) -> None:
    data, taxonomy = trained_registry.data, trained_registry.taxonomy
    # the last 75 days' decisions: enough to bind, and each judgement scores them all
    served = _servable_logged(_served(data, data_end(data) - pd.Timedelta(days=75)), seed=3)
    rows, columns = served_decisions(served, taxonomy)
    broken = rows.copy()
    exposure = str(broken["exposure_id"].iat[4])
    for bad in ("{not json", '["C1"]', '{"K1": "C1"}'):
        broken[SERVABLE_COLUMN] = broken[SERVABLE_COLUMN].astype(object)
        broken.iloc[4, broken.columns.get_loc(SERVABLE_COLUMN)] = bad
        with pytest.raises(InvalidInputError, match=f"exposures.servable of exposure '{exposure}'"):
            judge(load_version(NEXT_CONTENT, "1"), broken, columns, data.content, taxonomy)
