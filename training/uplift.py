"""Training and judging the next-action model of data with a "no action" control.

The model (``models.next_content``'s classifier; "no action" is one more arm, so one model
learns every arm's reward: an S-learner) predicts whether a decision's reward is positive.
The predicted reward of an arm is that probability, times, for a ``value`` reward, the arm's
mean value when positive (training split, shrunk towards the overall mean by
``VALUE_PRIOR_ROWS`` rows). **Uplift** of an action is its predicted reward minus that of no
action in the same decision; the learned policy takes the action of highest uplift, or none
when no uplift is positive.

Judged off-policy (``training.ope``: IPS, SNIPS and DR, 95 % intervals) on the test split
against each single action (no action included), random and the logging policy; the peer is
the best single action on the same split (``training.ope.best_single_action``). The gate
(``ModelResult.gate``) compares the DR value on the validation split with the stronger of
the best single action and the logging policy there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.attributes import NO_FITTED_ATTRIBUTES, FittedAttributes
from features.schema import NO_ACTION_CONTENT_ID, JourneyData
from features.taxonomy import Taxonomy
from models import next_content as nc
from models.contract import ARM_VALUES_PARAM, CONTROL_PARAM
from training.datasets import TrainingSet, TrainingSetError
from training.next_action import (
    REWARD_COLUMN,
    NextActionSet,
    build_next_action_set,
    has_control,
)
from training.next_content import (
    build_next_content_set,
    has_served_log,
    paired_next_content,
    score_next_content,
    train_next_content,
)
from training.ope import (
    GATE_METRIC,
    LOGGING,
    MODEL,
    RANDOM,
    Estimate,
    LoggedDecisions,
    PolicyValue,
    best_single_action,
    compare_policies,
    gate_of,
    paired_difference,
)
from training.policy import DECISION_PHASE_COLUMN, phase_codes
from training.result import Evaluation, Gate, ModelResult
from training.reward import Reward

PRIMARY_METRIC = "model.dr_value"
COMPARISON_ARTIFACT = "comparison.json"
VALUE_PRIOR_ROWS = 10.0


def arm_values(ts: NextActionSet) -> np.ndarray:
    """Per catalog item: its mean reward among the positive training decisions that took it,
    shrunk towards the overall positive mean (all 1 for a response reward)."""
    n_items = len(ts.catalog)
    if ts.reward.kind == "response":
        return np.ones(n_items)
    train = ts.split.train
    positive = train[REWARD_COLUMN].to_numpy() > 0
    arm = _arm_positions(ts, train["content_id"])[positive]
    value = train[REWARD_COLUMN].to_numpy()[positive]
    overall = float(value.mean())
    sums = np.bincount(arm, weights=value, minlength=n_items)
    counts = np.bincount(arm, minlength=n_items)
    return (sums + VALUE_PRIOR_ROWS * overall) / (counts + VALUE_PRIOR_ROWS)


def _arm_positions(ts: NextActionSet, content_ids: pd.Series) -> np.ndarray:
    index = pd.Index(ts.catalog["content_id"].astype(str))
    return np.asarray(index.get_indexer(pd.Index(content_ids.astype(str))), dtype=np.int64)


def _require_two_classes(ts: NextActionSet) -> None:
    """Refuses a split whose decisions' rewards are all positive or all not."""
    for part in ("train", "valid", "test"):
        y = getattr(ts.split, part)[ts.label_column].to_numpy()
        if len(np.unique(y)) < 2:
            state = "no decision" if len(y) == 0 or y.max() == 0 else "every decision"
            raise TrainingSetError(
                f"next-action {part} split ({len(y)} decisions, {ts.split_rule} split): "
                f"{state} has a positive {ts.reward.kind}; expected both rewarded and "
                "unrewarded decisions (more data, or other reward event types)"
            )


