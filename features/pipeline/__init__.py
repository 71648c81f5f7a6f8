"""The point-in-time feature pipeline: touchpoint histories -> one row per (account, as-of).

A feature row for account A as of time T uses only events with ``ts < T`` (touchpoints,
exposures, CRM stages, contacts created before T). The same pure function,
:func:`~features.pipeline.compute.compute_features`, runs on the whole data set (pandas
engine), on each account-partition of a Dask cluster (Dask engine) and on one account's
events as of "now" (serving, :func:`build_account_features`), so the three agree by
construction.

Modules, by concern: ``specs`` (which features, their definitions), ``prepare`` (events as
integer codes), ``windows`` (windowed counts, recency, trends), ``responses`` (exposures and
their responses), ``buying_center``, ``firmographics`` (accounts table and CRM phase),
``attributes`` (declared custom attributes), ``compute`` (the pandas engine),
``dask_engine``, ``build`` (the batch entry, choosing the engine) and ``account`` (the
online entry). This package re-exports the entry points.
"""

from features.pipeline.account import build_account_features, select_accounts
from features.pipeline.build import Engine, build_features
from features.pipeline.specs import (
    FEATURE_PIPELINE_VERSION,
    FeatureError,
    FeatureSpec,
    attribute_specs,
    feature_definitions,
    feature_specs,
)

__all__ = [
    "FEATURE_PIPELINE_VERSION",
    "Engine",
    "FeatureError",
    "FeatureSpec",
    "attribute_specs",
    "build_account_features",
    "build_features",
    "feature_definitions",
    "feature_specs",
    "select_accounts",
]
