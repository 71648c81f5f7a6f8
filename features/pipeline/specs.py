"""What the feature pipeline produces: every feature's name, kind and definition, in order.

The definitions are what reason codes quote, so they are written for people. The windows
and vocabularies named here are shared by the modules that compute the features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from features.attributes import NO_FITTED_ATTRIBUTES, FittedAttributes
from features.errors import InvalidInputError
from features.schema import RESPONSE_WINDOW_DAYS
from features.taxonomy import Taxonomy

# Bump when a feature's definition changes, so models trained on old features are not
# served new ones (MLflow runs log it).
# 1.1.0: calendar features and custom-attribute features.
FEATURE_PIPELINE_VERSION = "1.1.0"

WINDOWS_DAYS = (7, 30, 90, 365)
# Bucket edges: the 60-day edge serves the 30-vs-previous-30 trend features.
EDGES_DAYS = (7, 30, 60, 90, 365)
ENGAGEMENT_WINDOW_DAYS = 90

# Vocabulary features: (prefix, taxonomy vocabulary, how a touchpoint gets its value).
VOCABULARIES = (
    ("channel", "channels", "touchpoint channel"),
    ("event", "event_types", "event type"),
    ("content_type", "content_types", "content type of the touchpoint's content"),
    ("content_phase", "phases", "phase the touchpoint's content fits"),
    ("role", "roles", "buying-center role of the touchpoint's contact"),
)

# Category features -> the taxonomy vocabulary of their categories.
_CATEGORY_VOCABULARIES = {"industry": "industries", "region": "regions", "crm_phase": "phases"}


class FeatureError(InvalidInputError):
    """Inputs the pipeline cannot compute features from; the message says which and why."""


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    definition: str
    kind: Literal["count", "number", "category"]
    # The levels of a category feature that are not a taxonomy vocabulary (custom attributes,
    # fixed at training); None for the taxonomy's category features.
    categories: tuple[str, ...] | None = None


def feature_specs(
    taxonomy: Taxonomy, attributes: FittedAttributes = NO_FITTED_ATTRIBUTES
) -> list[FeatureSpec]:
    """Every feature the pipeline produces, in output order, with a one-line definition;
    ``attributes`` adds the features of declared custom attributes. Raises
    :class:`FeatureError` when an attribute's feature name is already a feature's."""
    specs = [
        *_touchpoint_specs(),
        *_vocabulary_specs(taxonomy),
        *_trend_specs(),
        *_lifecycle_specs(),
        *_buying_center_specs(),
        *_engagement_specs(),
        *_account_specs(),
        *_calendar_specs(),
    ]
    names = {s.name for s in specs}
    extra = attribute_specs(attributes)
    clashes = sorted(s.name for s in extra if s.name in names)
    if clashes:
        raise FeatureError(
            f"custom attributes would make features {clashes} that already exist; "
            "rename those attributes"
        )
    return [*specs, *extra]


def feature_definitions(
    taxonomy: Taxonomy, attributes: FittedAttributes = NO_FITTED_ATTRIBUTES
) -> dict[str, str]:
    """Feature name -> one-line definition, in output order."""
    return {s.name: s.definition for s in feature_specs(taxonomy, attributes)}


def empty_features(specs: Sequence[FeatureSpec], taxonomy: Taxonomy) -> pd.DataFrame:
    """A zero-row feature frame: ``account_id``, ``as_of`` and ``specs`` in their dtypes."""
    dtypes: dict[str, object] = {"account_id": "str", "as_of": "datetime64[ns, UTC]"}
    for spec in specs:
        if spec.kind == "count":
            dtypes[spec.name] = np.int32
        elif spec.kind == "number":
            dtypes[spec.name] = np.float64
        else:
            dtypes[spec.name] = category_dtype(spec, taxonomy)
    return pd.DataFrame({k: pd.Series([], dtype=v) for k, v in dtypes.items()})  # type: ignore[call-overload]


def category_dtype(spec: FeatureSpec, taxonomy: Taxonomy) -> pd.CategoricalDtype:
    """The dtype of a category feature: its fixed levels or its taxonomy vocabulary."""
    if spec.categories is not None:
        return pd.CategoricalDtype(pd.Index(list(spec.categories), dtype="str"))
    return pd.CategoricalDtype(taxonomy.vocabulary(_CATEGORY_VOCABULARIES[spec.name]))


def _labels(taxonomy: Taxonomy, vocabulary: str) -> dict[str, str]:
    sources: dict[str, Sequence[object]] = {
        "channels": taxonomy.channels,
        "event_types": taxonomy.event_types,
        "content_types": taxonomy.content_types,
        "roles": taxonomy.roles,
        "phases": taxonomy.phase_models[taxonomy.default_phase_model].phases,
    }
    return {item.name: item.label for item in sources[vocabulary]}  # type: ignore[attr-defined]


def _touchpoint_specs() -> list[FeatureSpec]:
    return [
        FeatureSpec(f"n_touchpoints_{w}d", f"touchpoints in the last {w} days", "count")
        for w in WINDOWS_DAYS
    ]


def _vocabulary_specs(taxonomy: Taxonomy) -> list[FeatureSpec]:
    specs: list[FeatureSpec] = []
    for prefix, vocabulary, what in VOCABULARIES:
        labels = _labels(taxonomy, vocabulary)
        for value in taxonomy.vocabulary(vocabulary):
            label = labels[value]
            specs.extend(
                FeatureSpec(
                    f"n_{prefix}_{value}_{w}d",
                    f"touchpoints with {what} '{label}' in the last {w} days",
                    "count",
                )
                for w in WINDOWS_DAYS
            )
            specs.append(
                FeatureSpec(
                    f"days_since_{prefix}_{value}",
                    f"days since the last touchpoint with {what} '{label}' (empty if never)",
                    "number",
                )
            )
    return specs


def _trend_specs() -> list[FeatureSpec]:
    return [
        FeatureSpec(
            f"trend_{name}_30d",
            f"{what} in the last 30 days minus the 30 days before",
            "number",
        )
        for name, what in (
            ("touchpoints", "touchpoints"),
            ("engagement", "engagement touchpoints (responses to content)"),
            ("support_tickets", "support tickets"),
            ("usage", "product usage events"),
        )
    ]


def _lifecycle_specs() -> list[FeatureSpec]:
    return [
        FeatureSpec(
            "days_since_first_touch", "days since the account's first touchpoint", "number"
        ),
        FeatureSpec("days_since_last_touch", "days since the account's last touchpoint", "number"),
        FeatureSpec("n_purchases", "purchases ever", "count"),
        FeatureSpec("n_churns", "churns ever", "count"),
        FeatureSpec(
            "is_customer",
            "1 if the account has purchased and not churned since its last purchase "
            "(0: the account is not a customer: it never purchased, or churned since)",
            "count",
        ),
    ]


def _buying_center_specs() -> list[FeatureSpec]:
    e = ENGAGEMENT_WINDOW_DAYS
    return [
        FeatureSpec("n_contacts", "contacts in the buying center", "count"),
        FeatureSpec("n_contacts_left_365d", "contacts who left in the last 365 days", "count"),
        FeatureSpec(
            "economic_buyer_left_365d", "economic buyers who left in the last 365 days", "count"
        ),
        FeatureSpec("n_roles_covered", "buying-center roles with at least one contact", "count"),
        FeatureSpec(
            f"n_contacts_engaged_{e}d", f"contacts with a touchpoint in the last {e} days", "count"
        ),
        FeatureSpec(
            f"n_roles_engaged_{e}d",
            f"buying-center roles with a touchpoint in the last {e} days",
            "count",
        ),
        FeatureSpec(
            f"share_roles_engaged_{e}d",
            f"share of the buying center's roles engaged in the last {e} days",
            "number",
        ),
    ]


def _engagement_specs() -> list[FeatureSpec]:
    e = ENGAGEMENT_WINDOW_DAYS
    return [
        FeatureSpec(
            f"n_exposures_{e}d", f"items shown or sent to the account in the last {e} days", "count"
        ),
        FeatureSpec(
            f"n_responses_{e}d",
            f"items shown in the last {e} days that got a response within "
            f"{RESPONSE_WINDOW_DAYS} days",
            "count",
        ),
        FeatureSpec(
            f"response_rate_{e}d",
            f"share of content shown in the last {e} days that got a response "
            "(empty if none shown)",
            "number",
        ),
        FeatureSpec(
            f"dwell_minutes_{e}d",
            f"minutes spent viewing and attending content in the last {e} days",
            "number",
        ),
        FeatureSpec(
            f"mean_dwell_minutes_{e}d",
            f"average minutes per view or attendance in the last {e} days",
            "number",
        ),
        FeatureSpec("revenue_365d", "purchase and renewal amounts in the last 365 days", "number"),
    ]


def _account_specs() -> list[FeatureSpec]:
    return [
        FeatureSpec("employees", "number of employees", "number"),
        FeatureSpec("log_employees", "log10 of the number of employees", "number"),
        FeatureSpec("annual_revenue", "annual revenue in EUR", "number"),
        FeatureSpec("account_age_days", "days since the account was created", "number"),
        FeatureSpec("industry", "industry", "category"),
        FeatureSpec("region", "sales region", "category"),
        FeatureSpec("crm_phase", "phase last recorded in the CRM", "category"),
        FeatureSpec("days_in_crm_phase", "days since the CRM last recorded a phase", "number"),
    ]


def _calendar_specs() -> list[FeatureSpec]:
    return [
        FeatureSpec("as_of_month", "month of the year (1 = January)", "count"),
        FeatureSpec("as_of_weekday", "day of the week (0 = Monday, 6 = Sunday)", "count"),
    ]


def attribute_prefix(table: str) -> str:
    """The feature-name prefix of a touchpoint or exposure attribute."""
    return "touchpoint" if table == "touchpoints" else "exposure"


_EVENT_WORDS = {"touchpoints": "touchpoints", "exposures": "content shown or sent"}


def attribute_specs(fitted: FittedAttributes) -> list[FeatureSpec]:
    """The features of declared attributes (``features.pipeline.attributes``), in
    declaration order (the last of :func:`feature_specs`)."""
    specs: list[FeatureSpec] = []
    for name, kind in fitted.declaration.of("accounts").items():
        if kind == "number":
            specs.append(FeatureSpec(f"account_{name}", f"the account's {name}", "number"))
        else:
            specs.append(
                FeatureSpec(
                    f"account_{name}",
                    f"the account's {name} (values seen in training; others empty)",
                    "category",
                    categories=fitted.levels_of("accounts", name),
                )
            )
    for table in ("touchpoints", "exposures"):
        for name, kind in fitted.declaration.of(table).items():
            specs.extend(_eventattribute_specs(fitted, table, name, kind))
    return specs


def _eventattribute_specs(
    fitted: FittedAttributes, table: str, name: str, kind: str
) -> list[FeatureSpec]:
    prefix = attribute_prefix(table)
    events = _EVENT_WORDS[table]
    if kind == "number":
        return [
            FeatureSpec(
                f"{prefix}_{name}_sum_{w}d",
                f"sum of {name} over {events} in the last {w} days",
                "number",
            )
            for w in WINDOWS_DAYS
        ]
    e = ENGAGEMENT_WINDOW_DAYS
    return [
        FeatureSpec(
            f"{prefix}_{name}_last",
            f"{name} of the last of the {events} that had one (values seen in training; "
            "others empty)",
            "category",
            categories=fitted.levels_of(table, name),
        ),
        *(
            FeatureSpec(
                f"n_{prefix}_{name}_{slug}_{e}d",
                f"{events} with {name} '{level}' in the last {e} days",
                "count",
            )
            for level, slug in fitted.counted_levels(table, name)
        ),
    ]