def logged_decisions(
    estimator: Any, ts: NextActionSet, rows: pd.DataFrame, values: np.ndarray, taxonomy: Taxonomy
) -> LoggedDecisions:
    """The decisions of ``rows`` with the model's predicted reward of every arm (P(positive)
    x the arm's value) and the arms each could take (the items fitting the CRM phase at the
    decision, and always no action)."""
    catalog = ts.catalog
    eligible = nc.eligible_items(
        catalog, phase_codes(rows[DECISION_PHASE_COLUMN], taxonomy), taxonomy
    )
    eligible[:, ts.control] = True
    wanted = [*nc.account_input_columns(taxonomy), *ts.feature_columns]
    account_cols = [
        c for c in dict.fromkeys(wanted) if c in rows.columns and c not in nc.CANDIDATE_COLUMNS
    ]
    p = nc.score_candidates(
        estimator,
        rows[account_cols].reset_index(drop=True),
        rows["contact_role"].reset_index(drop=True),
        catalog,
        taxonomy,
        ts.feature_columns,
        eligible=eligible,
    )
    return LoggedDecisions(
        q=p * values[None, :],
        eligible=eligible,
        logged=_arm_positions(ts, rows["content_id"]),
        propensity=rows["propensity"].to_numpy(dtype=np.float64),
        reward=rows[REWARD_COLUMN].to_numpy(dtype=np.float64),
        actions=catalog["content_id"].astype(str).tolist(),
        groups=rows["account_id"].astype(str).to_numpy(),
    )


def policy_pick(d: LoggedDecisions, control: int) -> np.ndarray:
    """Per decision the arm of highest uplift over ``control``; the control itself when no
    eligible action's uplift is positive."""
    uplift = np.where(d.eligible, d.q - d.q[:, [control]], -np.inf)
    uplift[:, control] = 0.0  # doing nothing gains nothing, and wins ties
    pick = np.full(len(uplift), control, dtype=np.int64)
    best = uplift.argmax(axis=1)
    better = uplift[np.arange(len(uplift)), best] > 0
    pick[better] = best[better]
    return pick


def evaluate(
    estimator: Any, ts: NextActionSet, rows: pd.DataFrame, values: np.ndarray, taxonomy: Taxonomy
) -> tuple[LoggedDecisions, np.ndarray, dict[str, PolicyValue]]:
    """The decisions of ``rows``, the learned policy's picks and every policy's values."""
    d = logged_decisions(estimator, ts, rows, values, taxonomy)
    pick = policy_pick(d, ts.control)
    return d, pick, compare_policies(d, pick)


def train_uplift(
    ts: NextActionSet, *, params: dict[str, Any] | None = None, taxonomy: Taxonomy, **_: Any
) -> ModelResult:
    """Fit the next-action model (early stopping on validation), fill its gate on the
    validation decisions and value every policy on the test decisions. Trains on this
    machine (a Dask ``client`` among the ignored keywords is not used: the sets are one row
    per decision, small next to the grid's)."""
    _require_two_classes(ts)
    split, cols = ts.split, ts.feature_columns
    y_train = split.train[ts.label_column].to_numpy()
    estimator = nc.fit(
        split.train[cols],
        y_train,
        split.valid[cols],
        split.valid[ts.label_column].to_numpy(),
        params=params,
    )
    values = arm_values(ts)
    valid_values = evaluate(estimator, ts, split.valid, values, taxonomy)[2]
    d, pick, test_values = evaluate(estimator, ts, split.test, values, taxonomy)
    actions = d.actions
    metrics = policy_metrics(test_values, d, pick, ts.control)
    p_test = nc.predict_proba(estimator, split.test[cols])
    y_test = split.test[ts.label_column].to_numpy()
    metrics["model.roc_auc"] = float(roc_auc_score(y_test, p_test))
    metrics["model.best_iteration"] = float(estimator.best_iteration_ or 0)
    gate = gate_of(valid_values, actions)
    comparison = comparison_of(test_values, actions, ts.reward.kind)
    used = {
        **nc.merged_params(params, rows=len(split.train)),
        **ts.reward.to_params(taxonomy),
        CONTROL_PARAM: NO_ACTION_CONTENT_ID,
        ARM_VALUES_PARAM: json.dumps(dict(zip(actions, np.round(values, 6).tolist(), strict=True))),
        "split_rule": ts.split_rule,
    }
    return ModelResult(
        name="next-content",
        estimator=estimator,
        feature_columns=list(cols),
        params=used,
        metrics=metrics,
        primary_metric=PRIMARY_METRIC,
        report_markdown=quality_report(test_values, actions, comparison, gate, ts),
        evaluation=Evaluation(y_true=y_test.astype(np.int64), y_score=p_test),
        input_example=split.test[cols].head(5).reset_index(drop=True),
        training_set_fingerprint=ts.fingerprint,
        as_of_dates=ts.as_of_dates,
        extra_artifacts={COMPARISON_ARTIFACT: json.dumps(comparison)},
        gate=gate,
    )


