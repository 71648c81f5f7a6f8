"""Touchpoints and exposures as integer arrays, and the slice of them before an as-of date.

Speed comes from integer codes: every touchpoint gets an account code, a contact code and a
category code per vocabulary once per data set (:func:`prepare_events`); each as-of date then
selects the touchpoints before it and their window bucket (:func:`touchpoints_before`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.id_codes import id_positions
from features.pipeline.responses import first_response_ns
from features.pipeline.specs import EDGES_DAYS
from features.schema import JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import NS_PER_DAY, column_ns


def codes(values: pd.Series, index: pd.Index) -> np.ndarray:
    """Positions of ``values`` in ``index`` (-1 when missing or absent).

    Arrow-backed strings are looked up by Arrow's hash kernel; otherwise factorising first is
    several times faster than ``get_indexer`` on millions of strings.
    """
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        array = pa.array(values.array)
        value_set = pa.array(index.astype("str").to_numpy(dtype=object), type=array.type)
        found = pc.index_in(array, value_set=value_set)
        return found.fill_null(-1).to_numpy().astype(np.int64, copy=False)
    value_codes, uniques = pd.factorize(values)
    if len(uniques) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    lookup = index.get_indexer(uniques)
    return np.where(value_codes >= 0, lookup[value_codes], -1).astype(np.int64)


def category_codes(values: pd.Series, vocabulary: list[str]) -> np.ndarray:
    """Positions of ``values`` in ``vocabulary`` (-1 when missing or unknown)."""
    if isinstance(values.dtype, pd.CategoricalDtype) and list(values.cat.categories) == vocabulary:
        return values.cat.codes.to_numpy(dtype=np.int64)
    return codes(values.astype("str"), pd.Index(vocabulary))


@dataclass
class PreparedEvents:
    """Touchpoints and exposures as integer arrays, ready for bincounts at any as-of."""

    n_accounts: int
    tp_account: np.ndarray
    tp_ns: np.ndarray
    tp_contact: np.ndarray
    tp_codes: dict[str, np.ndarray]  # prefix -> category code per touchpoint (-1 none), int8
    tp_phase_fit: np.ndarray  # (n_touchpoints, n_phases) bool: content fits phase
    tp_value: np.ndarray
    contact_role: np.ndarray
    exp_account: np.ndarray
    exp_ns: np.ndarray
    exp_response_ns: np.ndarray  # first response within the window; int64 max if none
    # Touchpoints in time order, all of known accounts (as exports and the simulator write
    # them): the touchpoints before an as-of date are then a prefix, read as views.
    in_time_order: bool = False


def prepare_events(data: JourneyData, taxonomy: Taxonomy) -> PreparedEvents:
    """The integer arrays of ``data``'s touchpoints and exposures; assumes canonical tables."""
    tp = data.touchpoints
    content = data.content
    tp_account, tp_contact, tp_content, exp_account, exp_content = _id_codes(data)
    contact_role = category_codes(data.contacts["role"], taxonomy.role_names)
    content_type = category_codes(content["content_type"], taxonomy.content_type_names)
    has_content = tp_content >= 0
    # One byte per code (vocabularies are short): at 10M touchpoints int64 codes were
    # 4 x 87 MB held through every as-of date, a tenth of the pipeline's peak memory.
    tp_codes = {
        prefix: _narrow(values)
        for prefix, values in (
            ("channel", category_codes(tp["channel"], taxonomy.channel_names)),
            ("event", category_codes(tp["event_type"], taxonomy.event_type_names)),
            ("content_type", _gather(content_type, tp_content)),
            ("role", _gather(contact_role, tp_contact)),
        )
    }
    tp_ns = column_ns(tp["ts"])
    value = (
        tp["value"].to_numpy(dtype=np.float64, na_value=np.nan)
        if "value" in tp
        else np.full(len(tp), np.nan)
    )
    if len(data.exposures):
        exp_ns = column_ns(data.exposures["ts"])
        exp_response_ns = first_response_ns(
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
    phase_matrix = _phase_matrix(content, taxonomy)
    return PreparedEvents(
        n_accounts=len(data.accounts),
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
        in_time_order=bool(np.all(tp_account >= 0) and np.all(tp_ns[1:] >= tp_ns[:-1])),
    )


def _narrow(values: np.ndarray) -> np.ndarray:
    """Category codes (-1: none) as int8 when every code fits, else as they are."""
    if values.size and int(values.max()) > np.iinfo(np.int8).max:
        return values
    return values.astype(np.int8)


def _gather(values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``values[at]``, -1 where ``at`` is -1 (no row). Works when ``values`` is empty (a data
    set without contacts or content): every position is -1 then."""
    # Position -1 picks the appended -1: one gather, no clipping of positions into a table
    # that may have no rows.
    return np.append(values.astype(np.int64, copy=False), -1)[at]


def _id_codes(data: JourneyData) -> list[np.ndarray]:
    """Codes of touchpoints' account, contact and content and of exposures' account and
    content (the last two empty when there are no exposures)."""
    tp = data.touchpoints
    exposures = data.exposures
    account_ids, content_ids = data.accounts["account_id"], data.content["content_id"]
    lookups = [
        (tp["account_id"], account_ids),
        (tp["contact_id"], data.contacts["contact_id"]),
        (tp["content_id"], content_ids),
    ]
    if len(exposures):
        lookups += [(exposures["account_id"], account_ids), (exposures["content_id"], content_ids)]
    # The id lookups are Arrow hash joins that release the GIL: two threads, two cores. After
    # validation they are mostly found already (features.id_codes).
    with ThreadPoolExecutor(max_workers=2) as pool:
        found = list(pool.map(lambda lookup: id_positions(*lookup), lookups))
    if not len(exposures):
        found += [np.zeros(0, dtype=np.int64)] * 2
    return found


def _phase_matrix(content: pd.DataFrame, taxonomy: Taxonomy) -> np.ndarray:
    """(n_content + 1, n_phases) bool: content row fits phase; the last row is "no content"."""
    phases = taxonomy.phases
    matrix = np.zeros((len(content) + 1, len(phases)), dtype=bool)
    for i, fits in enumerate(content["phases"]):
        for p in fits:
            if p in phases:
                matrix[i, phases.index(p)] = True
    return matrix


@dataclass
class TouchpointWindow:
    """The touchpoints of known accounts before one as-of date, as parallel arrays."""

    as_of_ns: int
    n_accounts: int
    # positions in the prepared touchpoint arrays (a slice: the first ones, as views)
    rows: np.ndarray | slice
    account: np.ndarray
    ns: np.ndarray
    age_ns: np.ndarray  # as-of minus touchpoint time
    event: np.ndarray  # event type code
    # bucket j: age in (edge[j-1], edge[j]] of EDGES_DAYS; len(EDGES_DAYS): older (never
    # counted); int8, a byte per touchpoint
    bucket: np.ndarray


def touchpoints_before(prep: PreparedEvents, as_of_ns: int) -> TouchpointWindow:
    """The touchpoints strictly before ``as_of_ns`` whose account is known."""
    rows: np.ndarray | slice
    if prep.in_time_order:
        # A prefix: views of the prepared arrays instead of copies of nearly all of them.
        rows = slice(0, int(np.searchsorted(prep.tp_ns, as_of_ns, side="left")))
    else:
        rows = np.flatnonzero((prep.tp_ns < as_of_ns) & (prep.tp_account >= 0))
    ns = prep.tp_ns[rows]
    age_ns = as_of_ns - ns
    edges = np.array(EDGES_DAYS, dtype=np.int64) * NS_PER_DAY
    return TouchpointWindow(
        as_of_ns=as_of_ns,
        n_accounts=prep.n_accounts,
        rows=rows,
        account=prep.tp_account[rows],
        ns=ns,
        age_ns=age_ns,
        event=prep.tp_codes["event"][rows],
        bucket=np.searchsorted(edges, age_ns, side="left").astype(np.int8),
    )
