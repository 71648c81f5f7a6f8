"""The Dask engine of the feature pipeline: the same per-account code, run per partition.

Every table is hash-partitioned by account into the same ``npartitions`` buckets, so
partition *i* of every table holds all rows of the same accounts; each partition then runs
:func:`features.pipeline.compute.compute_features` unchanged. The content catalog is small
and goes to every partition whole.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd

from features.attributes import NO_FITTED_ATTRIBUTES, FittedAttributes
from features.pipeline.compute import compute_features
from features.pipeline.specs import empty_features, feature_specs
from features.schema import JourneyData, empty_table
from features.taxonomy import Taxonomy
from features.timestamps import to_utc

_PARTITION = "_partition"
_TABLES = ("accounts", "contacts", "touchpoints", "stages", "exposures")


def account_partition(account_ids: pd.Series, npartitions: int) -> np.ndarray:
    """The partition of each account id: a stable hash of the id modulo ``npartitions``.

    Stable across processes and tables (unlike Python's ``hash``), which is what lets the
    partitions of different tables line up.
    """
    hashed = pd.util.hash_pandas_object(account_ids.astype("str"), index=False)
    return (hashed.to_numpy() % np.uint64(npartitions)).astype(np.int64)


def _partition_features(
    accounts: pd.DataFrame,
    contacts: pd.DataFrame,
    touchpoints: pd.DataFrame,
    stages: pd.DataFrame,
    exposures: pd.DataFrame,
    *,
    content: pd.DataFrame,
    as_of: list[pd.Timestamp],
    taxonomy: Taxonomy,
    attributes: FittedAttributes,
) -> pd.DataFrame:
    def strip(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=_PARTITION).reset_index(drop=True)

    data = JourneyData(
        accounts=strip(accounts),
        contacts=strip(contacts),
        touchpoints=strip(touchpoints),
        content=content,
        stages=strip(stages),
        exposures=strip(exposures),
    )
    return compute_features(data, as_of, taxonomy, attributes=attributes)


@contextmanager
def dask_client(scheduler: str | None) -> Iterator[object]:
    """A client of the cluster at ``scheduler``, or of a new 2-worker LocalCluster."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def build_features_dask(
    data: JourneyData,
    as_of: Sequence[pd.Timestamp],
    taxonomy: Taxonomy,
    *,
    scheduler: str | None = None,
    npartitions: int | None = None,
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES,
) -> pd.DataFrame:
    """Features computed on a Dask cluster; equal to the pandas engine's result."""
    import dask.dataframe as dd

    dates = [to_utc(t) for t in as_of]
    with dask_client(scheduler) as client:
        workers = len(client.scheduler_info()["workers"])  # type: ignore[attr-defined]
        n = npartitions or max(2, 2 * workers)
        tables = []
        for name in _TABLES:
            frame = getattr(data, name)
            if frame.empty and "account_id" not in frame:
                frame = empty_table(name, taxonomy)
            frame = frame.assign(**{_PARTITION: account_partition(frame["account_id"], n)})
            # Same hash of the same partition numbers -> partition i of every table lines up.
            tables.append(
                dd.from_pandas(frame, npartitions=min(n, max(1, len(frame)))).shuffle(
                    on=_PARTITION, npartitions=n
                )
            )
        meta = empty_features(feature_specs(taxonomy, attributes), taxonomy)
        result = dd.map_partitions(
            _partition_features,
            *tables,
            content=data.content,
            as_of=dates,
            taxonomy=taxonomy,
            attributes=attributes,
            meta=meta,
            align_dataframes=False,
        ).compute()
    # Dask turns str columns into its own string dtype; give back the canonical one.
    result["account_id"] = result["account_id"].astype("str")
    return result.sort_values(["as_of", "account_id"], kind="stable", ignore_index=True)
