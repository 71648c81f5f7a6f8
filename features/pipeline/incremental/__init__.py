"""Incremental features: one account's feature state, updated as its events arrive, and
its feature row at any later as-of date derived from the state alone (equal to the batch
pipeline's row). ``state`` holds the state and its per-event updates, ``build`` builds and
merges states from whole tables, ``derive`` the feature values, ``frame`` the feature row
as the batch pipeline's frame, ``codec`` the state as bytes (what the service's store
keeps)."""

from features.pipeline.incremental.build import build_states, merge_rows
from features.pipeline.incremental.codec import decode_state, encode_state
from features.pipeline.incremental.derive import (
    CatalogCodes,
    StateError,
    state_features,
    topic_counts,
)
from features.pipeline.incremental.frame import state_feature_frame, state_values
from features.pipeline.incremental.state import (
    KEEP_DAYS,
    FeatureState,
    add_exposures,
    add_stages,
    add_touchpoints,
    empty_state,
    fold,
    valid_from_ns,
    with_account,
    with_contacts,
)

__all__ = [
    "KEEP_DAYS",
    "CatalogCodes",
    "FeatureState",
    "StateError",
    "add_exposures",
    "add_stages",
    "add_touchpoints",
    "build_states",
    "decode_state",
    "encode_state",
    "empty_state",
    "fold",
    "merge_rows",
    "state_feature_frame",
    "state_features",
    "state_values",
    "topic_counts",
    "valid_from_ns",
    "with_account",
    "with_contacts",
]
