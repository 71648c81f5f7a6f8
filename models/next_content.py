"""The next-content model: will this contact respond to this content item shown now?

Target: 1 when an exposure (content shown or sent to a contact of an account) gets a response
within ``RESPONSE_WINDOW_DAYS``: a touchpoint of the same account, contact and content of a
response event type (``features.schema.RESPONSE_EVENT_TYPES``).

One row per (decision, content item): the account's pipeline features as of the decision,
the item's attributes (content type, topic, value) and how the item fits the account and
contact (:func:`candidate_features`). Training rows are the logged exposures (one item per
decision); serving scores every eligible item of a decision with the same function and the
top-1 policy picks the highest predicted response probability (:func:`top1`).

The feature pipeline has no per-topic counts, so :func:`topic_engagement` adds them (the
account's content touchpoints per topic before as-of); serving must pass the same columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.errors import InvalidInputError
from features.schema import RESPONSE_WINDOW_DAYS, JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import NS_PER_DAY, column_ns
from models.fitting import fit_classifier

LABEL_COLUMN = "responded"
TARGET = (
    f"1 if the contact responds to the shown content within {RESPONSE_WINDOW_DAYS} days "
    "(a touchpoint of the same account, contact and content of a response event type)"
)
KEY_COLUMNS = ("account_id", "as_of")
TOPIC_WINDOWS = ("365d", "ever")

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "n_estimators": 2000,
    "learning_rate": 0.03,
    "num_leaves": 31,
    "min_child_samples": 200,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "reg_lambda": 5.0,
    "max_bin": 63,
    "n_jobs": 2,
    "random_state": 7,
    "verbose": -1,
    "early_stopping_rounds": 100,
}

# The columns candidate_features adds to the account's features, with their definitions
# (reason codes quote them).
CANDIDATE_DEFINITIONS: dict[str, str] = {
    "contact_role": "buying-center role of the contact the content goes to",
    "content_type": "content type of the item",
    "content_topic": "topic of the item",
    "content_value": "business value of the item",
    "fits_phase": "1 if the item fits the account's CRM phase "
    "(0: the item does not fit the account's CRM phase)",
    "fits_next_phase": "1 if the item fits the phase after the account's CRM phase "
    "(0: the item does not fit the phase after the account's CRM phase)",
    "fits_previous_phase": "1 if the item fits the phase before the account's CRM phase "
    "(0: the item does not fit the phase before the account's CRM phase)",
    "n_content_phases": "phases the item fits",
    "fits_role": "1 if the item fits the contact's role (0: the item does not fit the "
    "contact's role)",
    "n_content_roles": "roles the item fits",
    "type_touchpoints_90d": "the account's touchpoints with this content type, last 90 days",
    "type_touchpoints_365d": "the account's touchpoints with this content type, last 365 days",
    "days_since_type": "days since the account's last touchpoint with this content type",
    "phase_touchpoints_30d": "the account's touchpoints with content fitting the item's "
    "phases, last 30 days",
    "phase_share_30d": "share of the account's content touchpoints of the last 30 days that "
    "were on content fitting the item's phases",
    "phase_share_90d": "share of the account's content touchpoints of the last 90 days that "
    "were on content fitting the item's phases",
    "role_touchpoints_90d": "the account's touchpoints by contacts of this contact's role, "
    "last 90 days",
    "topic_touchpoints_365d": "the account's content touchpoints on the item's topic, last "
    "365 days",
    "topic_share_365d": "share of the account's content touchpoints of the last 365 days that "
    "were on the item's topic",
    "topic_touchpoints_ever": "the account's content touchpoints on the item's topic, ever",
    "topic_share_ever": "share of all the account's content touchpoints that were on the "
    "item's topic",
    "topic_rank_ever": "rank of the item's topic among the account's topics by touchpoints "
    "(0 = most engaged)",
}
CANDIDATE_COLUMNS: list[str] = list(CANDIDATE_DEFINITIONS)


class NextContentModelError(InvalidInputError):
    """The next-content model cannot be built, fitted or applied to these inputs."""


# --------------------------------------------------------------------------------------------
# Account topic engagement (the pipeline has no per-topic counts)


def topic_columns(taxonomy: Taxonomy) -> list[str]:
    """Names of the per-topic account columns :func:`topic_engagement` produces."""
    return [f"n_topic_{t}_{w}" for w in TOPIC_WINDOWS for t in taxonomy.topic_names]


def topic_engagement(data: JourneyData, keys: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """Per key row (``account_id``, ``as_of``): the account's touchpoints with content of each
    topic in the 365 days before as-of and ever before as-of (``ts < as_of``), int32 columns
    named by :func:`topic_columns`, aligned with ``keys`` (same index).

    Assumes canonical tables; touchpoints whose content is not in the catalog are ignored.
    """
    topics = taxonomy.topic_names
    content = data.content
    topic_of = pd.Series(
        pd.Categorical(content["topic"].astype(str), categories=topics).codes,
        index=pd.Index(content["content_id"].astype(str)),
    )
    tp = data.touchpoints
    has = tp["content_id"].notna().to_numpy()
    tp_topic = topic_of.reindex(tp["content_id"][has].astype(str)).to_numpy()
    tp_topic = np.where(np.isnan(tp_topic), -1, tp_topic).astype(np.int64)
    acc_index = pd.Index(pd.unique(keys["account_id"].astype(str)))
    tp_acc = acc_index.get_indexer(pd.Index(tp["account_id"][has].astype(str)))
    tp_ns = column_ns(tp["ts"][has])
    ok = (tp_topic >= 0) & (tp_acc >= 0)
    tp_topic, tp_acc, tp_ns = tp_topic[ok], tp_acc[ok], tp_ns[ok]

    n_t = len(topics)
    key_acc = acc_index.get_indexer(pd.Index(keys["account_id"].astype(str)))
    key_ns = column_ns(keys["as_of"])
    out = np.zeros((len(keys), 2 * n_t), dtype=np.int32)
    for t_ns in np.unique(key_ns):  # a handful of as-of dates
        rows = np.nonzero(key_ns == t_ns)[0]
        before = tp_ns < t_ns
        recent = before & (tp_ns >= t_ns - 365 * NS_PER_DAY)
        for j, mask in enumerate((recent, before)):
            counts = np.bincount(
                tp_acc[mask] * n_t + tp_topic[mask], minlength=len(acc_index) * n_t
            ).reshape(len(acc_index), n_t)
            out[rows, j * n_t : (j + 1) * n_t] = counts[key_acc[rows]]
    return pd.DataFrame(out, columns=topic_columns(taxonomy), index=keys.index)


# --------------------------------------------------------------------------------------------
# Catalog matrices and eligibility


def _membership(lists: pd.Series, names: list[str], what: str) -> np.ndarray:
    """items x names 0/1 matrix from a column of name lists (a loop over ~100 items)."""
    out = np.zeros((len(lists), len(names)), dtype=np.float32)
    index = {n: k for k, n in enumerate(names)}
    for i, values in enumerate(lists):
        for v in values:
            if v not in index:
                raise NextContentModelError(
                    f"table content column {what!r}: value {v!r} is not in the taxonomy ({names})"
                )
            out[i, index[v]] = 1.0
    return out


def phase_fit_matrix(content: pd.DataFrame, taxonomy: Taxonomy) -> np.ndarray:
    """items x phases: 1.0 where the item fits the phase (content rows in order)."""
    return _membership(content["phases"], taxonomy.phases, "phases")


def eligible_items(
    content: pd.DataFrame, phase_codes: np.ndarray, taxonomy: Taxonomy
) -> np.ndarray:
    """decisions x items bool: the items fitting each decision's CRM phase (code into
    ``taxonomy.phases``), the rule the logging policy follows; a phase no item fits (or an
    unknown phase, code -1) makes every item eligible."""
    fit = phase_fit_matrix(content, taxonomy) == 1.0  # items x phases
    codes = np.asarray(phase_codes, dtype=np.int64)
    out = fit[:, np.maximum(codes, 0)].T.copy()
    none = (codes < 0) | ~out.any(axis=1)
    out[none] = True
    return out


# --------------------------------------------------------------------------------------------
# Candidate rows


def candidate_features(
    account_features: pd.DataFrame,
    contact_role: pd.Series | np.ndarray | Sequence[str | None],
    content: pd.DataFrame,
    taxonomy: Taxonomy,
    *,
    item_index: np.ndarray | None = None,
    decision_index: np.ndarray | None = None,
) -> pd.DataFrame:
    """Feature rows for (decision, content item) pairs.

    ``account_features`` has one row per decision (the account's pipeline features as of the
    decision, e.g. ``build_features`` output, optionally with :func:`topic_engagement`
    columns); ``contact_role`` the role of each decision's contact (NaN if unknown);
    ``content`` the catalog rows to score (content_id, content_type, phases, roles, topic,
    optional value). With ``item_index`` None the result is every decision x every item,
    decision-major (row ``d * len(content) + i``); with ``item_index`` (content row
    positions) it is one row per entry: the item with decision ``decision_index`` (row
    positions into ``account_features``; default: entry k is decision k).

    Returns the account's columns except ``account_id``/``as_of`` followed by
    ``CANDIDATE_COLUMNS`` (default index). Topic columns are NaN when the account features
    lack :func:`topic_engagement`'s columns.
    """
    n_dec = len(account_features)
    if len(contact_role) != n_dec:
        raise NextContentModelError(
            f"contact_role has {len(contact_role)} values for {n_dec} account feature rows; "
            "expected one per decision"
        )
    n_items = len(content)
    if item_index is None:
        dec = np.repeat(np.arange(n_dec), n_items)
        item = np.tile(np.arange(n_items), n_dec)
    else:
        item = np.asarray(item_index, dtype=np.int64)
        dec = (
            np.arange(n_dec)
            if decision_index is None
            else np.asarray(decision_index, dtype=np.int64)
        )
        if len(item) != len(dec):
            raise NextContentModelError(
                f"item_index has {len(item)} entries and the decisions {len(dec)}; expected "
                "one item per decision entry"
            )
        if len(item) and (item.min() < 0 or item.max() >= n_items):
            raise NextContentModelError(
                f"item_index holds positions outside the content rows (0..{n_items - 1})"
            )
        if len(dec) and (dec.min() < 0 or dec.max() >= n_dec):
            raise NextContentModelError(
                f"decision_index holds positions outside the account rows (0..{n_dec - 1})"
            )

    phases = taxonomy.phases
    roles = taxonomy.role_names
    types = taxonomy.content_type_names
    topics = taxonomy.topic_names
    acc = account_features
    _require(acc, ["crm_phase"])

    phase_fit = phase_fit_matrix(content, taxonomy)
    role_fit = _membership(content["roles"], roles, "roles")
    type_code = _codes(content["content_type"], types, "content_type")
    topic_code = _codes(content["topic"], topics, "topic")
    value = (
        content["value"].to_numpy(dtype=np.float64)
        if "value" in content
        else np.ones(n_items, dtype=np.float64)
    )

    crm = _codes(acc["crm_phase"], phases, "crm_phase", strict=False)[dec]
    role = _codes(pd.Series(contact_role), roles, "contact_role", strict=False)[dec]
    it = item
    pf = phase_fit[it]  # rows x phases

    def at(matrix: np.ndarray, cols: np.ndarray) -> np.ndarray:
        ok = (cols >= 0) & (cols < matrix.shape[1])
        return np.where(ok, matrix[np.arange(len(cols)), np.clip(cols, 0, matrix.shape[1] - 1)], 0)

    cand: dict[str, Any] = {}
    cand["contact_role"] = pd.Categorical.from_codes(role, categories=pd.Index(roles))
    cand["content_type"] = pd.Categorical.from_codes(type_code[it], categories=pd.Index(types))
    cand["content_topic"] = pd.Categorical.from_codes(topic_code[it], categories=pd.Index(topics))
    cand["content_value"] = value[it].astype(np.float32)
    cand["fits_phase"] = np.where(crm >= 0, at(pf, crm), np.nan).astype(np.float32)
    cand["fits_next_phase"] = np.where(crm >= 0, at(pf, crm + 1), np.nan).astype(np.float32)
    cand["fits_previous_phase"] = np.where(crm >= 0, at(pf, crm - 1), np.nan).astype(np.float32)
    cand["n_content_phases"] = pf.sum(axis=1).astype(np.float32)
    cand["fits_role"] = np.where(role >= 0, at(role_fit[it], role), np.nan).astype(np.float32)
    cand["n_content_roles"] = role_fit[it].sum(axis=1).astype(np.float32)

    def gather(names: list[str]) -> np.ndarray:
        _require(acc, names)
        return acc[names].to_numpy(dtype=np.float64, na_value=np.nan)[dec]

    for w in ("90d", "365d"):
        m = gather([f"n_content_type_{t}_{w}" for t in types])
        cand[f"type_touchpoints_{w}"] = m[np.arange(len(it)), type_code[it]].astype(np.float32)
    m = gather([f"days_since_content_type_{t}" for t in types])
    cand["days_since_type"] = m[np.arange(len(it)), type_code[it]].astype(np.float32)
    for w in ("30d", "90d"):
        m = gather([f"n_content_phase_{p}_{w}" for p in phases])
        touched = (m * pf).sum(axis=1)
        total = m.sum(axis=1)
        if w == "30d":
            cand["phase_touchpoints_30d"] = touched.astype(np.float32)
        share = np.where(total > 0, touched / np.maximum(total, 1), np.nan)
        cand[f"phase_share_{w}"] = share.astype(np.float32)
    m = gather([f"n_role_{r}_90d" for r in roles])
    cand["role_touchpoints_90d"] = np.where(role >= 0, at(m, role), np.nan).astype(np.float32)

    have_topics = all(f"n_topic_{t}_{w}" in acc for w in TOPIC_WINDOWS for t in topics)
    rows = np.arange(len(it))
    for w in TOPIC_WINDOWS:
        if not have_topics:
            cand[f"topic_touchpoints_{w}"] = np.full(len(it), np.nan, dtype=np.float32)
            cand[f"topic_share_{w}"] = np.full(len(it), np.nan, dtype=np.float32)
            continue
        m = gather([f"n_topic_{t}_{w}" for t in topics])
        mine = m[rows, topic_code[it]]
        total = m.sum(axis=1)
        cand[f"topic_touchpoints_{w}"] = mine.astype(np.float32)
        cand[f"topic_share_{w}"] = np.where(total > 0, mine / np.maximum(total, 1), np.nan).astype(
            np.float32
        )
        if w == "ever":
            # Topics engaged more than this one (ties share the better rank).
            cand["topic_rank_ever"] = (m > mine[:, None]).sum(axis=1).astype(np.float32)
    if not have_topics:
        cand["topic_rank_ever"] = np.full(len(it), np.nan, dtype=np.float32)

    base_cols = [c for c in acc.columns if c not in KEY_COLUMNS and c not in CANDIDATE_DEFINITIONS]
    base = acc[base_cols].iloc[dec].reset_index(drop=True)
    extra = pd.DataFrame({c: cand[c] for c in CANDIDATE_COLUMNS})
    return pd.concat([base, extra], axis=1)


def _require(frame: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise NextContentModelError(
            f"account features lack columns {missing[:5]}; expected the feature pipeline's "
            "output (features.pipeline.build_features)"
        )


def _codes(values: pd.Series, names: list[str], column: str, *, strict: bool = True) -> np.ndarray:
    """Codes of ``values`` in ``names`` (-1 for NaN); unknown values raise when ``strict``."""
    text = pd.Series(values).astype(object)
    present = text.notna().to_numpy()
    codes = np.full(len(text), -1, dtype=np.int64)
    codes[present] = pd.Index(names).get_indexer(pd.Index(text[present].astype(str)))
    unknown = (codes < 0) & present
    if strict and unknown.any():
        bad = text[unknown].unique()[:5].tolist()
        raise NextContentModelError(
            f"column {column!r}: values {bad} are not in the taxonomy ({names})"
        )
    return codes


def account_feature_columns(taxonomy: Taxonomy) -> list[str]:
    """The account features the model uses (a response depends on the journey phase, the
    buying center's engagement, recent exposures and topic interest; firmographics and
    channel mix add cost, not signal): CRM phase and its age, recent activity, content
    touchpoints per phase, exposure responses, buying-center engagement and the per-topic
    counts of :func:`topic_engagement`."""
    phases = taxonomy.phases
    return [
        "crm_phase",
        "days_in_crm_phase",
        "is_customer",
        "n_purchases",
        "days_since_first_touch",
        "days_since_last_touch",
        *(f"n_touchpoints_{w}d" for w in (7, 30, 90, 365)),
        *(f"n_content_phase_{p}_{w}d" for p in phases for w in (7, 30, 90)),
        *(f"days_since_content_phase_{p}" for p in phases),
        "n_exposures_90d",
        "n_responses_90d",
        "response_rate_90d",
        "n_contacts",
        "n_roles_covered",
        "n_contacts_engaged_90d",
        "n_roles_engaged_90d",
        "trend_engagement_30d",
        "dwell_minutes_90d",
        *(f"n_role_{r}_90d" for r in taxonomy.role_names),
        *topic_columns(taxonomy),
    ]


def candidate_input_columns(taxonomy: Taxonomy) -> list[str]:
    """The account columns :func:`candidate_features` reads to compute the fit features."""
    types = taxonomy.content_type_names
    return [
        "crm_phase",
        *(f"n_content_type_{t}_{w}" for w in ("90d", "365d") for t in types),
        *(f"days_since_content_type_{t}" for t in types),
        *(f"n_content_phase_{p}_{w}" for w in ("30d", "90d") for p in taxonomy.phases),
        *(f"n_role_{r}_90d" for r in taxonomy.role_names),
        *topic_columns(taxonomy),
    ]


def account_input_columns(taxonomy: Taxonomy) -> list[str]:
    """Every account column the model needs per decision: its account features and the
    inputs of the fit features, without duplicates, in that order."""
    return list(
        dict.fromkeys([*account_feature_columns(taxonomy), *candidate_input_columns(taxonomy)])
    )


def feature_columns(taxonomy: Taxonomy) -> list[str]:
    """The model's features: :func:`account_feature_columns` then ``CANDIDATE_COLUMNS``."""
    return [*account_feature_columns(taxonomy), *CANDIDATE_COLUMNS]


