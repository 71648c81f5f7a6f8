"""The next-content training set, training and evaluation.

Rows are logged exposures: for each as-of date T of the grid, every exposure with
``T <= ts < T + EXPOSURE_WINDOW_DAYS``, paired with the account's features as of T (the
``build_features`` frame passed in, plus ``models.next_content.topic_engagement``), the
shown item's attributes and its fit to the account and contact
(``models.next_content.candidate_features``). Label: a response within
``RESPONSE_WINDOW_DAYS`` of the exposure (a touchpoint of the same account, contact and
content of a response event type). The label window of a row ends at most
``EXPOSURE_WINDOW_DAYS + RESPONSE_WINDOW_DAYS`` = 35 days after T, the horizon purged between
splits.

Evaluation: ROC-AUC of response on the test exposures (the primary metric, which promotion
compares because real data have no truth), and policy values (``training.policy``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from features.memory import release_free_memory
from features.schema import RESPONSE_EVENT_TYPES, RESPONSE_WINDOW_DAYS, JourneyData
from features.simulate.truth import SimulationTruth
from features.taxonomy import Taxonomy
from features.timestamps import NS_PER_DAY, column_ns
from models import next_content as nc
from models.fitting import float32_columns
from training.datasets import TrainingSet, TrainingSetError
from training.metrics import bootstrap_auc, paired_bootstrap, roc_auc, with_intervals
from training.next_content_report import quality_report
from training.ope import LoggedDecisions, compare_policies, gate_of
from training.policy import (
    BOOTSTRAP_SEED,
    DECISION_PHASE_COLUMN,
    POLICY_DECISIONS,
    POLICY_DECISIONS_PARAM,
    Decisions,
    build_decisions,
    decision_sample,
    evaluate_policies,
    popular_items,
)
from training.result import Evaluation, Gate, ModelResult
from training.splits import split_by_as_of

# Every exposure until the next monthly as-of date (28 days: no month is shorter) is a row,
# paired with the features as of its month's date: four times the rows of the first week
# alone, which the model's quality grew with (share of the random-to-oracle gain 0.67 ->
# 0.76 on 5,000 simulated accounts), at the cost of features up to four weeks old.
EXPOSURE_WINDOW_DAYS = 28
HORIZON_DAYS = EXPOSURE_WINDOW_DAYS + RESPONSE_WINDOW_DAYS
# The set's validation and test as-of dates (see build_next_content_set).
VALID_DATES = 1
TEST_DATES = 3
PRIMARY_METRIC = "model.roc_auc"
# The param a model refit on every split logs: the trees early stopping chose.
REFIT_ROUNDS_PARAM = "refit_rounds"
# Columns of the set that are keys or policy-evaluation inputs, never features.
DECISION_COLUMNS = [
    "account_id",
    "as_of",
    "exposure_id",
    "contact_id",
    "content_id",
    "ts",
    "propensity",
    DECISION_PHASE_COLUMN,
]


def has_served_log(data: JourneyData) -> bool:
    """Whether the data hold decisions the service served (exposures with a policy)."""
    exposures = data.exposures
    return "policy" in exposures and bool(exposures["policy"].notna().any())


def label_responses(
    exposures: pd.DataFrame, touchpoints: pd.DataFrame, taxonomy: Taxonomy
) -> np.ndarray:
    """For each exposure row: True when a touchpoint of the same account, contact (when the
    exposure names one) and content, of a response event type, has ``ts`` in
    ``[exposure ts, exposure ts + RESPONSE_WINDOW_DAYS]``. Aligned with ``exposures``."""
    types = [e for e in RESPONSE_EVENT_TYPES if e in taxonomy.event_type_names]
    tp = touchpoints
    is_resp = (
        tp["content_id"].notna().to_numpy() & tp["event_type"].astype(object).isin(types).to_numpy()
    )
    tp = tp.loc[is_resp]

    def key(frame: pd.DataFrame, with_contact: bool) -> pd.Series:
        parts = frame["account_id"].astype(str) + "|" + frame["content_id"].astype(str)
        if with_contact:
            parts = parts + "|" + frame["contact_id"].astype(str)
        return parts

    out = np.zeros(len(exposures), dtype=bool)
    has_contact = exposures["contact_id"].notna().to_numpy()
    for with_contact, mask in ((True, has_contact), (False, ~has_contact)):
        if not mask.any():
            continue
        left = pd.DataFrame(
            {
                "key": key(exposures.loc[mask], with_contact).to_numpy(),
                "ts": column_ns(exposures.loc[mask, "ts"]),
                "row": np.nonzero(mask)[0],
            }
        ).sort_values("ts", kind="stable")
        right = pd.DataFrame({"key": key(tp, with_contact).to_numpy(), "ts": column_ns(tp["ts"])})
        right["hit"] = True
        right = right.sort_values("ts", kind="stable")
        matched = pd.merge_asof(
            left,
            right,
            on="ts",
            by="key",
            direction="forward",
            tolerance=RESPONSE_WINDOW_DAYS * NS_PER_DAY,
        )
        out[matched["row"].to_numpy()] = matched["hit"].eq(True).to_numpy()
    return out


def crm_phase_at(
    stages: pd.DataFrame, account_ids: pd.Series, ts: pd.Series, taxonomy: Taxonomy
) -> pd.Series:
    """The CRM phase of each account at each time: the last ``stages`` record with
    ``stages.ts <= ts`` (what a policy deciding at ts saw). Categorical over the taxonomy's
    phases, NaN before the first record (all NaN without stages); aligned with
    ``account_ids`` (default index)."""
    if stages.empty:
        return pd.Series(
            pd.Categorical([None] * len(ts), categories=taxonomy.phases),
            name=DECISION_PHASE_COLUMN,
        )
    left = pd.DataFrame(
        {
            "account_id": account_ids.astype(str).to_numpy(dtype=object),
            "ts": column_ns(ts),
            "row": np.arange(len(ts)),
        }
    ).sort_values("ts", kind="stable")
    right = pd.DataFrame(
        {
            "account_id": stages["account_id"].astype(str).to_numpy(dtype=object),
            "ts": column_ns(stages["ts"]),
            "phase": stages["phase"].astype(object).to_numpy(),
        }
    ).sort_values("ts", kind="stable")
    matched = pd.merge_asof(left, right, on="ts", by="account_id", direction="backward")
    phase = np.empty(len(ts), dtype=object)
    phase[matched["row"].to_numpy()] = matched["phase"].to_numpy()
    return pd.Series(pd.Categorical(phase, categories=taxonomy.phases), name=DECISION_PHASE_COLUMN)


def _require_columns(features: pd.DataFrame, columns: list[str]) -> None:
    """Returns nothing; raises when ``features`` lacks any of ``columns`` (the first five
    missing are named)."""
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise TrainingSetError(
            f"features frame lacks columns {missing[:5]}; expected features.pipeline."
            "build_features output for the as-of grid"
        )


def exposures_with_features(
    exposures: pd.DataFrame | None, features: pd.DataFrame, window_days: int
) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """The exposures with ``as_of <= ts < as_of + window_days`` for an as-of date of
    ``features`` whose account has a feature row at that date (default index), their as-of
    dates and the position of that feature row in ``features``."""
    if exposures is None or exposures.empty:
        raise TrainingSetError(
            "table 'exposures' is empty; expected logged exposures to learn from"
        )
    dates = np.sort(pd.unique(column_ns(features["as_of"])))
    x_ns = column_ns(exposures["ts"])
    pos = np.searchsorted(dates, x_ns, side="right") - 1
    inside = (pos >= 0) & (x_ns < dates[np.maximum(pos, 0)] + window_days * NS_PER_DAY)
    ex = exposures.loc[inside].reset_index(drop=True)
    ex_as_of = pd.Series(pd.to_datetime(dates[pos[inside]], utc=True)).dt.as_unit("ns")

    # Feature row of each exposure: (account_id, as_of) looked up in the features frame.
    f_key = pd.MultiIndex.from_arrays(
        [features["account_id"].astype(str), column_ns(features["as_of"])]
    )
    x_key = pd.MultiIndex.from_arrays([ex["account_id"].astype(str), column_ns(ex_as_of)])
    row = f_key.get_indexer(x_key)
    has = row >= 0
    if not has.any():
        raise TrainingSetError(
            f"no exposure falls in [as_of, as_of + {window_days} days) of an account with a "
            "feature row; expected exposures after the as-of dates of the features frame"
        )
    return ex.loc[has].reset_index(drop=True), ex_as_of[has].reset_index(drop=True), row[has]


def account_inputs(
    data: JourneyData,
    taxonomy: Taxonomy,
    features: pd.DataFrame,
    ex_as_of: pd.Series,
    row: np.ndarray,
) -> pd.DataFrame:
    """The model's account inputs per exposure (``nc.account_input_columns`` order): the
    pipeline's features at ``row`` of ``features`` and the topic engagement at the as-of."""
    keys = pd.DataFrame(
        {"account_id": features["account_id"].iloc[row].astype(str).to_numpy(), "as_of": ex_as_of}
    )
    topics = nc.topic_engagement(data, keys, taxonomy)
    inputs = nc.account_input_columns(taxonomy)
    from_pipeline = [c for c in inputs if c not in topics.columns]
    _require_columns(features, from_pipeline)
    pipeline = features[from_pipeline].iloc[row].reset_index(drop=True)
    return pd.concat([pipeline, topics], axis=1)[inputs]


