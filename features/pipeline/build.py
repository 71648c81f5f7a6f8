"""The batch entry: point-in-time features by the pandas or the Dask engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pandas as pd

from features.attributes import NO_FITTED_ATTRIBUTES, FittedAttributes
from features.pipeline.compute import compute_features
from features.pipeline.dask_engine import build_features_dask
from features.pipeline.specs import FeatureError
from features.schema import JourneyData
from features.taxonomy import Taxonomy

Engine = Literal["pandas", "dask"]


def build_features(
    data: JourneyData,
    as_of: Sequence[pd.Timestamp],
    taxonomy: Taxonomy,
    *,
    engine: Engine = "pandas",
    scheduler: str | None = None,
    npartitions: int | None = None,
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES,
) -> pd.DataFrame:
    """Point-in-time features, one row per (account, as-of date); see
    :func:`~features.pipeline.compute.compute_features` (``attributes``: the declared custom
    attributes with their training levels).

    ``engine="dask"`` hash-partitions every table by account and runs
    ``compute_features`` on each partition of a Dask cluster (``scheduler`` address, or a
    2-worker LocalCluster); the result equals the pandas engine's.
    """
    if not as_of:
        raise FeatureError("no as-of dates given; pass at least one")
    if engine == "pandas":
        return compute_features(data, as_of, taxonomy, attributes=attributes)
    if engine == "dask":
        return build_features_dask(
            data,
            as_of,
            taxonomy,
            scheduler=scheduler,
            npartitions=npartitions,
            attributes=attributes,
        )
    raise FeatureError(f"engine {engine!r} is not one of pandas, dask")
