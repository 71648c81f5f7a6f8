"""A next-content challenger judged on the service's own log before promotion.

The log is the decisions the service served (exposures with a ``policy``: what ``nba
export`` and ``nba train --store`` read from the store), exploration included, each with the
exact propensity it was served with. Only top slots count (``position`` 1): the challenger's
policy is a top-1 pick, and a lower slot's propensity is that of another event. Each decision
is taken with the account's point-in-time features as of the decision's day (UTC midnight:
what the service knew when it decided, not the monthly training grid, which ends a label
horizon before the data end and so would leave the newest decisions out), its eligible items
those fitting the CRM phase at the time plus the item served (the service decided on the
predicted phase), and its reward a response within the response window. Only decisions whose
response window has closed by the end of the data count: a younger decision is not judged
yet (its missing response would read as a failure).

Only decisions after what the challenger learned from count (its last training or validation
as-of date plus the exposure window, from its run's tags): a model valued on its own
training rows would look better than it is.

The challenger's top-1 policy is the pick the service would serve with it: the item of
highest expected value as ``models.arbitration`` ranks, P(response) x the item's value x its
phase fit under the champion phase model's probabilities on the decision day x role fit x
the churn lever at the champion churn model's risk, among the items the arbitration's
phase and role rules let through (:func:`service_ranking`; the contact policy, recent
consumption and the online posterior are left out). Where the log holds what the service
could serve at the decision (the exposure's ``servable``: every action its rules and caps
let through then), the challenger chooses among exactly those: a pick the service could not
have served has no logged evidence, so its value would be the reward model's alone, and a
policy deployed with the challenger would not serve it either. Without a champion phase and churn
model it ranks by P(response) x value among the items fitting the CRM phase and listing
the contact's role. It is valued off-policy on those decisions (IPS, SNIPS
and DR with 95 % intervals, ``training.ope``) beside the champion model's own top-1 policy,
decided the same way and valued on the same decisions with the same reward model (the
champion's predictions recalibrated on the log, ``training.served_policy.judge``), and
beside the value of what the service served (the observed mean reward: on-policy, its
importance weights are 1). The served value is not the bar: it paid for exploration, so
a copy of the champion would beat it. The alias moves only when the paired difference
(challenger DR minus the champion policy's DR, decision by decision, its 95 % interval over
resampled accounts) is above 0 at its lower bound: a challenger that ties the champion
loses. Without a champion model to compare with, the challenger's DR lower bound must beat
the served value. ``--force`` moves it anyway, tagged. The comparison is logged as an MLflow
run in the model's experiment and on the version's tags, with every judged decision's served
item, the challenger's pick and the champion's as the run's artifact :data:`PICKS_ARTIFACT`.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric

from features.attributes import NO_FITTED_ATTRIBUTES, FittedAttributes
from features.errors import InvalidInputError
from features.schema import RESPONSE_WINDOW_DAYS, JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import to_utc
from models import churn, phase
from models import next_content as nc
from models.contract import CHAMPION
from training.datasets import data_end
from training.next_content import EXPOSURE_WINDOW_DAYS, next_content_rows
from training.ope import (
    Estimate,
)
from training.outcome_sets import features_at_keys
from training.registry import load_version
from training.result import registered_name
from training.tracking import FORCED_TAG, champion_version

MIN_DECISIONS = 20
LOG_TAG_PREFIX = "nba.log_promotion."
# The comparison run's artifact: per judged decision, what was served and what the
# challenger would have served (an audit trail, and how a simulation checks the estimate
# against the truth).
PICKS_ARTIFACT = "served_log/challenger_picks.csv"
PICK_COLUMNS = (
    "exposure_id",
    "account_id",
    "contact_id",
    "ts",
    "served_content_id",
    "challenger_content_id",
    # the role of the contact the challenger addresses ("" unknown; empty when it keeps the
    # served contact) and its probability of serving what was served (1 / the number of the
    # account's contacts of that role when it picks the served action, else 0)
    "challenger_role",
    "challenger_propensity",
    # the same for the champion model's own pick ("" and NaN without a champion model)
    "champion_content_id",
    "champion_role",
    "champion_propensity",
    "propensity",
    "reward",
)


class ServedLogError(InvalidInputError):
    """The data hold too few served decisions to judge a challenger on."""


# The columns served_decisions adds with the service's models: its phase probabilities (one
# per taxonomy phase, in taxonomy order) and its calibrated churn risk at each decision.
PHASE_PROBA_PREFIX = "service.phase_proba."
CHURN_RISK_COLUMN = "service.churn_risk"
# A judged decision's servable actions as logged (the exposures' JSON; missing: not known).
SERVABLE_COLUMN = "servable"


@dataclass(frozen=True)
class ServiceModels:
    """The champion phase and churn models the service ranked with (and the churn run's
    params, which hold its calibration): what the challenger's policy needs to rank as
    the service would."""

    phase: Any
    churn: Any
    churn_params: dict[str, str]


def load_service_models() -> ServiceModels | None:
    """The champion phase and churn models the service ranks with; None when the registry
    lacks either (the challenger is then judged on the CRM phase)."""
    client = MlflowClient()
    loaded = {}
    for model in ("phase", "churn"):
        name = registered_name(model)
        version = champion_version(name)
        if version is None:
            return None
        run_id = client.get_model_version(name, version).run_id
        params = dict(client.get_run(str(run_id)).data.params) if run_id else {}
        loaded[model] = (load_version(name, version), params)
    return ServiceModels(
        phase=loaded["phase"][0], churn=loaded["churn"][0], churn_params=loaded["churn"][1]
    )


@dataclass(frozen=True)
class LogJudgement:
    """The challenger's policy value on the served log, the value of what was served and,
    when a champion model was given, the champion's own policy's value."""

    decisions: int
    ips: Estimate
    snips: Estimate
    dr: Estimate
    # the value of what the service served (the observed mean reward)
    champion: Estimate
    # the challenger's DR minus the bar, decision by decision (its interval resamples the
    # same accounts for both: tighter than the two apart); the bar is the champion's own
    # policy when known, else what was served
    difference: Estimate | None = None
    # the DR value of the champion model's own top-1 policy on the same decisions
    champion_policy: Estimate | None = None
    # one row per judged decision (PICK_COLUMNS); empty when not known
    picks: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(PICK_COLUMNS)), compare=False
    )

    @property
    def beats_champion(self) -> bool:
        """With the champion's own policy valued: the paired difference's lower bound is
        above 0 (a tie loses). Without it: the challenger's DR lower bound is above the
        served value."""
        if self.champion_policy is not None and self.difference is not None:
            return self.difference.low > 0.0
        return self.dr.low > self.champion.value

    @property
    def bar(self) -> str:
        """What the challenger was held against, in words."""
        if self.champion_policy is not None:
            return "the champion's own policy (paired difference above 0)"
        return "the champion's served value (DR lower bound above it)"

    def metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow."""
        out = {"log.decisions": float(self.decisions)}
        for name, e in (
            ("challenger.ips", self.ips),
            ("challenger.snips", self.snips),
            ("challenger.dr", self.dr),
            ("champion.served", self.champion),
            *((("champion.dr", self.champion_policy),) if self.champion_policy is not None else ()),
            *((("difference", self.difference),) if self.difference is not None else ()),
        ):
            out |= {f"log.{name}": e.value, f"log.{name}_low": e.low, f"log.{name}_high": e.high}
        return out

    def format(self) -> str:
        def show(e: Estimate) -> str:
            return f"{e.value:.4f} [{e.low:.4f}, {e.high:.4f}]"

        against = "served" if self.champion_policy is None else "champion policy"
        return (
            f"on {self.decisions:,} decisions the service served (top slot, exploration "
            f"included): challenger IPS {show(self.ips)}, SNIPS {show(self.snips)}, DR "
            f"{show(self.dr)}; champion's served value {show(self.champion)}"
            + (
                ""
                if self.champion_policy is None
                else f"; champion's own policy DR {show(self.champion_policy)}"
            )
            + (
                ""
                if self.difference is None
                else f"; challenger - {against} (DR, paired) {show(self.difference)}"
            )
        )