def score_uplift(estimator: Any, ts: NextActionSet, taxonomy: Taxonomy) -> float:
    """The learned policy's DR value on the test decisions (promotion's metric)."""
    _, _, values = evaluate(estimator, ts, ts.split.test, arm_values(ts), taxonomy)
    return values[MODEL].dr.value


def _who(name: str) -> str:
    """The metrics prefix of a policy: ``model``, ``baseline_random``,
    ``baseline_logging`` or ``baseline_action_<id>`` (id made metric-safe)."""
    if name == MODEL:
        return MODEL
    if name in (RANDOM, LOGGING):
        return f"baseline_{name}"
    return "baseline_action_" + "".join(c if c.isalnum() or c in "_-." else "_" for c in name)


def policy_metrics(
    values: dict[str, PolicyValue], d: LoggedDecisions, pick: np.ndarray, control: int
) -> dict[str, float]:
    """``<who>.<estimator>_value`` with its interval (``_ci_low``/``_ci_high``) of every
    policy, the best single action's and the model's paired DR gain over it, the share of
    decisions the model acts on, and the mean predicted uplift of each action."""
    out: dict[str, float] = {}
    for name, v in values.items():
        for est in ("ips", "snips", "dr"):
            e: Estimate = getattr(v, est)
            out.update(e.as_metrics(f"{_who(name)}.{est}_value"))
    best = best_single_action(values, d.actions)
    gain = paired_difference(values[MODEL], values[best])
    out["baseline_best_action.dr_value"] = values[best].dr.value
    out.update(gain.as_metrics("model.dr_gain_over_best_action"))
    out["model.action_share"] = float((pick != control).mean())
    uplift = d.q - d.q[:, [control]]
    for a, name in enumerate(d.actions):
        if a != control:
            out[f"{_who(name)}.mean_predicted_uplift"] = float(np.nanmean(uplift[:, a]))
    out["decisions"] = float(len(d.logged))
    return out


def comparison_of(
    values: dict[str, PolicyValue], actions: list[str], reward_kind: str
) -> dict[str, Any]:
    """The headline (flat; the example scripts embed it): the model's and the best single
    action's DR values on the test split with their 95 % intervals, the peer's name and the
    verdict (the model at least as good as the peer on the point estimate)."""
    best = best_single_action(values, actions)
    model, peer = values[MODEL].dr, values[best].dr
    return {
        "metric": GATE_METRIC,
        "reward": reward_kind,
        "model": round(model.value, 6),
        "peer": round(peer.value, 6),
        "model_ci": [round(model.low, 6), round(model.high, 6)],
        "peer_ci": [round(peer.low, 6), round(peer.high, 6)],
        "peer_name": f"best single action: {best}",
        "verdict": "model >= peer" if model.value >= peer.value else "model < peer",
    }


