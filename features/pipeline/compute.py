"""The pandas engine: one pure function from the tables to feature rows at as-of dates.

:func:`compute_features` runs on the whole data set, on each account partition of a Dask
cluster and on one account's events (serving), so the three agree by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from features.attributes import NO_FITTED_ATTRIBUTES, FittedAttributes
from features.memory import release_free_memory
from features.pipeline.attributes import attribute_features
from features.pipeline.buying_center import buying_center_features
from features.pipeline.firmographics import crm_phase, firmographics
from features.pipeline.prepare import PreparedEvents, prepare_events, touchpoints_before
from features.pipeline.responses import exposure_features
from features.pipeline.specs import FeatureSpec, empty_features, feature_specs
from features.pipeline.windows import (
    lifecycle_features,
    touchpoint_counts,
    trend_features,
    value_features,
    vocabulary_features,
)
from features.schema import TABLES, JourneyData, account_created_at, with_all_columns
from features.taxonomy import Taxonomy
from features.timestamps import column_ns, to_utc


def compute_features(
    data: JourneyData,
    as_of: Sequence[pd.Timestamp],
    taxonomy: Taxonomy,
    *,
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES,
) -> pd.DataFrame:
    """Feature rows for every account of ``data`` created before each as-of date (accounts
    without ``created_at`` from their first activity: ``features.schema.account_created_at``).

    Returns columns ``account_id``, ``as_of`` and then :func:`feature_specs` (with the
    features of ``attributes``) in order, sorted by (as_of, account_id). Assumes canonical
    tables (see ``features.schema``) that hold the declared attribute columns (a missing one
    reads as all missing); touchpoints need not be sorted. Only events strictly before each
    as-of date are used.
    """
    dates = [to_utc(t) for t in as_of]
    specs = feature_specs(taxonomy, attributes)
    data = _with_columns(data, taxonomy)
    prep = prepare_events(data, taxonomy)
    pieces = []
    created = account_created_at(data)
    created_ns = column_ns(created)
    exists = created.notna().to_numpy()
    for date in dates:
        keep = exists & (created_ns < date.as_unit("ns").value)
        pieces.append(
            _columns_at(data, prep, date, specs, taxonomy, attributes, created=created, keep=keep)
        )
    if not pieces:
        return empty_features(specs, taxonomy)
    # Each copy of the result is 2 GB at 100,000 accounts on a monthly grid: the dates'
    # pieces are joined one column at a time, each piece let go once joined, into a frame
    # that takes the joined arrays as they are (copy=False: no consolidating copy); the rows
    # are sorted only when not in (as_of, account_id) order already.
    joined = {name: _joined([p.pop(name) for p in pieces]) for name in list(pieces[0])}
    del pieces
    release_free_memory()  # the pieces' arrays, freed in the heap's middle
    result = pd.DataFrame(joined, copy=False)
    in_order = data.accounts["account_id"].is_monotonic_increasing and all(
        a < b for a, b in zip(dates, dates[1:], strict=False)
    )
    if in_order:
        return result
    return result.sort_values(["as_of", "account_id"], kind="stable", ignore_index=True)


def _with_columns(data: JourneyData, taxonomy: Taxonomy) -> JourneyData:
    """``data`` with every table that lacks columns of the contract (``pd.DataFrame()``, e.g.
    the default exposures, or accounts without firmographics) completed with all-missing
    ones, so the feature code reads them like any other (counts 0, recencies and
    firmographics missing)."""
    lacking = {
        name: with_all_columns(name, frame, taxonomy)
        for name, frame in data.tables().items()
        if not set(TABLES[name].names) <= set(frame.columns)
    }
    return replace(data, **lacking) if lacking else data


def _joined(parts: list[np.ndarray | pd.Series]) -> np.ndarray | pd.Series:
    """One column from its pieces of every as-of date, in order."""
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    return pd.concat([pd.Series(p) for p in parts], ignore_index=True)


def _columns_at(
    data: JourneyData,
    prep: PreparedEvents,
    as_of: pd.Timestamp,
    specs: list[FeatureSpec],
    taxonomy: Taxonomy,
    attributes: FittedAttributes,
    *,
    created: pd.Series,
    keep: np.ndarray,
) -> dict[str, np.ndarray | pd.Series]:
    """The feature columns of one row per account kept (``keep``: bool per account) as of
    ``as_of``, keys then ``specs`` in order; ``created`` is when each account was created."""
    values = _features_at(data, prep, as_of, taxonomy, created=created)
    values.update(attribute_features(data, prep, as_of, attributes))
    account_id = data.accounts["account_id"].reset_index(drop=True)[keep].reset_index(drop=True)
    columns: dict[str, np.ndarray | pd.Series] = {
        "account_id": account_id,
        "as_of": pd.Series([as_of] * len(account_id), dtype="datetime64[ns, UTC]"),
    }
    for spec in specs:
        v = values.pop(spec.name)  # each computed array goes as soon as its column is made
        if spec.kind == "count":
            columns[spec.name] = np.asarray(v, dtype=np.int32)[keep]
        elif spec.kind == "number":
            columns[spec.name] = np.asarray(v, dtype=np.float64)[keep]
        else:
            columns[spec.name] = pd.Series(v).reset_index(drop=True)[keep].reset_index(drop=True)
    del values
    return columns


def _features_at(
    data: JourneyData,
    prep: PreparedEvents,
    as_of: pd.Timestamp,
    taxonomy: Taxonomy,
    *,
    created: pd.Series,
) -> dict[str, np.ndarray | pd.Series]:
    """Feature name -> one value per account (accounts-table order) as of ``as_of``."""
    window = touchpoints_before(prep, int(as_of.as_unit("ns").value))
    out: dict[str, np.ndarray | pd.Series] = {}
    counts, total = touchpoint_counts(window)
    out.update(counts)
    by_vocabulary, events = vocabulary_features(window, prep, taxonomy)
    out.update(by_vocabulary)
    out.update(trend_features(total, events, taxonomy))
    out.update(lifecycle_features(window, by_vocabulary, taxonomy))
    out.update(buying_center_features(data, prep, window, as_of, taxonomy))
    out.update(
        exposure_features(
            prep.exp_account, prep.exp_ns, prep.exp_response_ns, window.as_of_ns, prep.n_accounts
        )
    )
    out.update(value_features(window, prep, taxonomy))
    out.update(firmographics(data.accounts, as_of, created=created))
    out.update(crm_phase(data, as_of, taxonomy))
    n = prep.n_accounts
    out["as_of_month"] = np.full(n, as_of.month)
    out["as_of_weekday"] = np.full(n, as_of.day_of_week)
    return out