def candidate_matrix(
    data: JourneyData, taxonomy: Taxonomy, account: pd.DataFrame, ex: pd.DataFrame
) -> pd.DataFrame:
    """The candidate features of each exposure's shown item (``nc.candidate_features``),
    float64 columns as float32; raises when an exposure shows an item not in the catalog."""
    content = data.content.reset_index(drop=True)
    role_of = data.contacts.set_index(data.contacts["contact_id"].astype(str))["role"]
    contact_role = role_of.reindex(ex["contact_id"].astype(str)).astype(object).to_numpy()
    item = pd.Index(content["content_id"].astype(str)).get_indexer(
        pd.Index(ex["content_id"].astype(str))
    )
    if (item < 0).any():
        bad = ex["content_id"][item < 0].astype(str).unique()[:5].tolist()
        raise TrainingSetError(
            f"table 'exposures' column 'content_id': {bad} are not in table 'content'"
        )
    position = (
        ex["position"].to_numpy(dtype=np.float64, na_value=np.nan)
        if "position" in ex
        else np.full(len(ex), np.nan)
    )
    x = nc.candidate_features(
        account,
        pd.Series(contact_role),
        content,
        taxonomy,
        item_index=item,
        shown_at=ex["ts"],
        position=position,
    )
    return float32_columns(x)


