"""One account's feature row at an as-of date, derived from its :class:`FeatureState`.

Every feature follows the batch pipeline's definition (``features.pipeline.specs``; the
modules named beside each part), on one account's arrays: a few dozen events, so plain
numpy per feature costs microseconds where the batch code's frames and bincounts over all
accounts cost milliseconds for one. ``tests/features/test_incremental.py`` checks that the
row equals :func:`~features.pipeline.compute.compute_features`' for many accounts and
as-of dates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.attributes import NO_FITTED_ATTRIBUTES, FittedAttributes
from features.pipeline.incremental.state import (
    NEVER,
    FeatureState,
    valid_from_ns,
    vocabulary_key,
)
from features.pipeline.prepare import category_codes
from features.pipeline.specs import (
    EDGES_DAYS,
    ENGAGEMENT_WINDOW_DAYS,
    VOCABULARIES,
    WINDOWS_DAYS,
    FeatureError,
)
from features.schema import RESPONSE_EVENT_TYPES, RESPONSE_WINDOW_DAYS
from features.taxonomy import Taxonomy
from features.timestamps import NS_PER_DAY

_EDGES_NS = np.array(EDGES_DAYS, dtype=np.int64) * NS_PER_DAY
_WINDOW_INDEX = [EDGES_DAYS.index(w) for w in WINDOWS_DAYS]
_MISSING = float("nan")


class StateError(FeatureError):
    """A state that cannot give features at the asked time or with the asked inputs (the
    caller computes them from the account's rows instead)."""


@dataclass(frozen=True)
class CatalogCodes:
    """The catalog as the features read it: content_id -> position, and per position the
    content-type code, the phases it fits and the topic code (-1: none)."""

    position: dict[str, int]
    type_code: np.ndarray
    phase_fit: np.ndarray  # (n_items + 1, n_phases) bool; the last row: not in the catalog
    topic_code: np.ndarray

    @classmethod
    def of(cls, content: pd.DataFrame, taxonomy: Taxonomy) -> CatalogCodes:
        """The codes of ``content`` (a canonical content table)."""
        phases = list(taxonomy.phases)
        fit = np.zeros((len(content) + 1, len(phases)), dtype=bool)
        for i, fits in enumerate(content["phases"]):
            for p in fits:
                if p in phases:
                    fit[i, phases.index(p)] = True
        topics = pd.Categorical(content["topic"].astype(str), categories=taxonomy.topic_names)
        return cls(
            position={str(c): i for i, c in enumerate(content["content_id"].astype(str))},
            type_code=np.append(
                category_codes(content["content_type"], taxonomy.content_type_names), -1
            ),
            phase_fit=fit,
            topic_code=np.append(np.asarray(topics.codes, dtype=np.int64), -1),
        )

    def items(self, content_ids: list[str]) -> np.ndarray:
        """Catalog position of each id (``len(catalog)``: not in it)."""
        none = len(self.type_code) - 1
        return np.array([self.position.get(c, none) for c in content_ids], dtype=np.int64)


@dataclass(frozen=True)
class _Window:
    """The state's touchpoints before as-of, with their ages and window buckets."""

    as_of_ns: int
    ns: np.ndarray
    age: np.ndarray
    bucket: np.ndarray  # as ``features.pipeline.prepare.TouchpointWindow.bucket``
    event: np.ndarray
    channel: np.ndarray
    contact: np.ndarray
    content: np.ndarray  # state content position, -1 none
    item: np.ndarray  # catalog position, len(catalog) for none
    value: np.ndarray


def state_features(
    state: FeatureState,
    as_of: pd.Timestamp,
    taxonomy: Taxonomy,
    catalog: CatalogCodes,
    *,
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES,
) -> dict[str, float | int | str | None]:
    """Returns feature name -> value of the account at ``as_of`` (every feature of
    :func:`feature_specs` with ``attributes``): counts as ints, numbers as floats (NaN when
    missing), categories as their level or None. Raises :class:`StateError` when the state
    cannot give them: as-of before its fold point allows, another taxonomy, or touchpoint
    or exposure attributes (the state keeps no event attribute values)."""
    as_of_ns = int(as_of.as_unit("ns").value)
    if state.vocabulary != vocabulary_key(taxonomy):
        raise StateError(f"the feature state of {state.account_id!r} has another taxonomy")
    if as_of_ns < valid_from_ns(state):
        raise StateError(
            f"the feature state of {state.account_id!r} folded events a feature at {as_of} "
            "would count"
        )
    if attributes.declaration.of("touchpoints") or attributes.declaration.of("exposures"):
        raise StateError("feature states keep no touchpoint or exposure attribute values")
    w = _window(state, as_of_ns, catalog)
    out: dict[str, float | int | str | None] = {}
    out.update(_counts(state, w, taxonomy, catalog))
    out.update(_lifecycle(state, w, out, taxonomy))
    out.update(_buying_center(state, w, taxonomy))
    out.update(_engagement(state, w, catalog, taxonomy))
    out.update(_account(state, as_of, as_of_ns, taxonomy))
    out.update(_account_attributes(state, attributes))
    out["as_of_month"] = as_of.month
    out["as_of_weekday"] = as_of.day_of_week
    return out


def _window(state: FeatureState, as_of_ns: int, catalog: CatalogCodes) -> _Window:
    keep = state.tp_ns < as_of_ns
    ns = state.tp_ns[keep]
    age = as_of_ns - ns
    content = state.tp_content[keep]
    items = catalog.items(state.content_ids)
    none = len(catalog.type_code) - 1
    return _Window(
        as_of_ns=as_of_ns,
        ns=ns,
        age=age,
        bucket=np.searchsorted(_EDGES_NS, age, side="left"),
        event=state.tp_event[keep],
        channel=state.tp_channel[keep],
        contact=state.tp_contact[keep],
        content=content,
        item=np.where(content >= 0, items[np.maximum(content, 0)] if len(items) else none, none),
        value=state.tp_value[keep],
    )


def positions(values: list[str | None], vocabulary: list[str]) -> np.ndarray:
    """Position of each value in ``vocabulary`` (-1: None or not in it)."""
    where = {v: i for i, v in enumerate(vocabulary)}
    return np.array([where.get(v, -1) if v is not None else -1 for v in values], dtype=np.int64)


def _days(as_of_ns: int, last: int) -> float:
    return _MISSING if last == NEVER else (as_of_ns - last) / NS_PER_DAY


def _within(bucket: np.ndarray) -> list[int]:
    """Touchpoints within each window of ``WINDOWS_DAYS`` (bucket <= the window's edge)."""
    return [int(np.count_nonzero(bucket <= j)) for j in _WINDOW_INDEX]


def _code_lasts(
    state: FeatureState, w: _Window, catalog: CatalogCodes, taxonomy: Taxonomy
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """prefix -> (code per touchpoint row, the row it belongs to, last time per code of the
    folded touchpoints) for each vocabulary; content phases give a row per phase fitted."""
    f = state.folded
    n_roles = len(taxonomy.role_names)
    role_code = positions(state.contact_role, taxonomy.role_names)
    contact_role = np.append(role_code, -1)
    rows = np.arange(len(w.ns))
    items = catalog.items(state.content_ids)
    out = {
        "channel": (w.channel, rows, f.channel_last),
        "event": (w.event, rows, f.event_last),
        "role": (contact_role[w.contact], rows, _by_code(f.contact_last, role_code, n_roles)),
    }
    type_of_item = catalog.type_code
    n_types = len(taxonomy.content_type_names)
    out["content_type"] = (
        type_of_item[w.item],
        rows,
        _by_code(f.content_last, type_of_item[items] if len(items) else items, n_types),
    )
    r, p = np.nonzero(catalog.phase_fit[w.item])
    folded_phase = np.full(len(taxonomy.phases), NEVER, dtype=np.int64)
    if len(items):
        fr, fp = np.nonzero(catalog.phase_fit[items])
        np.maximum.at(folded_phase, fp, f.content_last[fr])
    out["content_phase"] = (p.astype(np.int64), r, folded_phase)
    return out


def _by_code(last: np.ndarray, code: np.ndarray, n_codes: int) -> np.ndarray:
    """The latest of ``last`` (one time per contact or item) per code of theirs."""
    out = np.full(n_codes, NEVER, dtype=np.int64)
    keep = code >= 0
    np.maximum.at(out, code[keep], last[keep])
    return out


def _counts(
    state: FeatureState, w: _Window, taxonomy: Taxonomy, catalog: CatalogCodes
) -> dict[str, float | int | str | None]:
    """``windows``: touchpoint counts, per-vocabulary counts and recencies, trends."""
    out: dict[str, float | int | str | None] = {}
    total = _within(w.bucket)
    for k, wd in enumerate(WINDOWS_DAYS):
        out[f"n_touchpoints_{wd}d"] = total[k]
    for prefix, (code, row, folded_last) in _code_lasts(state, w, catalog, taxonomy).items():
        values = taxonomy.vocabulary(next(v for p, v, _ in VOCABULARIES if p == prefix))
        n_values = len(values)
        keep = code >= 0
        code, bucket, ns = code[keep], w.bucket[row[keep]], w.ns[row[keep]]
        in_year = bucket < len(EDGES_DAYS)
        # (n_values, n_edges) cumulative over edges: [i, j] = touchpoints within edge j
        within = (
            np.bincount(
                code[in_year] * len(EDGES_DAYS) + bucket[in_year],
                minlength=n_values * len(EDGES_DAYS),
            )
            .reshape(n_values, len(EDGES_DAYS))
            .cumsum(axis=1)[:, _WINDOW_INDEX]
            .tolist()
        )
        last = folded_last.copy()
        np.maximum.at(last, code, ns)
        days = np.where(last == NEVER, np.nan, (w.as_of_ns - last) / NS_PER_DAY).tolist()
        for i, value in enumerate(values):
            for wd, n in zip(WINDOWS_DAYS, within[i], strict=True):
                out[f"n_{prefix}_{value}_{wd}d"] = n
            out[f"days_since_{prefix}_{value}"] = days[i]
    names = taxonomy.event_type_names
    j30, j60 = EDGES_DAYS.index(30), EDGES_DAYS.index(60)

    def trend(mask: np.ndarray) -> float:
        b = w.bucket[mask]
        return float(2 * np.count_nonzero(b <= j30) - np.count_nonzero(b <= j60))

    engagement = [i for i, e in enumerate(names) if e in RESPONSE_EVENT_TYPES]
    out["trend_touchpoints_30d"] = trend(np.ones(len(w.ns), dtype=bool))
    out["trend_engagement_30d"] = trend(np.isin(w.event, engagement))
    for feature, event in (("support_tickets", "support_ticket"), ("usage", "usage")):
        out[f"trend_{feature}_30d"] = (
            trend(w.event == names.index(event)) if event in names else 0.0
        )
    return out


def _lifecycle(
    state: FeatureState,
    w: _Window,
    counts: dict[str, float | int | str | None],
    taxonomy: Taxonomy,
) -> dict[str, float | int | str | None]:
    """``windows.lifecycle_features``: first and last touch, purchases, churns, customer."""
    f = state.folded
    first = min(int(w.ns.min(initial=np.iinfo(np.int64).max)), f.first_touch_ns)
    last = max(int(w.ns.max(initial=NEVER)), f.last_touch_ns)
    names = taxonomy.event_type_names

    def ever(event: str) -> int:
        if event not in names:
            return 0
        i = names.index(event)
        return int(np.count_nonzero(w.event == i)) + int(f.event_count[i])

    purchase = counts.get("days_since_event_purchase", _MISSING)
    churn = counts.get("days_since_event_churn", _MISSING)
    p = _MISSING if purchase is None else float(purchase)
    c = _MISSING if churn is None else float(churn)
    return {
        "days_since_first_touch": _MISSING
        if first == np.iinfo(np.int64).max
        else (w.as_of_ns - first) / NS_PER_DAY,
        "days_since_last_touch": _days(w.as_of_ns, last),
        "n_purchases": ever("purchase"),
        "n_churns": ever("churn"),
        "is_customer": int(not np.isnan(p) and (np.isnan(c) or c > p)),
    }


def _buying_center(
    state: FeatureState, w: _Window, taxonomy: Taxonomy
) -> dict[str, float | int | str | None]:
    """``buying_center``: contacts present and gone, roles covered and engaged."""
    e = ENGAGEMENT_WINDOW_DAYS
    as_of_ns = w.as_of_ns
    listed = state.contact_listed
    created, left = state.contact_created_ns, state.contact_left_ns
    present = listed & (created != NEVER) & (created < as_of_ns) & ~(left < as_of_ns)
    gone = listed & (left < as_of_ns) & (left >= as_of_ns - 365 * NS_PER_DAY)
    roles = taxonomy.role_names
    role = positions(state.contact_role, roles)
    buyer = roles.index("economic_buyer") if "economic_buyer" in roles else -2
    covered = set(role[present & (role >= 0)].tolist())
    recent = (w.age <= e * NS_PER_DAY) & (w.contact >= 0)
    engaged = np.unique(w.contact[recent])
    # A touchpoint's contact counts when it is a contact of the account (a listed row).
    engaged_listed = engaged[listed[engaged]] if len(engaged) else engaged
    roles_engaged = set(role[engaged_listed][role[engaged_listed] >= 0].tolist())
    return {
        "n_contacts": int(np.count_nonzero(present)),
        "n_contacts_left_365d": int(np.count_nonzero(gone)),
        "economic_buyer_left_365d": int(np.count_nonzero(gone & (role == buyer))),
        "n_roles_covered": len(covered),
        f"n_contacts_engaged_{e}d": len(engaged_listed),
        f"n_roles_engaged_{e}d": len(roles_engaged),
        f"share_roles_engaged_{e}d": len(roles_engaged & covered) / len(covered)
        if covered
        else _MISSING,
    }


def _engagement(
    state: FeatureState, w: _Window, catalog: CatalogCodes, taxonomy: Taxonomy
) -> dict[str, float | int | str | None]:
    """``responses.exposure_features`` and ``windows.value_features``."""
    e = ENGAGEMENT_WINDOW_DAYS
    as_of_ns = w.as_of_ns
    names = taxonomy.event_type_names
    shown = (state.exp_ns < as_of_ns) & (state.exp_ns >= as_of_ns - e * NS_PER_DAY)
    n_shown = int(np.count_nonzero(shown))
    n_responded = 0
    if n_shown:
        response_types = [names.index(x) for x in RESPONSE_EVENT_TYPES if x in names]
        # every touchpoint of the state (later ones too): a response found later than
        # as-of is not known yet, as in the batch pipeline
        in_catalog = catalog.items(state.content_ids) < len(catalog.type_code) - 1
        is_response = np.isin(state.tp_event, response_types) & (state.tp_content >= 0)
        for ns, content in zip(state.exp_ns[shown], state.exp_content[shown], strict=True):
            if content < 0 or not in_catalog[content]:
                continue
            hits = state.tp_ns[is_response & (state.tp_content == content) & (state.tp_ns >= ns)]
            first = int(hits.min()) if len(hits) else NEVER
            if (
                first != NEVER
                and first - ns <= RESPONSE_WINDOW_DAYS * NS_PER_DAY
                and first < as_of_ns
            ):
                n_responded += 1
    recent = w.age <= e * NS_PER_DAY
    dwell_types = [names.index(x) for x in ("view", "attend") if x in names]
    dwell = recent & np.isin(w.event, dwell_types) & ~np.isnan(w.value)
    minutes = float(np.sum(w.value[dwell])) if dwell.any() else 0.0
    money_types = [names.index(x) for x in ("purchase", "renewal") if x in names]
    money = (w.age <= 365 * NS_PER_DAY) & np.isin(w.event, money_types) & ~np.isnan(w.value)
    n_dwell = int(np.count_nonzero(dwell))
    return {
        f"n_exposures_{e}d": n_shown,
        f"n_responses_{e}d": n_responded,
        f"response_rate_{e}d": n_responded / n_shown if n_shown else _MISSING,
        f"dwell_minutes_{e}d": minutes,
        f"mean_dwell_minutes_{e}d": minutes / n_dwell if n_dwell else _MISSING,
        "revenue_365d": float(np.sum(w.value[money])) if money.any() else 0.0,
    }


def created_ns(state: FeatureState) -> int:
    """When the account was created (``features.schema.account_created_at``): its
    ``created_at``, else its first touchpoint, stage or exposure; NEVER if none."""
    given = state.account.get("created_at")
    if given is not None:
        return int(given)
    first = min(
        int(state.tp_ns.min(initial=np.iinfo(np.int64).max)),
        int(state.exp_ns.min(initial=np.iinfo(np.int64).max)),
        int(state.stage_ns.min(initial=np.iinfo(np.int64).max)),
        state.folded.first_activity_ns,
    )
    return NEVER if first == np.iinfo(np.int64).max else first


def _account(
    state: FeatureState, as_of: pd.Timestamp, as_of_ns: int, taxonomy: Taxonomy
) -> dict[str, float | int | str | None]:
    """``firmographics``: the account row and the CRM's last phase before as-of."""
    a = state.account
    employees = _number(a.get("employees"))
    created = created_ns(state)
    before = np.flatnonzero(state.stage_ns < as_of_ns)
    phase: str | None = None
    days = _MISSING
    if len(before):
        last = int(before[-1])
        code = int(state.stage_phase[last])
        phase = taxonomy.phases[code] if code >= 0 else None
        days = (as_of_ns - int(state.stage_ns[last])) / NS_PER_DAY
    return {
        "employees": employees,
        "log_employees": float(np.log10(np.maximum(employees, 1))),
        "annual_revenue": _number(a.get("annual_revenue")),
        "account_age_days": _MISSING if created == NEVER else (as_of_ns - created) / NS_PER_DAY,
        "industry": _level(a.get("industry"), taxonomy.vocabulary("industries")),
        "region": _level(a.get("region"), taxonomy.vocabulary("regions")),
        "crm_phase": phase,
        "days_in_crm_phase": days,
    }


def _number(value: object) -> float:
    try:
        return _MISSING if value is None else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return _MISSING


def _level(value: object, levels: list[str] | tuple[str, ...]) -> str | None:
    return str(value) if value is not None and str(value) in levels else None


def _account_attributes(
    state: FeatureState, attributes: FittedAttributes
) -> dict[str, float | int | str | None]:
    """``attributes``: the account's declared custom attributes."""
    out: dict[str, float | int | str | None] = {}
    for name, kind in attributes.declaration.of("accounts").items():
        value = state.account.get(name)
        if kind == "number":
            out[f"account_{name}"] = _number(value)
        else:
            out[f"account_{name}"] = _level(value, attributes.levels_of("accounts", name))
    return out


def topic_counts(state: FeatureState, as_of: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """(touchpoints in the 365 days before ``as_of``, touchpoints ever before it) per
    content id of the state (``state.content_ids`` order), what the next-content model's
    topic engagement is summed from."""
    as_of_ns = int(as_of.as_unit("ns").value)
    n = len(state.content_ids)
    before = (state.tp_ns < as_of_ns) & (state.tp_content >= 0)
    recent = before & (state.tp_ns >= as_of_ns - 365 * NS_PER_DAY)
    return (
        np.bincount(state.tp_content[recent], minlength=n),
        np.bincount(state.tp_content[before], minlength=n) + state.folded.content_count,
    )
