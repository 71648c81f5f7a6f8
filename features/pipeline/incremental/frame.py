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


def typed_values(
    values: dict[str, float | int | str | None],
    taxonomy: Taxonomy,
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES,
) -> dict[str, float | int | str | None]:
    """``values`` (:func:`state_features`) as the frame's dtypes give them back as Python
    scalars: counts as ints, numbers as floats (NaN missing), categories as their level or
    None; in the frame's column order."""
    layout = _layout(taxonomy, attributes)
    # the counts as the frame's int32 column holds them, converted at once
    counts = dict(
        zip(
            layout.counts,
            np.array([values[n] for n in layout.counts], dtype=np.int32).tolist(),
            strict=True,
        )
    )
    out: dict[str, float | int | str | None] = {}
    for spec in layout.specs:
        if spec.kind == "count":
            out[spec.name] = counts[spec.name]
        elif spec.kind == "number":
            value = values[spec.name]
            out[spec.name] = np.nan if value is None else float(value)
        else:
            out[spec.name] = values[spec.name]
    return out


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


def exists_at(state: FeatureState, as_of: pd.Timestamp) -> bool:
    """Whether the account exists at ``as_of`` (created before it)."""
    created = created_ns(state)
    return created != NEVER and created < int(as_of.as_unit("ns").value)


def state_values(
    state: FeatureState,
    as_of: pd.Timestamp,
    taxonomy: Taxonomy,
    catalog: CatalogCodes,
    *,
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES,
) -> dict[str, float | int | str | None] | None:
    """The account's feature row at ``as_of`` as column -> plain value
    (:func:`typed_values`: what :func:`state_feature_frame`'s row holds, without building
    it), or None when the account is created at or after ``as_of``."""
    if not exists_at(state, as_of):
        return None
    values = state_features(state, as_of, taxonomy, catalog, attributes=attributes)
    return typed_values(values, taxonomy, attributes)


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
    values = state_features(state, as_of, taxonomy, catalog, attributes=attributes)
    frame = feature_frame(values, state.account_id, as_of, taxonomy, attributes)
    return frame if exists_at(state, as_of) else frame.iloc[:0]
