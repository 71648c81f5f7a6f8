"""Scoring accounts: one account online (with a per-account state cache), cold starts, and
every account at once (batch).

- ``answer``: what a request returns (``AccountScore``, ``ScoredAction``), ``ScoringError``;
- ``scorer``: :class:`Scorer`, the entry point (cache lookup, then warm, cold or cold start);
- ``cache``: the per-account state, its LRU cache, freshness and data-version keys;
- ``online``: answering one account from its state (arbitration, reasons of new actions);
- ``states``: computing accounts' states (features, predictions, reasons), many at once;
- ``stored``: a state as bytes for the store, and back;
- ``batch``: every account at once, for CRM sync;
- ``predict``: applying the models to feature frames, shared by online and batch.

The cold-start ranking and :func:`content_popularity` are pure computations in
``models.cold_start``.
"""

from models.cold_start import content_popularity
from serving.scoring.answer import AccountScore, ScoredAction, ScoringError
from serving.scoring.scorer import KnownAccount, Scorer

__all__ = [
    "AccountScore",
    "KnownAccount",
    "ScoredAction",
    "Scorer",
    "ScoringError",
    "content_popularity",
]