def decision_frame(
    data: JourneyData, taxonomy: Taxonomy, ex: pd.DataFrame, ex_as_of: pd.Series
) -> pd.DataFrame:
    """The ``DECISION_COLUMNS`` of each exposure; the CRM phase is the one at the exposure
    time (what the logging policy saw when it decided)."""
    return pd.DataFrame(
        {
            "account_id": ex["account_id"].astype(str),
            "as_of": ex_as_of,
            "exposure_id": ex["exposure_id"].astype(str),
            "contact_id": ex["contact_id"],
            "content_id": ex["content_id"].astype(str),
            "ts": ex["ts"],
            "propensity": ex["propensity"].to_numpy(dtype=np.float64),
            DECISION_PHASE_COLUMN: crm_phase_at(data.stages, ex["account_id"], ex["ts"], taxonomy),
        }
    )


def next_content_rows(
    data: JourneyData,
    taxonomy: Taxonomy,
    features: pd.DataFrame | Callable[[], pd.DataFrame],
    *,
    window_days: int,
) -> pd.DataFrame:
    """The rows of :func:`build_next_content_set` before the split: one per exposure with
    ``as_of <= ts < as_of + window_days`` for an as-of date of ``features``, with its
    decision columns, inputs and label. ``features`` may be a function returning them: the
    frame then goes as soon as the account inputs are read from it, before the candidate
    features are built (at 100,000 accounts it is 2 GB)."""
    grid = features() if callable(features) else features
    _require_columns(grid, ["account_id", "as_of", "crm_phase"])
    ex, ex_as_of, row = exposures_with_features(data.exposures, grid, window_days)
    account = account_inputs(data, taxonomy, grid, ex_as_of, row)
    del grid
    release_free_memory()  # the grid, when this was its last holder
    x = candidate_matrix(data, taxonomy, account, ex)
    del account  # x holds its columns too; a million rows' copy need not wait for the end
    decision = decision_frame(data, taxonomy, ex, ex_as_of)
    label = label_responses(ex, data.touchpoints, taxonomy).astype(np.int8)
    # The frame keeps the fit features' account inputs too: policy evaluation scores every
    # eligible item of a test decision from them.
    return pd.concat([decision, x, pd.DataFrame({nc.LABEL_COLUMN: label})], axis=1)


