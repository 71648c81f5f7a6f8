"""The closed loop: the service decides for simulated accounts week by week and learns from
what it served. ``python -m bench.closed_loop [--accounts 400] [--weeks 26] [--seed 7]``.

The simulator runs ``--history-months`` with its own sender; its tables are loaded into a
fresh store and ``nba train all --store`` trains the first models (also aliased ``frozen``).
Then, each week, accounts come to a decision at the simulator's cadence and the service (the
app in process, its real request path: ``GET /v1/accounts/{id}/recommendations?k=1``)
decides; the world answers with its true response model; the week's touchpoints and the
responses go back through ``POST /v1/events`` (which also rewards the decisions they answer
in the online posterior). Every ``--retrain-every`` weeks ``nba train next-content --store``
retrains from the service's own store and ``nba promote next-content --store`` judges the
newcomer on the served log; the service then reloads its models. With ``--promote-first``
each retrain first judges the newcomer of the retrain before, on every decision served since
what it learned from (about a whole retrain period of them, where judging it at once leaves
only the days between its data's end, a label horizon back, and the newest closed response
window), and then trains the next; the first retrain has no newcomer to judge.

Prints JSON: per week the true value (95 % interval over decisions) of the served policy,
the logging policy, the frozen champion, the best item for the contact the frozen champion
chose (``frozen_contact``: what its choice of contact costs against the oracle, and its
choice of item against that), the oracle, the informed reference (the oracle's pick with
each account's topic interests estimated from its content touchpoints so far) and the
service's own ranking over what it could serve on those informed probabilities
(``informed_greedy``: a model that learned the response model exactly) in two
objectives: the mean true response probability of the decided action (``served`` ...) and
its mean true expected value, that probability times the item's catalog value
(``served_ev`` ...: what the service's arbitration ranks by, before its fit and churn
lever), each against the oracle of that objective; the last ``--retrain-every`` weeks'
means and shares of the oracle in both, with 95 % intervals over their decisions
(``last_weeks``); per promotion the off-policy estimate (DR with its interval, from the
MLflow comparison run) and the served policy's true value in the weeks before and after;
the targets with pass/fail. See ``bench.loop_world`` for how the world answers.

``--world KEY=VALUE`` (repeatable) changes a parameter of the simulated world, e.g.
``--world crm_early_record_share=1 --world stage_error_rate=0`` for a CRM that records the
true phase; the JSON names the overrides (``world``).

``--equal-values`` runs a response-only service: the store's catalog gives every item the
value 1, so the arbitration ranks by P(response) x fit x churn lever (and the served-log
judgement alike, reading the same catalog); the product's arbitration is unchanged and the
world's expected values still count the catalog's own values. ``--arbitration`` is the
policy file of the service, the frozen champion and the promotions' judgement.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from bench.loop_world import (
    ServiceSender,
    WeekValues,
    content_positions,
    new_touchpoints,
    organic_touches,
    posterior_spread,
    recorded_stages,
    shares_of_oracles,
    true_values_of_picks,
    world_params,
)
from bench.measure import machine
from features.schema import JourneyData, empty_table
from features.simulate.params import WEEK_NS
from features.simulate.run import Run, start_run, step_week
from features.simulate.tables import assemble
from models.arbitration import ServableActions
from models.contract import NEXT_CONTENT
from serving.app import create_app
from serving.routes import Services
from serving.routes.recommendations import (
    account_activity,
    dismissed_recent,
    score,
    served_recent,
)
from serving.settings import Settings
from serving.store import Store
from training.log_promotion import PICKS_ARTIFACT

START = "2024-01-01"
FROZEN = "frozen"
EVENT_BATCH = 5000


def _nba(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Runs an ``nba`` command as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "nba", *args], env=env, capture_output=True, text=True, check=False
    )


def _history(args: argparse.Namespace) -> tuple[Run, pd.Timestamp]:
    """The simulator's run through the history months, and the loop's first decision time."""
    loop_months = int(np.ceil(args.weeks * 7 / 30)) + 1
    run = start_run(
        args.accounts,
        args.seed,
        start=START,
        months=args.history_months + loop_months,
        params=world_params(args.profile, args.world),
    )
    history_weeks = int(
        (pd.Timestamp(START, tz="UTC") + pd.DateOffset(months=args.history_months)
         - pd.Timestamp(START, tz="UTC")).days // 7
    )  # fmt: skip
    for _ in range(history_weeks):
        step_week(run)
    return run, pd.Timestamp(run.world.start_ns + history_weeks * WEEK_NS, tz="UTC")


def _freeze(tracking_uri: str) -> dict[str, str]:
    """Aliases every champion ``frozen`` too; returns name -> version."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    out = {}
    for model in client.search_registered_models():
        version = model.aliases.get("champion")
        if version is not None:
            client.set_registered_model_alias(model.name, FROZEN, version)
            out[model.name] = str(version)
    return out