# --------------------------------------------------------------------------------------------
# Fit, predict, pick


def merged_params(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """``DEFAULT_PARAMS`` updated with ``params`` (overrides win)."""
    return {**DEFAULT_PARAMS, **(params or {})}


def fit(
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_valid: pd.DataFrame,
    y_valid: np.ndarray,
    *,
    params: dict[str, Any] | None = None,
    client: Any | None = None,
) -> lgb.LGBMClassifier:
    """A binary ``LGBMClassifier`` fitted on the training exposures with early stopping on
    the validation exposures (binary logloss). Labels are 0/1; both must occur in training.
    ``client`` (a Dask client) grows the trees on its cluster."""
    if len(x_train) == 0 or len(x_valid) == 0:
        raise NextContentModelError(
            f"next-content model needs training and validation rows, got {len(x_train)} and "
            f"{len(x_valid)}"
        )
    if len(np.unique(y_train)) < 2:
        raise NextContentModelError(
            f"response labels in training are all {int(np.asarray(y_train)[0])}; expected "
            "responses and non-responses"
        )
    p = merged_params(params)
    rounds = int(p.pop("early_stopping_rounds"))
    return fit_classifier(
        p, x_train, y_train, x_valid, y_valid, early_stopping_rounds=rounds, client=client
    )


def predict_proba(estimator: Any, x: pd.DataFrame) -> np.ndarray:
    """P(response within the window), one per row of ``x`` (the model's feature columns)."""
    return np.asarray(estimator.predict_proba(x))[:, 1].astype(np.float64)


def score_candidates(
    estimator: Any,
    account_features: pd.DataFrame,
    contact_role: pd.Series | np.ndarray | Sequence[str | None],
    content: pd.DataFrame,
    taxonomy: Taxonomy,
    columns: list[str],
    *,
    eligible: np.ndarray | None = None,
    chunk_rows: int = 200_000,
) -> np.ndarray:
    """decisions x items matrix of P(response) (:func:`candidate_features` then
    :func:`predict_proba` on ``columns``) for the ``eligible`` (decisions x items bool)
    pairs, NaN elsewhere (default: every item), computed in chunks of about ``chunk_rows``
    candidate rows to bound memory."""
    n_dec, n_items = len(account_features), len(content)
    mask = np.ones((n_dec, n_items), dtype=bool) if eligible is None else np.asarray(eligible)
    if mask.shape != (n_dec, n_items):
        raise NextContentModelError(
            f"eligible has shape {mask.shape}; expected (decisions, items) = {(n_dec, n_items)}"
        )
    out = np.full((n_dec, n_items), np.nan, dtype=np.float64)
    dec, item = np.nonzero(mask)
    roles = pd.Series(contact_role).reset_index(drop=True)
    for lo in range(0, len(dec), chunk_rows):
        d, i = dec[lo : lo + chunk_rows], item[lo : lo + chunk_rows]
        first, last = int(d[0]), int(d[-1]) + 1
        x = candidate_features(
            account_features.iloc[first:last],
            roles.iloc[first:last],
            content,
            taxonomy,
            item_index=i,
            decision_index=d - first,
        )
        out[d, i] = predict_proba(estimator, x[columns])
    return out


def top1(scores: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Per decision (row), the column of the highest score among eligible items (first on
    ties); rows without an eligible item give the overall best."""
    masked = np.where(eligible & ~np.isnan(scores), scores, -np.inf)
    pick = masked.argmax(axis=1)
    none = ~np.isfinite(masked).any(axis=1)
    pick[none] = np.nan_to_num(scores[none], nan=-np.inf).argmax(axis=1)
    return pick