def build_next_content_set(
    data: JourneyData,
    taxonomy: Taxonomy,
    features: pd.DataFrame | Callable[[], pd.DataFrame],
    *,
    window_days: int = EXPOSURE_WINDOW_DAYS,
    valid_dates: int = VALID_DATES,
    test_dates: int = TEST_DATES,
    refit: bool = False,
) -> TrainingSet:
    """The next-content training set: one row per exposure with ``as_of <= ts < as_of +
    window_days`` for an as-of date of ``features`` (``build_features`` output on the grid),
    with the account's features as of that date (``features`` may be a function returning
    them, see :func:`next_content_rows`), the account's topic engagement, the shown
    item's candidate features, the decision columns (``DECISION_COLUMNS``; the CRM phase at
    the exposure time decides eligibility) and the label ``responded`` (int8 0/1).

    Exposures of accounts without a feature row at that as-of are dropped. Split by as-of
    date with a ``window_days + RESPONSE_WINDOW_DAYS`` horizon purged between splits; three
    test dates by default because the off-policy estimates rest on the few test decisions
    where the model's pick equals the logged item (about one in twenty). ``refit``: the
    registered model is fitted again on every split (:attr:`TrainingSet.refit`).
    """
    frame = next_content_rows(data, taxonomy, features, window_days=window_days)
    horizon = window_days + RESPONSE_WINDOW_DAYS
    split = split_by_as_of(
        frame, valid_dates=valid_dates, test_dates=test_dates, horizon_days=horizon
    )
    return TrainingSet(
        name="next-content",
        frame=frame,
        feature_columns=nc.feature_columns(taxonomy),
        label_column=nc.LABEL_COLUMN,
        horizon_days=horizon,
        split=split,
        refit=refit,
    )


def score_next_content(estimator: Any, ts: TrainingSet) -> float:
    """ROC-AUC of response on the test exposures of ``ts`` (the primary metric; greater is
    better). NaN when the test split holds a single class."""
    test = ts.split.test
    y = test[ts.label_column].to_numpy()
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, nc.predict_proba(estimator, test[ts.feature_columns])))


def paired_next_content(
    challenger: Any, champion: Any, ts: TrainingSet
) -> tuple[float, float, float]:
    """Response ROC-AUC of ``challenger`` minus ``champion``'s on the test exposures of
    ``ts``, with its 95 % interval over resampled accounts (promotion's bar); NaNs when the
    test split holds a single class."""
    test = ts.split.test
    y = test[ts.label_column].to_numpy()
    if len(np.unique(y)) < 2:
        return float("nan"), float("nan"), float("nan")
    x = test[ts.feature_columns]
    return paired_bootstrap(
        y,
        nc.predict_proba(challenger, x),
        nc.predict_proba(champion, x),
        roc_auc,
        groups=test["account_id"].astype(str).to_numpy(),
        seed=BOOTSTRAP_SEED,
    )