def learned_until(run_tags: dict[str, str]) -> pd.Timestamp | None:
    """The end of what a next-content version learned from: its last training or validation
    as-of date (the run's ``nba.as_of.*`` tags), or, for a model fitted again on every
    split, its last as-of date of all (``nba.as_of.learned``), plus the exposure window.
    None when the run does not say."""
    dates: list[pd.Timestamp] = []
    splits = ("learned",) if run_tags.get("nba.as_of.learned") else ("train", "valid")
    for split in splits:
        tag = run_tags.get(f"nba.as_of.{split}", "")
        dates += [to_utc(d) for d in tag.replace("..", ",").split(",") if d]
    return max(dates) + pd.Timedelta(days=EXPOSURE_WINDOW_DAYS) if dates else None


def served_decisions(
    data: JourneyData,
    taxonomy: Taxonomy,
    *,
    after: pd.Timestamp | None = None,
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES,
    models: ServiceModels | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """The next-content rows of the service's top-slot decisions (see the module docstring)
    made at or after ``after`` (the end of what the challenger learned from: it is judged on
    decisions it did not see) whose response window has closed by :func:`data_end`, and the
    model's feature columns. With the service's ``models``, each row also holds their
    answers on the decision day's features (:data:`PHASE_PROBA_PREFIX` columns and
    :data:`CHURN_RISK_COLUMN`). Raises :class:`ServedLogError` with fewer than
    :data:`MIN_DECISIONS`."""
    ex = data.exposures
    ts = ex["ts"]
    closed_before = data_end(data) - pd.Timedelta(days=RESPONSE_WINDOW_DAYS)
    keep = ex["policy"].notna() & (ex["position"] == 1) & (ts <= closed_before)
    if after is not None:
        keep &= ts >= after
    decided = ex.loc[keep.to_numpy()].reset_index(drop=True)
    if len(decided) < MIN_DECISIONS:
        since = "" if after is None else f" from {after.date()} on (after its training data)"
        raise ServedLogError(
            f"exposures: {len(decided)} top-slot decisions of the service (policy set, "
            f"position 1){since} whose {RESPONSE_WINDOW_DAYS}-day response window closed by "
            f"{closed_before + pd.Timedelta(days=RESPONSE_WINDOW_DAYS)}; expected at least "
            f"{MIN_DECISIONS} to judge a challenger on the served log"
        )
    keys = pd.DataFrame(
        {"account_id": decided["account_id"].astype(str), "as_of": decided["ts"].dt.floor("D")}
    ).drop_duplicates()
    features = features_at_keys(data, keys, taxonomy, attributes=attributes)
    # A one-day window: each decision pairs with its own day's feature row.
    frame = next_content_rows(
        dataclasses.replace(data, exposures=decided), taxonomy, features, window_days=1
    )
    if models is not None:
        frame = _with_service_answers(frame, features, models, taxonomy)
    if SERVABLE_COLUMN in decided:
        logged = decided.set_index(decided["exposure_id"].astype(str))[SERVABLE_COLUMN]
        servable = frame["exposure_id"].astype(str).map(logged).to_numpy()
        # joined, not inserted: the frame is many columns added one by one already
        frame = pd.concat(
            [frame, pd.DataFrame({SERVABLE_COLUMN: servable}, index=frame.index)], axis=1
        )
    return frame, nc.feature_columns(taxonomy)


def _with_service_answers(
    frame: pd.DataFrame, features: pd.DataFrame, models: ServiceModels, taxonomy: Taxonomy
) -> pd.DataFrame:
    """``frame`` with the service models' phase probabilities and churn risk on each
    decision day's features."""
    n_phases = len(taxonomy.phases)
    answers = pd.DataFrame({"account_id": features["account_id"], "as_of": features["as_of"]})
    proba = phase.predict_proba(models.phase, features, n_classes=n_phases)
    for j, name in enumerate(taxonomy.phases):
        answers[PHASE_PROBA_PREFIX + name] = proba[:, j]
    answers[CHURN_RISK_COLUMN] = churn.calibrate(
        churn.predict_proba(models.churn, features), models.churn_params
    )
    keyed = frame[["account_id", "as_of"]].merge(answers, on=["account_id", "as_of"], how="left")
    return pd.concat([frame, keyed.drop(columns=["account_id", "as_of"])], axis=1)


@dataclass(frozen=True)
class LogPromotion:
    """What ``nba promote next-content`` did on a served log."""

    registered_name: str
    challenger_version: str
    champion_version: str | None
    judgement: LogJudgement
    promoted: bool
    forced: bool
    run_id: str

    def format(self) -> str:
        champion = f"v{self.champion_version}" if self.champion_version else "(none)"
        bar = self.judgement.bar
        verdict = f"beats {bar}" if self.judgement.beats_champion else f"does not beat {bar}"
        if self.forced:
            verdict += f"; promoted by --force (tagged {FORCED_TAG}=true)"
        action = "promoted" if self.promoted else "kept"
        return (
            f"{self.registered_name}: challenger v{self.challenger_version} vs champion "
            f"{champion} -> {action}: {verdict}\n  {self.judgement.format()}\n"
            f"  comparison logged as MLflow run {self.run_id}"
        )


def promote_on_log(
    challenger: str,
    judgement: LogJudgement,
    *,
    force: bool = False,
) -> LogPromotion:
    """Move the next-content ``champion`` alias to version ``challenger`` when ``judgement``
    says it beats the champion (or ``force``: then tagged ``nba.forced=true``); log the
    comparison as a run in the model's experiment and as tags on the challenger version."""
    name = registered_name("next-content")
    current = champion_version(name)
    promoted = force or judgement.beats_champion
    forced = promoted and not judgement.beats_champion
    client = MlflowClient()
    # The client alone, not mlflow.set_experiment: that would leave the process's active
    # experiment set, and a later training run in the same process could not start.
    experiment = client.get_experiment_by_name(name)
    experiment_id = (
        experiment.experiment_id if experiment is not None else client.create_experiment(name)
    )
    run = client.create_run(
        experiment_id,
        run_name=f"promotion-on-log-v{challenger}",
        tags={
            "nba.promotion": "served-log",
            "nba.challenger_version": challenger,
            "nba.champion_version": current or "",
            "nba.promoted": str(promoted).lower(),
            FORCED_TAG: str(forced).lower(),
        },
    )
    stamp = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, float(v), stamp, 0) for k, v in judgement.metrics().items()],
    )
    if len(judgement.picks):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(PICKS_ARTIFACT).name
            judgement.picks.to_csv(path, index=False)
            client.log_artifact(run.info.run_id, str(path), str(Path(PICKS_ARTIFACT).parent))
    client.set_terminated(run.info.run_id)
    for key, value in {
        "run_id": run.info.run_id,
        "dr_low": f"{judgement.dr.low:.6f}",
        "champion_value": f"{judgement.champion.value:.6f}",
        **(
            {"champion_policy_dr": f"{judgement.champion_policy.value:.6f}"}
            if judgement.champion_policy is not None
            else {}
        ),
        **(
            {"difference_low": f"{judgement.difference.low:.6f}"}
            if judgement.difference is not None
            else {}
        ),
        "decisions": str(judgement.decisions),
    }.items():
        client.set_model_version_tag(name, challenger, LOG_TAG_PREFIX + key, value)
    if promoted and current != challenger:
        client.set_registered_model_alias(name, CHAMPION, challenger)
    if forced:
        client.set_model_version_tag(name, challenger, FORCED_TAG, "true")
    return LogPromotion(name, challenger, current, judgement, promoted, forced, run.info.run_id)
