"""The next-content model: will this contact respond to this content item shown now?

Target: 1 when an exposure (content shown or sent to a contact of an account) gets a response
within ``RESPONSE_WINDOW_DAYS``: a touchpoint of the same account, contact and content of a
response event type (``features.schema.RESPONSE_EVENT_TYPES``).

One row per (decision, content item): the account's pipeline features as of the decision,
the item's attributes (content type, topic, value) and how the item fits the account and
contact (:func:`candidate_features`). Training rows are the logged exposures (one item per
decision); serving scores every eligible item of a decision with the same function and the
top-1 policy picks the highest predicted response probability (:func:`top1`).

The feature pipeline has no per-topic counts, so :func:`topic_engagement` adds them (the
account's content touchpoints per topic before as-of); serving must pass the same columns.

One module per concern, each importing only those before it: ``errors``, ``columns``
(target, candidate definitions, the account columns read and used), ``topics``
(:func:`topic_engagement`), ``catalog`` (the catalog as arrays, eligibility),
``candidates`` (:func:`candidate_features`, one step per group of columns), ``model``
(parameters, :func:`fit`, :func:`predict_proba`) and ``scores`` (:func:`score_candidates`,
:func:`top1`).
"""

from models.next_content.candidates import (
    CATEGORICAL_CANDIDATES,
    CatalogArrays,
    candidate_arrays,
    candidate_features,
    catalog_arrays,
    categorical_dtypes,
)
from models.next_content.catalog import eligible_items, phase_fit_matrix
from models.next_content.columns import (
    CANDIDATE_COLUMNS,
    CANDIDATE_DEFINITIONS,
    ITEM_COLUMN,
    KEY_COLUMNS,
    LABEL_COLUMN,
    SERVING_POSITION,
    TARGET,
    TOPIC_WINDOWS,
    account_feature_columns,
    account_input_columns,
    candidate_input_columns,
    feature_columns,
    topic_columns,
)
from models.next_content.errors import NextContentModelError
from models.next_content.model import (
    DEFAULT_PARAMS,
    SMALL_DATA_PARAMS,
    SMALL_DATA_ROWS,
    fit,
    merged_params,
    predict_proba,
    refit,
)
from models.next_content.scores import score_candidates, top1, uplift_over_control
from models.next_content.topics import topic_engagement, topic_engagement_of_items

__all__ = [
    "CATEGORICAL_CANDIDATES",
    "CatalogArrays",
    "CANDIDATE_COLUMNS",
    "CANDIDATE_DEFINITIONS",
    "DEFAULT_PARAMS",
    "ITEM_COLUMN",
    "KEY_COLUMNS",
    "LABEL_COLUMN",
    "SERVING_POSITION",
    "SMALL_DATA_PARAMS",
    "SMALL_DATA_ROWS",
    "TARGET",
    "TOPIC_WINDOWS",
    "NextContentModelError",
    "account_feature_columns",
    "account_input_columns",
    "candidate_arrays",
    "candidate_features",
    "catalog_arrays",
    "categorical_dtypes",
    "candidate_input_columns",
    "eligible_items",
    "feature_columns",
    "fit",
    "merged_params",
    "phase_fit_matrix",
    "predict_proba",
    "refit",
    "score_candidates",
    "top1",
    "topic_columns",
    "topic_engagement",
    "topic_engagement_of_items",
    "uplift_over_control",
]