def quality_report(
    values: dict[str, PolicyValue],
    actions: list[str],
    comparison: dict[str, Any],
    gate: Gate,
    ts: NextActionSet,
) -> str:
    """Markdown: every policy's IPS, SNIPS and DR values with 95 % intervals (test split),
    the headline and the gate."""

    def cell(e: Estimate) -> str:
        return f"{e.value:.4f} [{e.low:.4f}, {e.high:.4f}]"

    order = [MODEL, *actions, RANDOM, LOGGING]
    label = {
        MODEL: "learned policy (best uplift)",
        RANDOM: "random",
        LOGGING: "logging policy (observed)",
        NO_ACTION_CONTENT_ID: f"always {NO_ACTION_CONTENT_ID} (control)",
    }
    lines = [
        "## Next action (uplift over no action)",
        "",
        f"Reward: {ts.reward.kind} of {', '.join(ts.reward.event_types) or 'default types'} "
        f"within {ts.reward.window_days} days; {ts.split_rule} split, "
        f"{len(ts.split.test)} test decisions. Values per decision, 95 % intervals.",
        "",
        "| policy | IPS | SNIPS | doubly robust |",
        "|---|---|---|---|",
    ]
    for name in order:
        if name in values:
            v = values[name]
            lines.append(
                f"| {label.get(name, f'always {name}')} | {cell(v.ips)} | {cell(v.snips)} | "
                f"{cell(v.dr)} |"
            )
    lines += [
        "",
        f"Model {comparison['model']:.4f} vs {comparison['peer_name']} "
        f"{comparison['peer']:.4f} (DR, test): {comparison['verdict']}. Gate on validation: "
        f"{gate.model:.4f} vs {gate.baseline} {gate.baseline_value:.4f}"
        f"{', difference ' + gate.difference_text if gate.paired else ''} "
        f"({'passed' if gate.passed else 'not passed: a tie' if gate.tied else 'not passed'}).",
    ]
    return "\n".join(lines) + "\n"


def build_next_set(
    data: JourneyData,
    taxonomy: Taxonomy,
    grid_features: Callable[[], pd.DataFrame],
    *,
    reward: Reward,
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES,
) -> TrainingSet:
    """The next-content model's set: the next-action set (decisions, uplift; with the
    custom ``attributes``) when the data log a "no action" control, else the response set of
    the logged exposures on the grid. ``grid_features`` returns the monthly grid's features;
    it is called only for the latter (a next-action set is anchored on the decisions, and
    data with a single campaign moment may have no grid at all). On data holding the
    service's served log the registered model is fitted again on every split
    (:attr:`TrainingSet.refit`)."""
    if has_control(data):
        return build_next_action_set(data, taxonomy, reward=reward, attributes=attributes)
    # The function, not its frame: the set lets the grid go once it has read it. On the
    # service's served log the model registered learns from every split: the test months
    # are the newest decisions, which the promotion judges it after.
    return build_next_content_set(data, taxonomy, grid_features, refit=has_served_log(data))


def train_next(ts: TrainingSet, **kwargs: Any) -> ModelResult:
    """``train_uplift`` for a next-action set, else ``train_next_content``."""
    if isinstance(ts, NextActionSet):
        return train_uplift(ts, **kwargs)
    return train_next_content(ts, **kwargs)


def paired_next(challenger: Any, champion: Any, ts: TrainingSet) -> tuple[float, float, float]:
    """Promotion's bar: the learned policies' DR values on the test decisions, challenger
    minus champion paired decision by decision, for a next-action set; else the response
    ROC-AUC's difference (``paired_next_content``). Each with its 95 % interval."""
    if isinstance(ts, NextActionSet):
        if ts.taxonomy is None:
            raise TrainingSetError("next-action set without its taxonomy; build it with one")
        values = [
            evaluate(m, ts, ts.split.test, arm_values(ts), ts.taxonomy)[2][MODEL]
            for m in (challenger, champion)
        ]
        diff = paired_difference(values[0], values[1])
        return diff.value, diff.low, diff.high
    return paired_next_content(challenger, champion, ts)


def score_next(estimator: Any, ts: TrainingSet) -> float:
    """Promotion's score: the learned policy's DR value for a next-action set, else the
    response ROC-AUC (``score_next_content``)."""
    if isinstance(ts, NextActionSet):
        if ts.taxonomy is None:
            raise TrainingSetError("next-action set without its taxonomy; build it with one")
        return score_uplift(estimator, ts, ts.taxonomy)
    return score_next_content(estimator, ts)
