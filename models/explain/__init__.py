"""Reason codes: LightGBM feature contributions turned into sentences people understand.

:func:`contributions_for` asks LightGBM for SHAP-style contributions (``pred_contrib=True``:
one value per feature plus the bias, summing to the raw score). :func:`reason_codes` keeps
the features that push the output in the explained direction, strongest first, and phrases
each from its name family and one-line definition (``features.pipeline.feature_definitions``
and ``models.next_content.CANDIDATE_DEFINITIONS``), not from a hand-written list per feature:

- ``n_content_type_whitepaper_30d = 3``  -> "3 Whitepaper touchpoints in the last 30 days"
- ``n_event_download_30d = 3``           -> "3 downloads in the last 30 days"
- ``n_role_it_90d = 0``                  -> "no IT contact engaged in the last 90 days"
- ``days_since_event_purchase = 40``     -> "40 days since the last purchase"
- ``share_roles_engaged_90d = 0.5``      -> "half of the buying center's roles engaged in the
  last 90 days"
- ``crm_phase = selection``              -> "CRM phase: Selection"

Anything no family covers reads "<definition>: <value>". Labels of category values come
from ``labels`` (e.g. :func:`taxonomy_labels`), then from the quoted label in the definition,
then from the value itself.

``pred_contrib`` is slow (1.5 ms per binary row, 3.7 ms per 8-class row): compute reasons
off the warm request path or for the few rows shown.

One module per concern, each importing only those before it: ``errors``,
``contributions`` (LightGBM's contributions per class), ``words`` (numbers, days, plurals,
labels), ``phrasing`` (:func:`describe`: a table of name families, then a table of
definition forms) and ``reasons`` (:class:`Reason`, :func:`reason_codes`,
:func:`taxonomy_labels`); ``changes`` (:func:`describe_changes`: what happened since the
last visit) and ``timing`` (:func:`why_now`: what changed that makes this the moment to
act) need only ``words``.
"""

from models.explain.changes import describe_changes
from models.explain.contributions import contributions_for
from models.explain.errors import ExplainError
from models.explain.phrasing import describe
from models.explain.reasons import (
    EXPLORATION,
    Reason,
    exploration_reason,
    reason_codes,
    taxonomy_labels,
)
from models.explain.timing import WhyNow, why_now

__all__ = [
    "EXPLORATION",
    "ExplainError",
    "Reason",
    "WhyNow",
    "contributions_for",
    "describe",
    "describe_changes",
    "exploration_reason",
    "reason_codes",
    "taxonomy_labels",
    "why_now",
]