def _promotion_run(tracking_uri: str) -> tuple[dict[str, float], pd.DataFrame | None]:
    """The metrics of the newest served-log comparison run of next content and its
    per-decision picks (``PICKS_ARTIFACT``)."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = client.get_experiment_by_name(NEXT_CONTENT)
    if experiment is None:
        return {}, None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`nba.promotion` = 'served-log'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return {}, None
    path = client.download_artifacts(runs[0].info.run_id, PICKS_ARTIFACT)
    return dict(runs[0].data.metrics), pd.read_csv(path)


class Loop:
    """The service over its store and the world it decides for."""

    def __init__(self, args: argparse.Namespace, out: Path) -> None:
        self.args = args
        self.url = f"sqlite:///{out / 'nba.db'}"
        self.tracking_uri = f"sqlite:///{out / 'mlflow.db'}"
        self.env = {
            **os.environ,
            "NBA_DATABASE_URL": self.url,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
        }
        self.clock = pd.Timestamp(START, tz="UTC")
        self.seconds: dict[str, float] = {}
        self.servable: ServableActions | None = None
        # whether a version trained at the last retrain awaits its judgement (--promote-first)
        self.newcomer = False
        # the history's content touchpoints (account_id, content_id), set by setup
        self.history = pd.DataFrame({"account_id": [], "content_id": []})

    def _timed(self, name: str, started: float) -> None:
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 1)

    def setup(self, run: Run, first: pd.Timestamp) -> dict[str, str]:
        """Loads the history before ``first`` into the store and trains the first models."""
        started = time.perf_counter()
        sim = assemble(run.world, run.records)
        # The CRM records a phase some days after it starts: those of the history's last
        # phases fall after the first decision and come with the weeks' syncs.
        stages = sim.data.stages
        data = dataclasses.replace(sim.data, stages=stages.loc[stages["ts"] < first])
        if self.args.equal_values:
            data = dataclasses.replace(data, content=data.content.assign(value=1.0))
        store = Store(self.url, run.world.taxonomy)
        store.migrate()
        store.load_data(data)
        self.history = data.touchpoints[["account_id", "content_id"]]
        self.key = store.create_api_key("loop", ["admin"])
        store.dispose()
        self._timed("load", started)
        started = time.perf_counter()
        # The first models are the loop's starting point: made champion even when one loses
        # its gate on a small world (said in the output as "initial_forced").
        trained = _nba(["train", "all", "--store", self.url, "--force", "--json"], self.env)
        if trained.returncode != 0:
            raise SystemExit(f"nba train all failed:\n{trained.stdout}\n{trained.stderr}")
        self._timed("train", started)
        return _freeze(self.tracking_uri)

    def open(self) -> TestClient:
        settings = Settings(
            database_url=self.url,
            tracking_uri=self.tracking_uri,
            reload_interval_s=0,
            random_seed=self.args.seed,
            online_learning=not self.args.no_online,
            online_refresh_s=0,  # read once a week, after the week's responses (run_loop)
            # Each decision is written in its request: with the writer thread's 50 ms
            # batches, what the week's reads see would depend on the machine's load (a run
            # under load decided differently from the same run on a quiet machine).
            served_log_flush_s=0,
            online_prior_strength=self.args.prior_strength,
            online_draw_share=self.args.draw_share,
            challenger_share=self.args.challenger_share,
            arbitration_config=self.args.arbitration,
        )
        self.client = TestClient(create_app(settings, clock=lambda: self.clock))
        self.client.__enter__()
        frozen = Settings(
            database_url=self.url,
            tracking_uri=self.tracking_uri,
            reload_interval_s=0,
            random_seed=self.args.seed,
            online_learning=False,
            exploration_rate=0.0,
            model_alias=FROZEN,
            served_log_dir=None,
            arbitration_config=self.args.arbitration,
        )
        self.frozen_client = TestClient(create_app(frozen, clock=lambda: self.clock))
        self.frozen_client.__enter__()
        return self.client

    def services(self, client: TestClient) -> Services:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        return services

    def serve(self, account: str, _: int) -> tuple[str, str] | None:
        """The service's top action for ``account`` now (logged as served); what it could
        have served is kept in ``servable``."""
        svc = self.services(self.client)
        activity = account_activity(svc, account, self.clock)
        self.servable = None
        answer = self.client.get(
            f"/v1/accounts/{account}/recommendations",
            params={"k": 1},
            headers={"Authorization": f"Bearer {self.key}"},
        )
        actions = answer.json().get("actions") or []
        if answer.status_code != 200 or not actions or not actions[0].get("contact_id"):
            return None
        if activity is not None:  # read with the history the answer was decided on
            self.servable = svc.scorer.servable_actions(
                account,
                self.clock,
                data_version=activity.data_version,
                served=served_recent(activity),
                dismissed=dismissed_recent(activity),
            )
        return str(actions[0]["content_id"]), str(actions[0]["contact_id"])

    def frozen(self, account: str, _: int) -> tuple[str, str] | None:
        """The frozen champion's greedy top action (scored, not logged: its decisions are
        counterfactual)."""
        svc = self.services(self.frozen_client)
        activity = account_activity(svc, account, self.clock)
        if activity is None:
            return None
        # the request path's own scoring (the account's stored feature state, not its rows
        # read and its features computed again: that cost 90 % of the loop's deciding)
        result = score(svc, account, self.clock, k=1, explore=False, activity=activity)
        if not result.actions or not result.actions[0].action.contact_id:
            return None
        return result.actions[0].action.content_id, result.actions[0].action.contact_id

    def sync_stages(self, run: Run, *, since: pd.Timestamp) -> int:
        """Loads the CRM's stage records from ``since`` to the clock into the store, as a
        CRM sync (``nba load`` of a stages export) would; returns how many."""
        stages = recorded_stages(
            run.world, run.records, since_ns=int(since.value), before_ns=int(self.clock.value)
        )
        if len(stages):
            tax = run.world.taxonomy
            empty = {name: empty_table(name, tax) for name in ("accounts", "contacts", "content")}
            data = JourneyData(
                touchpoints=empty_table("touchpoints", tax),
                stages=stages,
                exposures=empty_table("exposures", tax),
                **empty,
            )
            self.services(self.client).store.load_data(data)
        return len(stages)

    def post_events(self, records: list[dict[str, Any]]) -> int:
        accepted = 0
        for i in range(0, len(records), EVENT_BATCH):
            answer = self.client.post(
                "/v1/events",
                json={"events": records[i : i + EVENT_BATCH]},
                headers={"Authorization": f"Bearer {self.key}"},
            )
            accepted += int(answer.json().get("accepted", 0))
        return accepted

    def retrain(
        self,
        sender: ServiceSender,
        positions: dict[str, int],
        organic: dict[tuple[str, str], list[int]],
    ) -> dict[str, Any]:
        """``nba train next-content --store`` then ``nba promote next-content --store``
        (with ``--promote-first`` the other way round, the promotion only when a newcomer
        awaits); the service reloads what the alias points to."""
        started = time.perf_counter()
        before = self.services(self.client).scorer.models.versions.get(NEXT_CONTENT)
        arbitration = (
            [] if self.args.arbitration is None else ["--arbitration", str(self.args.arbitration)]
        )

        def train() -> subprocess.CompletedProcess[str]:
            return _nba(["train", "next-content", "--store", self.url, "--json"], self.env)

        def promote() -> subprocess.CompletedProcess[str]:
            return _nba(["promote", "next-content", "--store", self.url, *arbitration], self.env)

        promoted: subprocess.CompletedProcess[str] | None
        challenged: subprocess.CompletedProcess[str] | None = None
        if self.args.promote_first:
            # the newcomer of the retrain before, judged on the decisions served since
            promoted = promote() if self.newcomer else None
            trained = train()
            if trained.returncode == 0 and self.args.challenger_share > 0:
                # on trial until its judgement: its own pick in a share of the decisions
                challenged = _nba(["challenge", "next-content"], self.env)
        else:
            trained = train()
            promoted = promote()
        self.newcomer = trained.returncode == 0
        self.services(self.client).holder.reload_if_moved()
        after = self.services(self.client).scorer.models.versions.get(NEXT_CONTENT)
        self._timed("retrain", started)
        judged = promoted is not None and promoted.returncode == 0
        metrics, picks = _promotion_run(self.tracking_uri) if judged else ({}, None)
        truth = (
            None if picks is None else true_values_of_picks(picks, sender.truth, positions, organic)
        )
        return {
            "trained": trained.returncode == 0,
            # why a retrain failed (its promotion then judges the previous newcomer again)
            "train_said": []
            if trained.returncode == 0
            else trained.stderr.strip().splitlines()[-3:],
            # None: no promotion ran (--promote-first's first retrain has no newcomer)
            "promote_exit": None if promoted is None else promoted.returncode,
            "promote_said": []
            if promoted is None
            else (promoted.stdout + promoted.stderr).strip().splitlines()[-4:],
            # what `nba challenge` said (None: no trial started)
            "challenge_said": None
            if challenged is None
            else (challenged.stdout + challenged.stderr).strip().splitlines()[-2:],
            "champion_before": before,
            "champion_after": after,
            "moved": before != after,
            "dr": [
                metrics.get("log.challenger.dr"),
                metrics.get("log.challenger.dr_low"),
                metrics.get("log.challenger.dr_high"),
            ],
            "champion_policy": [
                metrics.get("log.champion.dr"),
                metrics.get("log.champion.dr_low"),
                metrics.get("log.champion.dr_high"),
            ],
            "champion_served": [
                metrics.get("log.champion.served"),
                metrics.get("log.champion.served_low"),
                metrics.get("log.champion.served_high"),
            ],
            "difference": [
                metrics.get("log.difference"),
                metrics.get("log.difference_low"),
                metrics.get("log.difference_high"),
            ],
            "decisions": metrics.get("log.decisions"),
            # the true values on the judged decisions (the world's response model)
            "true_on_judged": truth,
        }


def _fresh_out(out: Path) -> Path:
    """``out``, created; an error when it already holds something: two runs in one
    directory would share a store and a registry, each serving the other's accounts."""
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"--out {out}: the directory is not empty; give each run its own")
    out.mkdir(parents=True, exist_ok=True)
    return out