def train_next_content(
    ts: TrainingSet,
    *,
    params: dict[str, Any] | None = None,
    truth: SimulationTruth | None = None,
    taxonomy: Taxonomy,
    content: pd.DataFrame | None = None,
    client: Any | None = None,
) -> ModelResult:
    """Fit the next-content model on the training exposures (early stopping on validation)
    and evaluate it on the test exposures: response metrics (ROC-AUC, PR-AUC, log loss,
    Brier) and the policy values of ``training.policy.evaluate_policies`` (with ``truth``,
    the true values and the oracle). ``content`` is the catalog (default: the taxonomy's).
    """
    catalog = (content if content is not None else taxonomy.content_frame()).reset_index(drop=True)
    params = dict(params or {})
    cap = int(params.pop(POLICY_DECISIONS_PARAM, POLICY_DECISIONS))
    split = ts.split
    cols = ts.feature_columns
    y_train = split.train[ts.label_column].to_numpy()
    y_valid = split.valid[ts.label_column].to_numpy()
    for part, y in (("validation", y_valid), ("test", split.test[ts.label_column].to_numpy())):
        if len(np.unique(y)) < 2:
            raise TrainingSetError(
                f"next-content {part} split ({len(y)} exposures): every label is "
                f"{int(y[0]) if len(y) else 'missing'}; expected responses and non-responses "
                "(more as-of dates or more data)"
            )
    estimator = nc.fit(
        split.train[cols], y_train, split.valid[cols], y_valid, params=params, client=client
    )

    test = split.test
    y_test = test[ts.label_column].to_numpy()
    p_test = nc.predict_proba(estimator, test[cols])
    metrics: dict[str, float] = {}
    if len(np.unique(y_test)) == 2:
        metrics["model.roc_auc"] = float(roc_auc_score(y_test, p_test))
        metrics.update(
            with_intervals(
                {
                    "model.roc_auc": bootstrap_auc(
                        y_test,
                        p_test,
                        rng=np.random.default_rng(BOOTSTRAP_SEED),
                        groups=test["account_id"].astype(str).to_numpy(),
                    )
                }
            )
        )
        metrics["model.pr_auc"] = float(average_precision_score(y_test, p_test))
    else:
        metrics["model.roc_auc"] = metrics["model.pr_auc"] = float("nan")
    metrics["model.log_loss"] = float(log_loss(y_test, p_test, labels=[0, 1]))
    metrics["model.brier"] = float(brier_score_loss(y_test, p_test))
    metrics["model.best_iteration"] = float(estimator.best_iteration_ or 0)
    metrics["test.response_rate"] = float(y_test.mean())
    metrics["test.exposures"] = float(len(test))

    judged = decision_sample(test, cap)
    decisions = build_decisions(estimator, judged, cols, ts.label_column, catalog, taxonomy)
    popularity = popular_items(split.train, ts.label_column, catalog, taxonomy)
    metrics.update(evaluate_policies(decisions, popularity, catalog, taxonomy, truth))
    metrics["policy.decision_share"] = len(judged) / len(test)

    fitted = nc.merged_params(params, rows=len(split.train))
    used = {**fitted, POLICY_DECISIONS_PARAM: cap}
    valid_decisions = build_decisions(
        estimator, decision_sample(split.valid, cap), cols, ts.label_column, catalog, taxonomy
    )
    gate = next_content_gate(valid_decisions, catalog)
    as_of_dates = ts.as_of_dates
    report = quality_report(metrics)
    if ts.refit:
        # Every figure above is the fit on the training split's; the model registered
        # learns from every split, the newest decisions included (a served log's own
        # out-of-sample test is the promotion, on the decisions after these).
        rounds = int(estimator.best_iteration_ or fitted["n_estimators"])
        rows = pd.concat([split.train, split.valid, split.test], ignore_index=True)
        estimator = nc.refit(
            rows[cols], rows[ts.label_column].to_numpy(), fitted=fitted, rounds=rounds
        )
        used[REFIT_ROUNDS_PARAM] = rounds
        learned = {*as_of_dates["train"], *as_of_dates["valid"], *as_of_dates["test"]}
        as_of_dates = {**as_of_dates, "learned": sorted(learned)}
        report += (
            f"\nThe registered model is fitted again on every split ({len(rows):,} "
            f"exposures, {rounds} trees, as early stopping chose): the figures above are "
            "those of the fit on the training split; its own out-of-sample judgement is "
            "the promotion on the served decisions after its data.\n"
        )
    return ModelResult(
        name="next-content",
        estimator=estimator,
        feature_columns=list(cols),
        params=used,
        metrics=metrics,
        primary_metric=PRIMARY_METRIC,
        report_markdown=report,
        evaluation=Evaluation(y_true=y_test.astype(np.int64), y_score=p_test),
        input_example=test[cols].head(5).reset_index(drop=True),
        training_set_fingerprint=ts.fingerprint,
        as_of_dates=as_of_dates,
        gate=gate,
    )


def next_content_gate(decisions: Decisions, catalog: pd.DataFrame) -> Gate:
    """The model's top-1 policy against the stronger of the best single item and the logging
    policy, by DR value on ``decisions`` (the validation split)."""
    d = decisions
    logged = LoggedDecisions(
        q=d.scores,
        eligible=d.eligible,
        logged=d.logged,
        propensity=d.propensity,
        reward=d.reward,
        actions=catalog["content_id"].astype(str).tolist(),
        groups=d.frame["account_id"].astype(str).to_numpy(),
    )
    values = compare_policies(logged, nc.top1(d.scores, d.eligible))
    return gate_of(values, logged.actions)
