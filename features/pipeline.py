"""The point-in-time feature pipeline: touchpoint histories -> one row per (account, as-of).

A feature row for account A as of time T uses only events with ``ts < T`` (touchpoints,
exposures, CRM stages, contacts created before T). The same pure function,
:func:`compute_features`, runs on the whole data set (pandas engine), on each
account-partition of a Dask cluster (Dask engine) and on one account's events as of "now"
(serving, :func:`build_account_features`), so the three agree by construction.

Speed comes from integer codes and ``numpy.bincount``: every touchpoint gets an account code,
a window bucket (7/30/60/90/365 days before T) and a category code per vocabulary; one
bincount per vocabulary yields all windowed counts at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.errors import InvalidInputError
from features.schema import RESPONSE_EVENT_TYPES, RESPONSE_WINDOW_DAYS, JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import NS_PER_DAY, column_ns, to_utc

# Bump when a feature's definition changes, so models trained on old features are not
# served new ones (MLflow runs log it).
FEATURE_PIPELINE_VERSION = "1.0.0"

WINDOWS_DAYS = (7, 30, 90, 365)
# Bucket edges: the 60-day edge serves the 30-vs-previous-30 trend features.
_EDGES_DAYS = (7, 30, 60, 90, 365)
ENGAGEMENT_WINDOW_DAYS = 90

Engine = Literal["pandas", "dask"]

# Vocabulary features: (prefix, taxonomy vocabulary, how a touchpoint gets its value).
_VOCABULARIES = (
    ("channel", "channels", "touchpoint channel"),
    ("event", "event_types", "event type"),
    ("content_type", "content_types", "content type of the touchpoint's content"),
    ("content_phase", "phases", "phase the touchpoint's content fits"),
    ("role", "roles", "buying-center role of the touchpoint's contact"),
)


class FeatureError(InvalidInputError):
    """Inputs the pipeline cannot compute features from; the message says which and why."""


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    definition: str
    kind: Literal["count", "number", "category"]


def _labels(taxonomy: Taxonomy, vocabulary: str) -> dict[str, str]:
    sources: dict[str, Sequence[object]] = {
        "channels": taxonomy.channels,
        "event_types": taxonomy.event_types,
        "content_types": taxonomy.content_types,
        "roles": taxonomy.roles,
        "phases": taxonomy.phase_models[taxonomy.default_phase_model].phases,
    }
    return {item.name: item.label for item in sources[vocabulary]}  # type: ignore[attr-defined]


def feature_specs(taxonomy: Taxonomy) -> list[FeatureSpec]:
    """Every feature the pipeline produces, in output order, with a one-line definition.

    The definitions are what reason codes quote, so they are written for people.
    """
    specs: list[FeatureSpec] = []
    add = specs.append
    for w in WINDOWS_DAYS:
        add(FeatureSpec(f"n_touchpoints_{w}d", f"touchpoints in the last {w} days", "count"))
    for prefix, vocabulary, what in _VOCABULARIES:
        labels = _labels(taxonomy, vocabulary)
        for value in taxonomy.vocabulary(vocabulary):
            label = labels[value]
            for w in WINDOWS_DAYS:
                add(
                    FeatureSpec(
                        f"n_{prefix}_{value}_{w}d",
                        f"touchpoints with {what} '{label}' in the last {w} days",
                        "count",
                    )
                )
            add(
                FeatureSpec(
                    f"days_since_{prefix}_{value}",
                    f"days since the last touchpoint with {what} '{label}' (empty if never)",
                    "number",
                )
            )
    for name, what in (
        ("touchpoints", "touchpoints"),
        ("engagement", "engagement touchpoints (responses to content)"),
        ("support_tickets", "support tickets"),
        ("usage", "product usage events"),
    ):
        add(
            FeatureSpec(
                f"trend_{name}_30d",
                f"{what} in the last 30 days minus the 30 days before",
                "number",
            )
        )
    add(
        FeatureSpec("days_since_first_touch", "days since the account's first touchpoint", "number")
    )
    add(FeatureSpec("days_since_last_touch", "days since the account's last touchpoint", "number"))
    add(FeatureSpec("n_purchases", "purchases ever", "count"))
    add(FeatureSpec("n_churns", "churns ever", "count"))
    add(
        FeatureSpec(
            "is_customer",
            "1 if the account has purchased and not churned since its last purchase "
            "(0: the account is not a customer: it never purchased, or churned since)",
            "count",
        )
    )
    e = ENGAGEMENT_WINDOW_DAYS
    add(FeatureSpec("n_contacts", "contacts in the buying center", "count"))
    add(FeatureSpec("n_contacts_left_365d", "contacts who left in the last 365 days", "count"))
    add(
        FeatureSpec(
            "economic_buyer_left_365d",
            "economic buyers who left in the last 365 days",
            "count",
        )
    )
    add(FeatureSpec("n_roles_covered", "buying-center roles with at least one contact", "count"))
    add(
        FeatureSpec(
            f"n_contacts_engaged_{e}d", f"contacts with a touchpoint in the last {e} days", "count"
        )
    )
    add(
        FeatureSpec(
            f"n_roles_engaged_{e}d",
            f"buying-center roles with a touchpoint in the last {e} days",
            "count",
        )
    )
    add(
        FeatureSpec(
            f"share_roles_engaged_{e}d",
            f"share of the buying center's roles engaged in the last {e} days",
            "number",
        )
    )
    add(FeatureSpec(f"n_exposures_{e}d", f"content shown or sent in the last {e} days", "count"))
    add(
        FeatureSpec(
            f"n_responses_{e}d",
            f"content shown in the last {e} days that got a response within "
            f"{RESPONSE_WINDOW_DAYS} days",
            "count",
        )
    )
    add(
        FeatureSpec(
            f"response_rate_{e}d",
            f"share of content shown in the last {e} days that got a response "
            "(empty if none shown)",
            "number",
        )
    )
    add(
        FeatureSpec(
            f"dwell_minutes_{e}d",
            f"minutes spent viewing and attending content in the last {e} days",
            "number",
        )
    )
    add(
        FeatureSpec(
            f"mean_dwell_minutes_{e}d",
            f"average minutes per view or attendance in the last {e} days",
            "number",
        )
    )
    add(FeatureSpec("revenue_365d", "purchase and renewal amounts in the last 365 days", "number"))
    add(FeatureSpec("employees", "number of employees", "number"))
    add(FeatureSpec("log_employees", "log10 of the number of employees", "number"))
    add(FeatureSpec("annual_revenue", "annual revenue in EUR", "number"))
    add(FeatureSpec("account_age_days", "days since the account was created", "number"))
    add(FeatureSpec("industry", "industry", "category"))
    add(FeatureSpec("region", "sales region", "category"))
    add(FeatureSpec("crm_phase", "phase last recorded in the CRM", "category"))
    add(FeatureSpec("days_in_crm_phase", "days since the CRM last recorded a phase", "number"))
    return specs


def feature_definitions(taxonomy: Taxonomy) -> dict[str, str]:
    """Feature name -> one-line definition, in output order."""
    return {s.name: s.definition for s in feature_specs(taxonomy)}


def _codes(values: pd.Series, index: pd.Index) -> np.ndarray:
    """Positions of ``values`` in ``index`` (-1 when missing or absent).

    Arrow-backed strings are looked up by Arrow's hash kernel; otherwise factorising first is
    several times faster than ``get_indexer`` on millions of strings.
    """
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        array = pa.array(values.array)
        value_set = pa.array(index.astype("str").to_numpy(dtype=object), type=array.type)
        found = pc.index_in(array, value_set=value_set)
        return found.fill_null(-1).to_numpy().astype(np.int64, copy=False)
    codes, uniques = pd.factorize(values)
    if len(uniques) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    lookup = index.get_indexer(uniques)
    return np.where(codes >= 0, lookup[codes], -1).astype(np.int64)


def _category_codes(values: pd.Series, vocabulary: list[str]) -> np.ndarray:
    if isinstance(values.dtype, pd.CategoricalDtype) and list(values.cat.categories) == vocabulary:
        return values.cat.codes.to_numpy(dtype=np.int64)
    return _codes(values.astype("str"), pd.Index(vocabulary))


@dataclass
class _Prepared:
    """Touchpoints and exposures as integer arrays, ready for bincounts at any as-of."""

    n_accounts: int
    tp_account: np.ndarray
    tp_ns: np.ndarray
    tp_contact: np.ndarray
    tp_codes: dict[str, np.ndarray]  # prefix -> category code per touchpoint (-1 none)
    tp_phase_fit: np.ndarray  # (n_touchpoints, n_phases) bool: content fits phase
    tp_value: np.ndarray
    contact_role: np.ndarray
    exp_account: np.ndarray
    exp_ns: np.ndarray
    exp_response_ns: np.ndarray  # first response within the window; int64 max if none


_NO_TIME = np.iinfo(np.int64).max


def _prepare(data: JourneyData, taxonomy: Taxonomy) -> _Prepared:
    accounts = pd.Index(data.accounts["account_id"])
    tp = data.touchpoints
    contacts = data.contacts
    content = data.content
    content_index = pd.Index(content["content_id"])
    exposures = data.exposures
    lookups = [
        (tp["account_id"], accounts),
        (tp["contact_id"], pd.Index(contacts["contact_id"])),
        (tp["content_id"], content_index),
    ]
    if len(exposures):
        lookups += [(exposures["account_id"], accounts), (exposures["content_id"], content_index)]
    # The id lookups are Arrow hash joins that release the GIL: two threads, two cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        codes = list(pool.map(lambda lookup: _codes(*lookup), lookups))
    tp_account, tp_contact, tp_content = codes[:3]
    contact_role = _category_codes(contacts["role"], taxonomy.role_names)
    content_type = _category_codes(content["content_type"], taxonomy.content_type_names)
    phases = taxonomy.phases
    phase_matrix = np.zeros((len(content) + 1, len(phases)), dtype=bool)  # last row: none
    for i, fits in enumerate(content["phases"]):
        for p in fits:
            if p in phases:
                phase_matrix[i, phases.index(p)] = True
    has_content = tp_content >= 0
    role = np.where(tp_contact >= 0, contact_role[np.maximum(tp_contact, 0)], -1)
    tp_codes = {
        "channel": _category_codes(tp["channel"], taxonomy.channel_names),
        "event": _category_codes(tp["event_type"], taxonomy.event_type_names),
        "content_type": np.where(has_content, content_type[np.maximum(tp_content, 0)], -1),
        "role": role,
    }
    tp_ns = column_ns(tp["ts"])
    value = (
        tp["value"].to_numpy(dtype=np.float64, na_value=np.nan)
        if "value" in tp
        else np.full(len(tp), np.nan)
    )

    if len(exposures):
        exp_account, exp_content = codes[3:]
        exp_ns = column_ns(exposures["ts"])
        exp_response_ns = _first_response_ns(
            exp_account,
            exp_content,
            exp_ns,
            tp_account,
            tp_content,
            tp_ns,
            tp_codes["event"],
            taxonomy,
        )
    else:
        exp_account = exp_ns = exp_response_ns = np.zeros(0, dtype=np.int64)
    return _Prepared(
        n_accounts=len(accounts),
        tp_account=tp_account,
        tp_ns=tp_ns,
        tp_contact=tp_contact,
        tp_codes=tp_codes,
        tp_phase_fit=phase_matrix[np.where(has_content, tp_content, len(content))],
        tp_value=value,
        contact_role=contact_role,
        exp_account=exp_account,
        exp_ns=exp_ns,
        exp_response_ns=exp_response_ns,
    )


def _first_response_ns(
    exp_account: np.ndarray,
    exp_content: np.ndarray,
    exp_ns: np.ndarray,
    tp_account: np.ndarray,
    tp_content: np.ndarray,
    tp_ns: np.ndarray,
    tp_event: np.ndarray,
    taxonomy: Taxonomy,
) -> np.ndarray:
    """For each exposure, the time of the first response: a touchpoint of the same account
    and content, of a response event type, at or after the exposure and within
    RESPONSE_WINDOW_DAYS. int64 max where there is none."""
    n_content = int(max(exp_content.max(initial=0), tp_content.max(initial=0))) + 1
    response_types = [
        taxonomy.event_type_names.index(e)
        for e in RESPONSE_EVENT_TYPES
        if e in taxonomy.event_type_names
    ]
    is_response = (tp_content >= 0) & (tp_account >= 0) & np.isin(tp_event, response_types)
    out = np.full(len(exp_ns), _NO_TIME, dtype=np.int64)
    shown = np.flatnonzero((exp_account >= 0) & (exp_content >= 0))
    if not len(shown) or not is_response.any():
        return out
    r_key = tp_account[is_response] * n_content + tp_content[is_response]
    r_ns = tp_ns[is_response]
    e_key = exp_account[shown] * n_content + exp_content[shown]
    e_ns = exp_ns[shown]
    # One sortable int64 per event: key * span + time since the first event, in the finest
    # unit that cannot overflow. Sorted needles make searchsorted one pass over the haystack.
    base = min(int(r_ns.min()), int(e_ns.min()))
    n_keys = int(max(r_key.max(), e_key.max())) + 1
    for unit in (10**6, 10**9, 60 * 10**9):
        span = (max(int(r_ns.max()), int(e_ns.max())) - base) // unit + 1
        if span * n_keys < np.iinfo(np.int64).max // 2:
            break
    else:
        raise FeatureError(
            f"{n_keys:,} account-content pairs are too many to match responses in one "
            "partition; use --engine dask"
        )
    r_composite = r_key * span + (r_ns - base) // unit
    r_order = np.argsort(r_composite)
    haystack = r_composite[r_order]
    # Responses within one time unit (1 ms at most scales) may come in any order; the
    # "first" response is then exact only to that unit, which no as-of date can tell apart.
    r_ns_sorted = r_ns[r_order]
    needle = e_key * span + (e_ns - base) // unit
    needle_order = np.argsort(needle)
    pos = np.empty(len(needle), dtype=np.int64)
    pos[needle_order] = np.searchsorted(haystack, needle[needle_order], side="left")
    last = len(haystack) - 1

    def same_key(p: np.ndarray) -> np.ndarray:
        return (p <= last) & (haystack[np.minimum(p, last)] // span == e_key)

    # A response in the same time unit but earlier than the exposure is not an answer to it.
    while True:
        early = same_key(pos) & (r_ns_sorted[np.minimum(pos, last)] < e_ns)
        if not early.any():
            break
        pos[early] += 1
    found = same_key(pos)
    pos = np.minimum(pos, last)
    hit = found & (r_ns_sorted[pos] - e_ns <= RESPONSE_WINDOW_DAYS * NS_PER_DAY)
    out[shown[hit]] = r_ns_sorted[pos[hit]]
    return out


def _windowed_counts(
    account: np.ndarray, bucket: np.ndarray, codes: np.ndarray, n_accounts: int, n_codes: int
) -> np.ndarray:
    """(n_edges, n_accounts, n_codes) cumulative counts: [j] = events within edge j.

    Edges first, so the cumulative sum adds whole contiguous blocks.
    """
    n_edges = len(_EDGES_DAYS)
    keep = codes >= 0
    flat = (bucket[keep] * n_accounts + account[keep]) * n_codes + codes[keep]
    counts = np.bincount(flat, minlength=n_accounts * n_codes * n_edges)
    return counts.reshape(n_edges, n_accounts, n_codes).cumsum(axis=0)


def _days_since_last(
    account: np.ndarray,
    codes: np.ndarray,
    ns: np.ndarray,
    as_of_ns: int,
    n_accounts: int,
    n_codes: int,
) -> np.ndarray:
    """(n_accounts, n_codes) days since the last event per code; NaN if none."""
    keep = codes >= 0
    last = np.full(n_accounts * n_codes, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, account[keep] * n_codes + codes[keep], ns[keep])
    days = (as_of_ns - last) / NS_PER_DAY
    days[last == np.iinfo(np.int64).min] = np.nan
    return days.reshape(n_accounts, n_codes)


def _features_at(
    data: JourneyData, prep: _Prepared, as_of: pd.Timestamp, taxonomy: Taxonomy
) -> dict[str, np.ndarray | pd.Series]:
    n = prep.n_accounts
    as_of_ns = int(as_of.as_unit("ns").value)
    before = (prep.tp_ns < as_of_ns) & (prep.tp_account >= 0)
    rows = np.flatnonzero(before)
    account = prep.tp_account[rows]
    ns = prep.tp_ns[rows]
    age_ns = as_of_ns - ns
    edges = np.array(_EDGES_DAYS, dtype=np.int64) * NS_PER_DAY
    # bucket j: age in (edge[j-1], edge[j]]; beyond the last edge: len(edges) (never counted)
    bucket = np.searchsorted(edges, age_ns, side="left")
    in_year = bucket < len(edges)
    out: dict[str, np.ndarray | pd.Series] = {}

    total = (
        np.bincount(bucket[in_year] * n + account[in_year], minlength=n * len(edges))
        .reshape(len(edges), n)
        .cumsum(axis=0)
    )
    window_index = [_EDGES_DAYS.index(w) for w in WINDOWS_DAYS]
    for w, j in zip(WINDOWS_DAYS, window_index, strict=True):
        out[f"n_touchpoints_{w}d"] = total[j]

    codes_by_prefix = {k: v[rows] for k, v in prep.tp_codes.items()}

    def vocabulary_features(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        """(windowed counts, days since last) of one vocabulary."""
        if prefix == "content_phase":
            r, p = np.nonzero(prep.tp_phase_fit[rows])
            acc_p, bucket_p, ns_p, codes = account[r], bucket[r], ns[r], p.astype(np.int64)
        else:
            acc_p, bucket_p, ns_p, codes = account, bucket, ns, codes_by_prefix[prefix]
        n_values = len(taxonomy.vocabulary(vocabularies[prefix]))
        sel = bucket_p < len(edges)
        counts = _windowed_counts(acc_p[sel], bucket_p[sel], codes[sel], n, n_values)
        return counts, _days_since_last(acc_p, codes, ns_p, as_of_ns, n, n_values)

    vocabularies = {prefix: vocabulary for prefix, vocabulary, _ in _VOCABULARIES}
    # numpy releases the GIL in these array passes: two threads keep both cores busy.
    with ThreadPoolExecutor(max_workers=2) as pool:
        computed = dict(zip(vocabularies, pool.map(vocabulary_features, vocabularies), strict=True))
    counts_by_prefix: dict[str, np.ndarray] = {}
    for prefix, (counts, recency) in computed.items():
        counts_by_prefix[prefix] = counts
        for i, value in enumerate(taxonomy.vocabulary(vocabularies[prefix])):
            for w, j in zip(WINDOWS_DAYS, window_index, strict=True):
                out[f"n_{prefix}_{value}_{w}d"] = counts[j, :, i]
            out[f"days_since_{prefix}_{value}"] = recency[:, i]

    j30, j60 = _EDGES_DAYS.index(30), _EDGES_DAYS.index(60)
    events = counts_by_prefix["event"]
    event_names = taxonomy.event_type_names
    engagement = [i for i, e in enumerate(event_names) if e in RESPONSE_EVENT_TYPES]

    def trend(c: np.ndarray) -> np.ndarray:
        return (2 * c[j30] - c[j60]).astype(np.float64)

    out["trend_touchpoints_30d"] = trend(total)
    out["trend_engagement_30d"] = trend(events[:, :, engagement].sum(axis=2))
    out["trend_support_tickets_30d"] = _event_trend(events, event_names, "support_ticket", trend)
    out["trend_usage_30d"] = _event_trend(events, event_names, "usage", trend)

    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, account, ns)
    out["days_since_first_touch"] = np.where(
        first == np.iinfo(np.int64).max, np.nan, (as_of_ns - first) / NS_PER_DAY
    )
    last = _days_since_last(account, np.zeros_like(account), ns, as_of_ns, n, 1)[:, 0]
    out["days_since_last_touch"] = last
    out["n_purchases"] = _event_count_ever(
        account, codes_by_prefix["event"], event_names, "purchase", n
    )
    out["n_churns"] = _event_count_ever(account, codes_by_prefix["event"], event_names, "churn", n)
    nan = np.full(n, np.nan)
    purchase_days = np.asarray(out.get("days_since_event_purchase", nan), dtype=np.float64)
    churn_days = np.asarray(out.get("days_since_event_churn", nan), dtype=np.float64)
    out["is_customer"] = (
        ~np.isnan(purchase_days) & (np.isnan(churn_days) | (churn_days > purchase_days))
    ).astype(np.int64)

    out.update(_buying_center(data, prep, rows, account, age_ns, as_of, n, taxonomy))
    out.update(_engagement_kpis(prep, rows, account, age_ns, as_of_ns, n, taxonomy))
    out.update(_firmographics(data, as_of))
    out.update(_crm_phase(data, as_of, taxonomy))
    return out


def _event_trend(
    events: np.ndarray, names: list[str], event: str, trend: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    if event not in names:
        return np.zeros(events.shape[1])
    return trend(events[:, :, names.index(event)])


def _event_count_ever(
    account: np.ndarray, event_codes: np.ndarray, names: list[str], event: str, n: int
) -> np.ndarray:
    if event not in names:
        return np.zeros(n, dtype=np.int64)
    return np.bincount(account[event_codes == names.index(event)], minlength=n)


def _buying_center(
    data: JourneyData,
    prep: _Prepared,
    rows: np.ndarray,
    account: np.ndarray,
    age_ns: np.ndarray,
    as_of: pd.Timestamp,
    n: int,
    taxonomy: Taxonomy,
) -> dict[str, np.ndarray]:
    contacts = data.contacts
    accounts = pd.Index(data.accounts["account_id"])
    c_account = _codes(contacts["account_id"], accounts)
    created = contacts["created_at"] < as_of
    if "left_at" in contacts:
        left_at = contacts["left_at"]
        present = (created & ~(left_at < as_of)).to_numpy(dtype=bool)
        left_recently = ((left_at < as_of) & (left_at >= as_of - pd.Timedelta(days=365))).to_numpy(
            dtype=bool, na_value=False
        )
    else:
        present = created.to_numpy(dtype=bool)
        left_recently = np.zeros(len(contacts), dtype=bool)
    known = c_account >= 0
    n_roles = len(taxonomy.role_names)
    role = prep.contact_role
    out: dict[str, np.ndarray] = {}
    out["n_contacts"] = np.bincount(c_account[present & known], minlength=n)
    out["n_contacts_left_365d"] = np.bincount(c_account[left_recently & known], minlength=n)
    buyer = (
        taxonomy.role_names.index("economic_buyer")
        if "economic_buyer" in taxonomy.role_names
        else -2
    )
    out["economic_buyer_left_365d"] = np.bincount(
        c_account[left_recently & known & (role == buyer)], minlength=n
    )
    sel = present & known & (role >= 0)
    roles_present = np.zeros((n, n_roles), dtype=bool)
    roles_present[c_account[sel], role[sel]] = True
    out["n_roles_covered"] = roles_present.sum(axis=1)

    e = ENGAGEMENT_WINDOW_DAYS
    recent = age_ns <= e * NS_PER_DAY
    contact = prep.tp_contact[rows][recent]
    acc = account[recent]
    with_contact = contact >= 0
    engaged = np.unique(contact[with_contact])
    engaged_account = c_account[engaged]
    out[f"n_contacts_engaged_{e}d"] = np.bincount(
        engaged_account[engaged_account >= 0], minlength=n
    )
    roles_engaged = np.zeros((n, n_roles), dtype=bool)
    r = role[contact[with_contact]]
    a = acc[with_contact]
    roles_engaged[a[r >= 0], r[r >= 0]] = True
    n_engaged = roles_engaged.sum(axis=1)
    out[f"n_roles_engaged_{e}d"] = n_engaged
    covered = out["n_roles_covered"]
    out[f"share_roles_engaged_{e}d"] = np.where(
        covered > 0, (roles_engaged & roles_present).sum(axis=1) / np.maximum(covered, 1), np.nan
    )
    return out


def _engagement_kpis(
    prep: _Prepared,
    rows: np.ndarray,
    account: np.ndarray,
    age_ns: np.ndarray,
    as_of_ns: int,
    n: int,
    taxonomy: Taxonomy,
) -> dict[str, np.ndarray]:
    e = ENGAGEMENT_WINDOW_DAYS
    out: dict[str, np.ndarray] = {}
    shown = (
        (prep.exp_ns < as_of_ns)
        & (prep.exp_ns >= as_of_ns - e * NS_PER_DAY)
        & (prep.exp_account >= 0)
    )
    n_shown = np.bincount(prep.exp_account[shown], minlength=n)
    # A response counts only if it happened before as-of: later ones are not yet known.
    responded = shown & (prep.exp_response_ns < as_of_ns)
    n_responded = np.bincount(prep.exp_account[responded], minlength=n)
    out[f"n_exposures_{e}d"] = n_shown
    out[f"n_responses_{e}d"] = n_responded
    out[f"response_rate_{e}d"] = np.where(n_shown > 0, n_responded / np.maximum(n_shown, 1), np.nan)

    names = taxonomy.event_type_names
    event = prep.tp_codes["event"][rows]
    value = prep.tp_value[rows]
    recent = age_ns <= e * NS_PER_DAY
    dwell_types = [names.index(x) for x in ("view", "attend") if x in names]
    dwell = recent & np.isin(event, dwell_types) & ~np.isnan(value)
    minutes = np.bincount(account[dwell], weights=value[dwell], minlength=n)
    n_dwell = np.bincount(account[dwell], minlength=n)
    out[f"dwell_minutes_{e}d"] = minutes
    out[f"mean_dwell_minutes_{e}d"] = np.where(
        n_dwell > 0, minutes / np.maximum(n_dwell, 1), np.nan
    )
    money_types = [names.index(x) for x in ("purchase", "renewal") if x in names]
    money = (age_ns <= 365 * NS_PER_DAY) & np.isin(event, money_types) & ~np.isnan(value)
    out["revenue_365d"] = np.bincount(account[money], weights=value[money], minlength=n)
    return out


def _firmographics(data: JourneyData, as_of: pd.Timestamp) -> dict[str, np.ndarray | pd.Series]:
    accounts = data.accounts
    employees = accounts["employees"].to_numpy(dtype=np.float64, na_value=np.nan)
    revenue = (
        accounts["annual_revenue"].to_numpy(dtype=np.float64, na_value=np.nan)
        if "annual_revenue" in accounts
        else np.full(len(accounts), np.nan)
    )
    age = (as_of.as_unit("ns").value - column_ns(accounts["created_at"])) / NS_PER_DAY
    return {
        "employees": employees,
        "log_employees": np.log10(np.maximum(employees, 1)),
        "annual_revenue": revenue,
        "account_age_days": age,
        "industry": accounts["industry"].reset_index(drop=True),
        "region": accounts["region"].reset_index(drop=True),
    }


def _crm_phase(
    data: JourneyData, as_of: pd.Timestamp, taxonomy: Taxonomy
) -> dict[str, np.ndarray | pd.Series]:
    stages = data.stages
    n = len(data.accounts)
    phase_type = pd.CategoricalDtype(taxonomy.phases)
    phase = pd.Series(pd.Categorical.from_codes(np.full(n, -1), dtype=phase_type))
    days = np.full(n, np.nan)
    if len(stages):
        account = _codes(stages["account_id"], pd.Index(data.accounts["account_id"]))
        ns = column_ns(stages["ts"])
        as_of_ns = int(as_of.as_unit("ns").value)
        keep = np.flatnonzero((ns < as_of_ns) & (account >= 0))
        # last record per account: sort by (account, ts) and take each account's last row
        order = keep[np.lexsort((ns[keep], account[keep]))]
        if len(order):
            is_last = np.append(account[order][1:] != account[order][:-1], True)
            last = order[is_last]
            codes = _category_codes(stages["phase"], taxonomy.phases)
            phase_codes = np.full(n, -1, dtype=np.int64)
            phase_codes[account[last]] = codes[last]
            phase = pd.Series(pd.Categorical.from_codes(phase_codes, dtype=phase_type))
            days[account[last]] = (as_of_ns - ns[last]) / NS_PER_DAY
    return {"crm_phase": phase, "days_in_crm_phase": days}


def compute_features(
    data: JourneyData, as_of: Sequence[pd.Timestamp], taxonomy: Taxonomy
) -> pd.DataFrame:
    """Feature rows for every account of ``data`` created before each as-of date.

    Returns columns ``account_id``, ``as_of`` and then :func:`feature_specs` in order, sorted
    by (as_of, account_id). Assumes canonical tables (see ``features.schema``); touchpoints
    need not be sorted. Only events strictly before each as-of date are used.
    """
    dates = [to_utc(t) for t in as_of]
    specs = feature_specs(taxonomy)
    prep = _prepare(data, taxonomy)
    frames = []
    created_ns = column_ns(data.accounts["created_at"])
    for date in dates:
        values = _features_at(data, prep, date, taxonomy)
        frame = pd.DataFrame({"account_id": data.accounts["account_id"].reset_index(drop=True)})
        frame["as_of"] = pd.Series([date] * len(frame), dtype="datetime64[ns, UTC]")
        columns: dict[str, np.ndarray | pd.Series] = {}
        for spec in specs:
            v = values[spec.name]
            if spec.kind == "count":
                columns[spec.name] = np.asarray(v, dtype=np.int32)
            elif spec.kind == "number":
                columns[spec.name] = np.asarray(v, dtype=np.float64)
            else:
                columns[spec.name] = pd.Series(v).reset_index(drop=True)
        frame = pd.concat([frame, pd.DataFrame(columns)], axis=1)
        frames.append(frame[created_ns < date.as_unit("ns").value])
    if not frames:
        return _empty_frame(specs, taxonomy)
    result = pd.concat(frames, ignore_index=True)
    return result.sort_values(["as_of", "account_id"], kind="stable", ignore_index=True)


def _empty_frame(specs: list[FeatureSpec], taxonomy: Taxonomy) -> pd.DataFrame:
    dtypes: dict[str, object] = {"account_id": "str", "as_of": "datetime64[ns, UTC]"}
    category_vocab = {"industry": "industries", "region": "regions", "crm_phase": "phases"}
    for spec in specs:
        if spec.kind == "count":
            dtypes[spec.name] = np.int32
        elif spec.kind == "number":
            dtypes[spec.name] = np.float64
        else:
            dtypes[spec.name] = pd.CategoricalDtype(taxonomy.vocabulary(category_vocab[spec.name]))
    return pd.DataFrame({k: pd.Series([], dtype=v) for k, v in dtypes.items()})  # type: ignore[call-overload]


def build_features(
    data: JourneyData,
    as_of: Sequence[pd.Timestamp],
    taxonomy: Taxonomy,
    *,
    engine: Engine = "pandas",
    scheduler: str | None = None,
    npartitions: int | None = None,
) -> pd.DataFrame:
    """Point-in-time features, one row per (account, as-of date); see :func:`compute_features`.

    ``engine="dask"`` hash-partitions every table by account and runs
    :func:`compute_features` on each partition of a Dask cluster (``scheduler`` address, or a
    2-worker LocalCluster); the result equals the pandas engine's.
    """
    if not as_of:
        raise FeatureError("no as-of dates given; pass at least one")
    if engine == "pandas":
        return compute_features(data, as_of, taxonomy)
    if engine == "dask":
        from features.pipeline_dask import build_features_dask

        return build_features_dask(
            data, as_of, taxonomy, scheduler=scheduler, npartitions=npartitions
        )
    raise FeatureError(f"engine {engine!r} is not one of pandas, dask")


def build_account_features(
    data: JourneyData, account_id: str, as_of: pd.Timestamp, taxonomy: Taxonomy
) -> pd.Series:
    """One account's feature row as of ``as_of`` (serving computes "now" with this).

    ``data`` may hold only this account's rows (the online store's view) or everything; the
    result equals the batch row for the same account and time.
    """
    one = select_accounts(data, [account_id])
    if one.accounts.empty:
        raise FeatureError(f"account {account_id!r} is not in the accounts table")
    frame = compute_features(one, [as_of], taxonomy)
    if frame.empty:
        raise FeatureError(f"account {account_id!r} was created after {as_of}")
    return frame.iloc[0]


def select_accounts(data: JourneyData, account_ids: Sequence[str]) -> JourneyData:
    """The rows of ``data`` that belong to the given accounts (content is kept whole)."""
    ids = pd.Index(account_ids)

    def pick(frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty or "account_id" not in frame:
            return frame
        return frame[frame["account_id"].isin(ids)].reset_index(drop=True)

    return JourneyData(
        accounts=pick(data.accounts),
        contacts=pick(data.contacts),
        touchpoints=pick(data.touchpoints),
        content=data.content,
        stages=pick(data.stages),
        exposures=pick(data.exposures),
    )