def run_loop(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark; returns its JSON."""
    out = _fresh_out(Path(args.out))
    loop = Loop(args, out)
    started = time.perf_counter()
    run, first = _history(args)
    loop._timed("simulate_history", started)
    frozen_versions = loop.setup(run, first)
    loop.clock = first
    loop.open()
    sender = ServiceSender(serve=loop.serve, frozen=loop.frozen, eligible=lambda: loop.servable)
    # the informed reference's evidence: the history's content touchpoints, then each week's
    sender.count(run.world, loop.history["account_id"], loop.history["content_id"])
    weeks: list[dict[str, Any]] = []
    decided: list[WeekValues] = []  # every week's decisions, for the last weeks' figures
    promotions: list[dict[str, Any]] = []
    loaded = 0  # touchpoints of the loop sent so far
    # the world's own response-type touches per (contact, item): what a reward counts
    # besides the answers to the service
    organic: dict[tuple[str, str], list[int]] = {}
    try:
        for w in range(args.weeks):
            week_start = first + pd.Timedelta(weeks=w)
            loop.clock = week_start + pd.Timedelta(hours=9)
            sender.decide_ns = int(loop.clock.value)
            started = time.perf_counter()
            step_week(run, send=sender)
            loop._timed("decide", started)
            values: WeekValues = sender.values
            loop.clock = week_start + pd.Timedelta(days=7) - pd.Timedelta(seconds=1)
            started = time.perf_counter()
            events = new_touchpoints(
                run.world, run.records, before_ns=int(loop.clock.value), first_id=loaded
            )
            loaded += len(events)
            organic_touches(events, organic)
            week_events = events + values.responses  # the world's touchpoints and the answers
            sender.count(
                run.world,
                [e["account_id"] for e in week_events],
                [e.get("content_id") for e in week_events],
            )
            loop.post_events(week_events)
            loop.sync_stages(run, since=week_start)
            posteriors = loop.services(loop.client).posteriors
            if posteriors is not None:  # the week's rewards, read as a worker's refresh would
                posteriors.refresh()
            loop._timed("events", started)
            weeks.append({"week": w + 1, **values.summary()})
            decided.append(dataclasses.replace(values, responses=[]))
            if (w + 1) % args.retrain_every == 0 and w + 1 < args.weeks:
                promotions.append(
                    {
                        "after_week": w + 1,
                        **loop.retrain(sender, content_positions(run.world), organic),
                    }
                )
            # what is known so far, for a run cut short
            progress = {"weeks": weeks, "promotions": promotions, "seconds": loop.seconds}
            (out / "progress.json").write_text(json.dumps(progress, indent=1))
    finally:
        loop.frozen_client.__exit__(None, None, None)
        loop.client.__exit__(None, None, None)
    last = shares_of_oracles(decided[-args.retrain_every :])
    return {
        "benchmark": "closed_loop",
        "accounts": args.accounts,
        "seed": args.seed,
        "profile": args.profile,
        "world": args.world,
        "history_months": args.history_months,
        "online_learning": not args.no_online,
        "prior_strength": args.prior_strength,
        "draw_share": args.draw_share,
        "arbitration": None if args.arbitration is None else str(args.arbitration),
        "equal_values": args.equal_values,
        "promote_first": args.promote_first,
        "challenger_share": args.challenger_share,
        "first_decision": first.isoformat(),
        "frozen_versions": frozen_versions,
        "initial_forced": True,
        "weeks": weeks,
        "last_weeks": last,
        "promotions": [_judge(p, weeks, args.retrain_every) for p in promotions],
        "targets": _targets(weeks, promotions, args.retrain_every, last),
        # what the first model's online posterior saw over the run
        "posterior": _posterior_seen(loop.url, run, frozen_versions.get(NEXT_CONTENT, "")),
        "seconds": loop.seconds,
        "machine": machine(),
    }


def _posterior_seen(url: str, run: Run, version: str) -> dict[str, float]:
    """:func:`posterior_spread` of the next-content ``version``'s online posterior."""
    store = Store(url, run.world.taxonomy)
    try:
        return posterior_spread(store.posterior_counts(version))
    finally:
        store.dispose()


def _mean(weeks: list[dict[str, Any]], name: str) -> float | None:
    """The decision-weighted mean true value of ``name`` over ``weeks``."""
    pairs = [(w[name][0], w["decisions"]) for w in weeks if w.get(name)]
    n = sum(d for _, d in pairs)
    return round(sum(v * d for v, d in pairs) / n, 5) if n else None


def _judge(p: dict[str, Any], weeks: list[dict[str, Any]], every: int) -> dict[str, Any]:
    """The promotion with the served policy's true value in the weeks before and after it,
    and its estimates checked against the truth on the decisions it judged, in the
    reward's terms (a response or the item's organic touch, ``true_on_judged``): whether
    the challenger's DR interval covers the challenger's true value, the champion's
    interval what was served, the champion policy's DR interval that policy's true value,
    the paired difference's interval the true difference (against the champion's own
    policy when the promotion valued it, else against what was served), and whether the
    challenger truly beats that bar."""
    at = p["after_week"]
    before = _mean(weeks[at - every : at], "served")
    after = _mean(weeks[at : at + every], "served")
    truth = p.get("true_on_judged") or {}
    challenger, served = truth.get("challenger_reward"), truth.get("served_reward")
    # the bar the promotion held the challenger against: the champion's own policy when it
    # was valued, else what was served
    own = truth.get("champion") is not None
    bar = truth.get("champion_reward") if own else served
    gap = challenger - bar if challenger is not None and bar is not None else None

    def covers(estimate: list[float | None], value: float | None) -> bool | None:
        if value is None or estimate[1] is None or estimate[2] is None:
            return None
        return bool(estimate[1] <= value <= estimate[2])

    return {
        **p,
        "true_before": before,
        "true_after": after,
        "dr_covers_truth": covers(p["dr"], challenger),
        "champion_covers_truth": covers(p["champion_served"], served),
        "champion_policy_covers_truth": covers(
            p.get("champion_policy") or [None] * 3, truth.get("champion_reward")
        ),
        "difference_covers_truth": covers(p.get("difference") or [None] * 3, gap),
        "challenger_truly_better": (
            truth["challenger"] > truth["champion" if own else "served"]
            if truth.get("challenger") is not None
            else None
        ),
    }


def _targets(
    weeks: list[dict[str, Any]],
    promotions: list[dict[str, Any]],
    every: int,
    last: dict[str, dict[str, list[float] | None]],
) -> dict[str, Any]:
    """The issue's targets; ``last`` is :func:`shares_of_oracles` of the last ``every``
    weeks."""
    served = _mean(weeks[-every:], "served")
    judged = [_judge(p, weeks, every) for p in promotions]
    moved = [j for j in judged if j["moved"]]
    checked = [j for j in judged if j["dr_covers_truth"] is not None]

    def share_target(objective: str) -> dict[str, Any] | None:
        share = last[objective]["served_share"]
        if share is None:
            return None
        return {"value": share[0], "interval": share[1:], "at_least": 0.9, "met": share[0] >= 0.9}

    return {
        "served_last_weeks_share_of_oracle": share_target("response"),
        # the same in the service's own objective (response x item value) against the
        # oracle of that objective
        "served_last_weeks_share_of_oracle_ev": share_target("value"),
        "served_rises": {
            "first_weeks": _mean(weeks[:every], "served"),
            "last_weeks": served,
            "met": bool(served and served > (_mean(weeks[:every], "served") or 0)),
        },
        # on the decisions each promotion judged: the newcomer's true value against what
        # the champion served there (paired, exact), and the weeks around it as context
        "no_promotion_lowers_true_value": {
            "promotions_moved": len(moved),
            "lowered": sum(j["challenger_truly_better"] is False for j in moved),
            "refused_truly_better": sum(
                bool(j["challenger_truly_better"]) for j in judged if not j["moved"]
            ),
            "met": all(j["challenger_truly_better"] for j in moved) if moved else None,
        },
        # every judged challenger, moved or not: does its DR interval cover its true value?
        "promotion_intervals_cover_truth": {
            "covered": sum(bool(j["dr_covers_truth"]) for j in checked),
            "of": len(checked),
            "champion_covered": sum(bool(j["champion_covers_truth"]) for j in checked),
            "champion_policy_covered": sum(
                bool(j["champion_policy_covers_truth"]) for j in checked
            ),
            "difference_covered": sum(bool(j["difference_covers_truth"]) for j in checked),
            "met": all(j["dr_covers_truth"] for j in checked) if checked else None,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--weeks", type=int, default=26)
    parser.add_argument("--retrain-every", type=int, default=4)
    parser.add_argument("--history-months", type=int, default=12)
    parser.add_argument("--profile", choices=["realistic", "legacy"], default="realistic")
    parser.add_argument(
        "--world",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a simulation parameter of the world, e.g. crm_early_record_share=1 (repeatable)",
    )
    parser.add_argument("--no-online", action="store_true", help="learning between retrains off")
    parser.add_argument("--out", default="closed-loop")
    parser.add_argument(
        "--prior-strength",
        type=float,
        default=Settings.model_fields["online_prior_strength"].default,
        help="the online posterior's prior strength in decisions (NBA_ONLINE_PRIOR_STRENGTH)",
    )
    parser.add_argument(
        "--draw-share",
        type=float,
        default=Settings.model_fields["online_draw_share"].default,
        help="share of decisions whose top slot is drawn from the posterior "
        "(NBA_ONLINE_DRAW_SHARE)",
    )
    parser.add_argument(
        "--arbitration", type=Path, default=None, help="the service's arbitration policy file"
    )
    parser.add_argument(
        "--equal-values",
        action="store_true",
        help="a response-only service: every catalog item valued 1 in the store",
    )
    parser.add_argument(
        "--promote-first",
        action="store_true",
        help="each retrain first judges the newcomer of the retrain before (on the decisions "
        "served since), then trains the next",
    )
    parser.add_argument(
        "--challenger-share",
        type=float,
        default=Settings.model_fields["challenger_share"].default,
        help="with --promote-first, each newcomer is on trial (nba challenge) until its "
        "judgement: its own pick in this share of the decisions (NBA_CHALLENGER_SHARE; 0: "
        "no trial, judged on the champion's exploration alone)",
    )
    args = parser.parse_args()
    print(json.dumps(run_loop(args), indent=1))


if __name__ == "__main__":
    main()
