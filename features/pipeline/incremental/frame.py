"""One account's feature row as the batch pipeline's frame: the values
``derive.state_features`` gives, laid out in ``compute_features``' columns and dtypes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.attributes import NO_FITTED_ATTRIBUTES, FittedAttributes
from features.pipeline.incremental.derive import CatalogCodes, created_ns, state_features
from features.pipeline.incremental.state import NEVER, FeatureState
from features.pipeline.specs import FeatureSpec, category_dtype, feature_specs
from features.taxonomy import Taxonomy


@dataclass(frozen=True)
class _Layout:
    """How a row of values becomes ``compute_features``' frame: the specs and, per kind,
    the names and their positions in the output."""

    specs: list[FeatureSpec]
    counts: list[str]
    numbers: list[str]
    categories: list[FeatureSpec]
    dtypes: list[pd.CategoricalDtype]
    order: list[int]  # output column -> position in [keys, counts, numbers, categories]


_LAYOUTS: dict[tuple[int, int], tuple[Taxonomy, FittedAttributes, _Layout]] = {}


def _layout(taxonomy: Taxonomy, attributes: FittedAttributes) -> _Layout:
    """The layout of ``feature_specs(taxonomy, attributes)``, built once per pair."""
    key = (id(taxonomy), id(attributes))
    known = _LAYOUTS.get(key)
    if known is not None and known[0] is taxonomy and known[1] is attributes:
        return known[2]
    specs = feature_specs(taxonomy, attributes)
    counts = [s.name for s in specs if s.kind == "count"]
    numbers = [s.name for s in specs if s.kind == "number"]
    categories = [s for s in specs if s.kind == "category"]
    where = {n: 2 + i for i, n in enumerate([*counts, *numbers, *(c.name for c in categories)])}
    dtypes = [category_dtype(c, taxonomy) for c in categories]
    layout = _Layout(
        specs, counts, numbers, categories, dtypes, [0, 1, *(where[s.name] for s in specs)]
    )
    _LAYOUTS[key] = (taxonomy, attributes, layout)
    return layout


def _code(dtype: pd.CategoricalDtype, value: object) -> int:
    return -1 if value is None else int(dtype.categories.tolist().index(value))


def feature_frame(
    values: dict[str, float | int | str | None],
    account_id: str,
    as_of: pd.Timestamp,
    taxonomy: Taxonomy,
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES,
) -> pd.DataFrame:
    """The one-row frame ``compute_features`` gives for these values: ``account_id``,
    ``as_of``, then the features in order and in their dtypes (built from one block per
    dtype: a column at a time costs tens of milliseconds for a row)."""
    layout = _layout(taxonomy, attributes)
    parts = [
        pd.DataFrame(
            {
                "account_id": pd.array([account_id], dtype="str"),
                "as_of": pd.DatetimeIndex([as_of]).as_unit("ns"),
            }
        ),
        pd.DataFrame(
            np.array([[values[n] for n in layout.counts]], dtype=np.int32),
            columns=layout.counts,
        ),
        pd.DataFrame(
            np.array([[values[n] for n in layout.numbers]], dtype=np.float64),
            columns=layout.numbers,
        ),
        pd.DataFrame(
            {
                c.name: pd.Categorical.from_codes([_code(dtype, values[c.name])], dtype=dtype)
                for c, dtype in zip(layout.categories, layout.dtypes, strict=True)
            }
        ),
    ]
    return pd.concat(parts, axis=1).iloc[:, layout.order]


def state_feature_frame(
    state: FeatureState,
    as_of: pd.Timestamp,
    taxonomy: Taxonomy,
    catalog: CatalogCodes,
    *,
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES,
) -> pd.DataFrame:
    """The account's feature row at ``as_of`` as ``compute_features`` gives it (none when
    the account is created at or after ``as_of``: an empty frame of its columns)."""
    created = created_ns(state)
    values = state_features(state, as_of, taxonomy, catalog, attributes=attributes)
    frame = feature_frame(values, state.account_id, as_of, taxonomy, attributes)
    if created == NEVER or created >= int(as_of.as_unit("ns").value):
        return frame.iloc[:0]
    return frame
