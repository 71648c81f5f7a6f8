"""Scoring one account end to end (online) and every account at once (batch).

Online, :meth:`Scorer.score_account` turns an account's rows into phase probabilities, a
calibrated churn risk with its band, the top-k next actions of
``models.arbitration.rank_actions`` and at most three reason codes per model output. The
expensive part — the account's features as of the request (the feature pipeline's own code,
so online equals batch), the three models' predictions for the account and every (current
contact x catalog item) candidate, and the ``pred_contrib`` contributions behind the
reasons — is computed once and cached per account under ``(account_id, the account's data
version, model versions)``. The data version is the row count and latest timestamp of the
account's touchpoints, stages, exposures and contacts, so an ingested event changes the key
and the next request recomputes; model versions change it when the registry alias moves.
A cache hit re-runs only arbitration (served/dismissed history, filters, exploration).

Cached features are as of the request that computed them; ``feature_ttl_s`` bounds how old
they may get (recency features move with the clock even without new events).

An account the data do not hold (or hold with no account row) gets a cold-start answer: the
phase model's prior over phases, the most popular catalog items for the most likely phase,
``cold_start=True``.

Predictions use the boosters directly on float arrays with ``num_threads=1`` (see
``serving.model_holder``: threads after a fork can hang, and one row gains nothing from them).
"""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.errors import InvalidInputError
from features.pipeline import build_features, feature_definitions, select_accounts
from features.schema import RESPONSE_EVENT_TYPES, JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import to_utc
from models import next_content as nc
from models.arbitration import (
    AccountContext,
    Action,
    ArbitrationConfig,
    ChurnBand,
    Decision,
    HeldBack,
    PreparedCandidates,
    PreparedCatalog,
    Recent,
    churn_band,
    prepare_candidates,
    prepare_catalog,
    rank_actions,
)
from models.churn import calibrate
from models.explain import Reason, contributions_for, reason_codes, taxonomy_labels
from serving.model_holder import CHURN, NEXT_CONTENT, PHASE, PREDICT_THREADS, ModelHolder, ModelSet

MAX_REASONS = 3
DEFAULT_CACHE_ENTRIES = 20_000
DEFAULT_FEATURE_TTL_S = 3600.0
_NS_PER_S = 10**9


class ScoringError(InvalidInputError):
    """A request that cannot be scored; the message names the table, column and value."""


@dataclass(frozen=True)
class ScoredAction:
    """One ranked action with the reasons the next-content model gives for it."""

    action: Action
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class AccountScore:
    """Everything one recommendation answer holds.

    ``phase_proba`` maps each taxonomy phase (default phase model) to its probability
    (they sum to 1); ``churn_risk`` is calibrated (None for a cold start: nothing is known
    about the account); ``actions`` are in rank order with their propensities under the
    policy; ``held_back`` the "why not?" list; ``versions`` the model versions used.
    """

    account_id: str
    as_of: pd.Timestamp
    phase_proba: dict[str, float]
    phase: str
    phase_reasons: tuple[Reason, ...]
    churn_risk: float | None
    churn_band: ChurnBand | None
    churn_reasons: tuple[Reason, ...]
    actions: tuple[ScoredAction, ...]
    held_back: tuple[HeldBack, ...]
    policy: str
    explored: bool
    versions: Mapping[str, str]
    cold_start: bool
    cache_hit: bool


@dataclass
class _AccountState:
    """What a cache hit reuses: features, predictions and the reasons computed so far.

    Kept in few Python objects: thousands of cached accounts are walked by every full
    garbage collection, and a DataFrame alone is hundreds of objects (the collector then
    pauses a worker for seconds). So the feature row is kept pickled (it is only read to
    explain an action not explained yet) and the candidates as arrays."""

    as_of: pd.Timestamp
    as_of_ns: int
    features: bytes  # pickled one-row frame: pipeline features + topic engagement
    phase_proba: np.ndarray
    phase_reasons: tuple[Reason, ...]
    churn_risk: float
    churn_reasons: tuple[Reason, ...]
    candidates: PreparedCandidates  # every current contact x catalog item, P(response)
    consumed: Recent  # content touchpoints recent enough to matter while the state lives
    # (contact_id, content_id) -> reasons, filled lazily
    action_reasons: dict[tuple[str, str], tuple[Reason, ...]] = field(default_factory=dict)

    def feature_frame(self) -> pd.DataFrame:
        frame: pd.DataFrame = pickle.loads(self.features)
        return frame


@dataclass(frozen=True)
class _CandidateRows:
    """The cold path's candidate rows (contact-major: row = contact x n_items + item), their
    encoded matrix and contact_id -> contact position."""

    rows: pd.DataFrame
    x: np.ndarray
    contact_position: dict[str, int]


class _SingleThreaded:
    """A booster whose ``predict`` always runs on one thread (for ``contributions_for``)."""

    def __init__(self, booster: Any) -> None:
        self._booster = booster

    def predict(self, x: Any, **kwargs: Any) -> Any:
        return self._booster.predict(x, num_threads=PREDICT_THREADS, **kwargs)

    def num_feature(self) -> int:
        return int(self._booster.num_feature())


def _booster(estimator: Any) -> Any:
    return getattr(estimator, "booster_", estimator)


def content_popularity(touchpoints: pd.DataFrame) -> dict[str, float]:
    """content_id -> number of response touchpoints (click, download, ...) on it: what
    cold-start answers rank the catalog by."""
    if touchpoints.empty:
        return {}
    is_response = touchpoints["event_type"].astype(object).isin(RESPONSE_EVENT_TYPES)
    ids = touchpoints.loc[is_response & touchpoints["content_id"].notna(), "content_id"]
    counts = ids.astype(str).value_counts()
    return {str(k): float(v) for k, v in counts.items()}


class Scorer:
    """Scores accounts with the models of ``model_holder`` (one snapshot per request).

    ``content`` is the catalog (``taxonomy.content_frame()`` shape); ``popularity`` maps
    content_id -> popularity (e.g. :func:`content_popularity`) for cold starts (default:
    catalog value). Thread-safe: the cache is guarded by a lock held only for lookups.
    """

    def __init__(
        self,
        model_holder: ModelHolder,
        taxonomy: Taxonomy,
        arbitration_config: ArbitrationConfig,
        content: pd.DataFrame,
        *,
        popularity: Mapping[str, float] | None = None,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        feature_ttl_s: float = DEFAULT_FEATURE_TTL_S,
    ) -> None:
        self.holder = model_holder
        self.taxonomy = taxonomy
        self.config = arbitration_config
        self.content = content.reset_index(drop=True)
        self.phases: list[str] = list(taxonomy.phases)
        self.catalog: PreparedCatalog = prepare_catalog(self.content, self.phases)
        self.popularity = dict(popularity or {})
        self.cache_entries = cache_entries
        self.feature_ttl_ns = int(feature_ttl_s * _NS_PER_S)
        self.definitions: dict[str, str] = {
            **feature_definitions(taxonomy),
            **_topic_definitions(taxonomy),
            **nc.CANDIDATE_DEFINITIONS,
        }
        self.labels = taxonomy_labels(taxonomy)
        self._account_inputs = nc.account_input_columns(taxonomy)
        self._cache: OrderedDict[Hashable, _AccountState] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    # ---------------------------------------------------------------------------------
    # Online

    def score_account(
        self,
        data: JourneyData | Callable[[], JourneyData | None] | None,
        account_id: str,
        now: pd.Timestamp,
        *,
        k: int | None = None,
        contact_id: str | None = None,
        role: str | None = None,
        channel: str | None = None,
        rng: np.random.Generator,
        served: pd.DataFrame | Recent | None = None,
        dismissed: pd.DataFrame | Recent | None = None,
        explore: bool | None = None,
        data_version: int | None = None,
    ) -> AccountScore:
        """The answer for one account at ``now``.

        ``data`` holds the account's rows (the online store's view; a full
        :class:`JourneyData` works too, at the cost of filtering it), or is a function
        returning them, called only when the cache cannot answer (with ``data_version``
        given); ``None`` or no account row gives a cold start. ``served`` (contact_id,
        content_id, ts) are the actions served or shown recently and ``dismissed``
        (content_id, ts) the account's
        dismissals: arbitration's contact caps and "dismissed recently" rule read them.
        ``k`` defaults to the config's ``default_k``; ``explore`` forces the exploration
        coin (None: drawn from ``rng`` at the configured rate). ``data_version`` is the
        store's version of the account's rows when the caller knows it (it then keys the
        cache instead of a version computed from ``data``).
        """
        models = self.holder.current  # one snapshot for the whole request
        now = to_utc(now)
        k = self.config.default_k if k is None else k
        if k < 1:
            raise ScoringError(f"k = {k}; expected at least 1 action")
        version = self._version(data, account_id, data_version)
        if version is None:
            return self._cold_start(models, account_id, now, k, channel)
        key = (account_id, version, models.key)
        with self._lock:
            state = self._fresh(key, now.value)
            if state is not None:
                self._cache.move_to_end(key)
                self.hits += 1
                hit = True
        if state is None:
            rows = data() if callable(data) else data
            state = None if rows is None else self._compute_state(models, rows, account_id, now)
            if state is None:  # unknown after all, or created after now
                return self._cold_start(models, account_id, now, k, channel)
            with self._lock:
                self.misses += 1
                self._cache[key] = state
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_entries:
                    self._cache.popitem(last=False)
            hit = False
        return self._decide(
            models,
            state,
            account_id,
            now,
            k=k,
            contact_id=contact_id,
            role=role,
            channel=channel,
            rng=rng,
            served=served,
            dismissed=dismissed,
            explore=explore,
            cache_hit=hit,
        )

    def is_warm(self, account_id: str, data_version: int, now: pd.Timestamp) -> bool:
        """Whether a request for the account at ``now`` would hit the cache (features and
        predictions ready, only arbitration left to run) for the current models; False
        when no models are loaded."""
        if not self.holder.ready:
            return False
        key = (account_id, _store_version(data_version), self.holder.current.key)
        with self._lock:
            return self._fresh(key, to_utc(now).value) is not None

    def _fresh(self, key: Hashable, now_ns: int) -> _AccountState | None:
        """The state cached under ``key`` unless older than the feature TTL (the caller
        holds the lock)."""
        state = self._cache.get(key)
        if state is None or now_ns - state.as_of_ns > self.feature_ttl_ns:
            return None
        return state

    @staticmethod
    def _version(
        data: JourneyData | Callable[[], JourneyData | None] | None,
        account_id: str,
        data_version: int | None,
    ) -> Hashable | None:
        if data is None:
            return None
        if data_version is not None:
            return _store_version(data_version)
        if callable(data):
            raise ScoringError("a data loader needs the data_version of the rows it loads")
        return _data_version(data, account_id)

    def _decide(
        self,
        models: ModelSet,
        state: _AccountState,
        account_id: str,
        now: pd.Timestamp,
        *,
        k: int,
        contact_id: str | None,
        role: str | None,
        channel: str | None,
        rng: np.random.Generator,
        served: pd.DataFrame | Recent | None,
        dismissed: pd.DataFrame | Recent | None,
        explore: bool | None,
        cache_hit: bool,
    ) -> AccountScore:
        decision = self._rank(
            state, account_id, now, k, contact_id, role, channel, rng, served, dismissed, explore
        )
        reasons = self._action_reasons(models, state, decision.actions)
        proba = state.phase_proba
        return AccountScore(
            account_id=account_id,
            as_of=now,
            phase_proba=dict(zip(self.phases, proba.tolist(), strict=True)),
            phase=self.phases[int(np.argmax(proba))],
            phase_reasons=state.phase_reasons,
            churn_risk=state.churn_risk,
            churn_band=decision.churn_band,
            churn_reasons=state.churn_reasons,
            actions=tuple(
                ScoredAction(a, reasons.get((a.contact_id, a.content_id), ()))
                for a in decision.actions
            ),
            held_back=decision.held_back,
            policy=decision.policy,
            explored=decision.explored,
            versions=dict(models.versions),
            cold_start=False,
            cache_hit=cache_hit,
        )

    def _rank(
        self,
        state: _AccountState,
        account_id: str,
        now: pd.Timestamp,
        k: int,
        contact_id: str | None,
        role: str | None,
        channel: str | None,
        rng: np.random.Generator,
        served: pd.DataFrame | Recent | None,
        dismissed: pd.DataFrame | Recent | None,
        explore: bool | None,
    ) -> Decision:

        extra: dict[str, Any] = {}
        if served is not None:
            extra["served_last_week"] = served
        if dismissed is not None:
            extra["dismissed"] = dismissed
        context = AccountContext(
            account_id=account_id,
            phase_proba=state.phase_proba,
            phase_names=self.phases,
            churn_risk=state.churn_risk,
            consumed=state.consumed,
            contact_id=contact_id,
            role=role,
            channel=channel,
            **extra,
        )
        return rank_actions(
            context,
            state.candidates,
            self.catalog,
            self.config,
            k=k,
            rng=rng,
            now=now,
            explore=explore,
        )

    # ---------------------------------------------------------------------------------
    # The cold path: features, predictions, contributions

    def account_features(
        self, data: JourneyData, account_id: str, now: pd.Timestamp
    ) -> pd.DataFrame | None:
        """The account's feature row as of ``now`` (pipeline features, then the topic
        engagement the next-content model needs), or None if the account does not exist
        at ``now``. Equal to the batch row for the same account and time."""
        one = select_accounts(data, [account_id])
        if one.accounts.empty:
            return None
        return self._features(one, to_utc(now))

    def _features(self, data: JourneyData, now: pd.Timestamp) -> pd.DataFrame | None:
        frame = build_features(data, [now], self.taxonomy)
        if frame.empty:
            return None
        topics = nc.topic_engagement(data, frame[["account_id", "as_of"]], self.taxonomy)
        return pd.concat([frame, topics], axis=1)

    def _compute_state(
        self, models: ModelSet, data: JourneyData, account_id: str, now: pd.Timestamp
    ) -> _AccountState | None:
        one = select_accounts(data, [account_id])
        if one.accounts.empty:
            return None
        frame = self._features(one, now)
        if frame is None:
            return None
        proba = self._phase_proba(models, frame)
        raw = self._churn_raw(models, frame)
        risk = float(calibrate(raw, dict(models.calibration))[0])
        values = {str(c): v for c, v in frame.iloc[0].items()}
        predicted = int(np.argmax(proba[0]))
        phase_reasons = self._reasons(models, PHASE, frame, values, class_index=predicted)
        band = churn_band(risk, self.config)
        churn_reasons = self._reasons(
            models, CHURN, frame, values, direction=1 if band != "low" else -1
        )
        contacts = _current_contacts(one.contacts, now)
        candidates, computed = self._candidates(models, frame, contacts)
        tp = one.touchpoints
        # Older rows cannot count as consumed recently while this state is served.
        horizon_ns = (
            now.value
            - int(self.config.eligibility.consumed_recently_days * 86_400 * _NS_PER_S)
            - self.feature_ttl_ns
        )
        ts_ns = tp["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        keep = tp["content_id"].notna().to_numpy(dtype=bool) & (ts_ns >= horizon_ns)
        consumed = Recent(
            content_id=tp["content_id"].to_numpy(dtype=object)[keep].tolist(),
            ts_ns=ts_ns[keep],
            contact_id=tp["contact_id"].to_numpy(dtype=object)[keep].tolist(),
        )
        state = _AccountState(
            as_of=now,
            as_of_ns=int(now.value),
            features=pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL),
            phase_proba=proba[0],
            phase_reasons=phase_reasons,
            churn_risk=risk,
            churn_reasons=churn_reasons,
            candidates=prepare_candidates(candidates, contacts, self.catalog, account_id),
            consumed=consumed,
        )
        # The greedy answer is what nearly every request serves: explain it now, off the
        # warm path (one pred_contrib call for its k rows).
        greedy = self._rank(
            state,
            account_id,
            now,
            self.config.default_k,
            None,
            None,
            None,
            np.random.default_rng(0),
            None,
            None,
            False,
        )
        self._action_reasons(models, state, greedy.actions, computed)
        return state

    def _phase_proba(self, models: ModelSet, frame: pd.DataFrame, threads: int = 1) -> np.ndarray:
        x = models.inputs[PHASE].encode(frame)
        raw = np.asarray(_booster(models.phase).predict(x, num_threads=threads))
        raw = raw.reshape(len(frame), -1)
        classes = getattr(models.phase, "classes_", np.arange(raw.shape[1]))
        out = np.zeros((len(frame), len(self.phases)), dtype=np.float64)
        out[:, np.asarray(classes, dtype=np.int64)] = raw
        return out

    def _churn_raw(self, models: ModelSet, frame: pd.DataFrame, threads: int = 1) -> np.ndarray:
        x = models.inputs[CHURN].encode(frame)
        return np.asarray(_booster(models.churn).predict(x, num_threads=threads), dtype=np.float64)

    def _reasons(
        self,
        models: ModelSet,
        name: str,
        frame: pd.DataFrame,
        values: Mapping[str, Any],
        *,
        class_index: int | None = None,
        direction: int = 1,
    ) -> tuple[Reason, ...]:
        spec = models.inputs[name]
        estimator = {PHASE: models.phase, CHURN: models.churn}[name]
        contrib = contributions_for(
            _SingleThreaded(_booster(estimator)), spec.encode(frame), class_index=class_index
        )
        return tuple(
            reason_codes(
                contrib[0],
                list(spec.columns),
                values,
                top=MAX_REASONS,
                direction=direction,
                definitions=self.definitions,
                labels=self.labels,
            )
        )

    def _candidate_rows(
        self, frame: pd.DataFrame, roles: Sequence[Any], items: np.ndarray | None = None
    ) -> pd.DataFrame:
        """Candidate feature rows: every role x item (``items`` None) or role k x item k."""
        account = frame[self._account_inputs]
        decisions = account.iloc[np.zeros(len(roles), dtype=np.int64)].reset_index(drop=True)
        return nc.candidate_features(
            decisions,
            pd.Series(list(roles), dtype=object),
            self.content,
            self.taxonomy,
            item_index=items,
        )

    def _candidates(
        self, models: ModelSet, frame: pd.DataFrame, contacts: pd.DataFrame
    ) -> tuple[pd.DataFrame, _CandidateRows | None]:
        """(contact_id, content_id, p_response) for every current contact x catalog item,
        and the candidate rows behind it (contact-major), or None without contacts."""
        n_items = len(self.content)
        ids = contacts["contact_id"].astype(str).to_numpy(dtype=object)
        if len(ids) == 0:
            empty = pd.DataFrame(
                {
                    "contact_id": pd.Series([], dtype=object),
                    "content_id": pd.Series([], dtype=object),
                    "p_response": pd.Series([], dtype=np.float64),
                }
            )
            return empty, None
        rows = self._candidate_rows(frame, contacts["role"].astype(object).tolist())
        x = models.inputs[NEXT_CONTENT].encode(rows)
        p = np.asarray(
            _booster(models.next_content).predict(x, num_threads=PREDICT_THREADS),
            dtype=np.float64,
        )
        candidates = pd.DataFrame(
            {
                "contact_id": np.repeat(ids, n_items),
                "content_id": np.tile(self.catalog.content_ids, len(ids)),
                "p_response": p,
            }
        )
        position = {c: i for i, c in enumerate(ids.tolist())}
        return candidates, _CandidateRows(rows, x, position)

    def _action_reasons(
        self,
        models: ModelSet,
        state: _AccountState,
        actions: Sequence[Action],
        computed: _CandidateRows | None = None,
    ) -> dict[tuple[str, str], tuple[Reason, ...]]:
        """Reasons of each action, computed (in one pred_contrib call) for the ones not yet
        explained and remembered in the account's state. ``computed`` (the cold path's
        candidate rows) saves rebuilding the rows."""
        known = state.action_reasons
        missing = [
            (a.contact_id, a.content_id)
            for a in actions
            if (a.contact_id, a.content_id) not in known
        ]
        if not missing:
            return {
                (a.contact_id, a.content_id): known[(a.contact_id, a.content_id)] for a in actions
            }
        spec = models.inputs[NEXT_CONTENT]
        columns = list(spec.columns)
        items = np.array([self.catalog.position[i] for _, i in missing], dtype=np.int64)
        if computed is not None:
            at = (
                np.array([computed.contact_position[c] for c, _ in missing], dtype=np.int64)
                * len(self.content)
                + items
            )
            x = computed.x[at]
            table = computed.rows[columns].to_numpy(dtype=object)[at]
        else:
            prepared = state.candidates
            role_of = dict(
                zip(prepared.contact_ids.tolist(), prepared.contact_roles.tolist(), strict=True)
            )
            rows = self._candidate_rows(
                state.feature_frame(), [role_of.get(c) or None for c, _ in missing], items
            )
            x = spec.encode(rows)
            table = rows[columns].to_numpy(dtype=object)
        contrib = contributions_for(_SingleThreaded(_booster(models.next_content)), x)
        for j, pair in enumerate(missing):
            # dict item assignment is atomic; two threads may at worst explain a pair twice
            known[pair] = tuple(
                reason_codes(
                    contrib[j],
                    columns,
                    dict(zip(columns, table[j].tolist(), strict=True)),
                    top=MAX_REASONS,
                    direction=1,
                    definitions=self.definitions,
                    labels=self.labels,
                )
            )
        return {(a.contact_id, a.content_id): known[(a.contact_id, a.content_id)] for a in actions}

    # ---------------------------------------------------------------------------------
    # Cold start

    def _cold_start(
        self,
        models: ModelSet,
        account_id: str,
        now: pd.Timestamp,
        k: int,
        channel: str | None,
    ) -> AccountScore:
        prior = np.asarray(models.phase_prior, dtype=np.float64)
        if len(prior) != len(self.phases) or not prior.sum() > 0:
            prior = np.full(len(self.phases), 1.0 / len(self.phases))
        prior = prior / prior.sum()
        phase = int(np.argmax(prior))
        cat = self.catalog
        fits = cat.phase_fit[:, phase].copy()
        if channel is not None:
            fits &= cat.channel == channel
        items = np.flatnonzero(fits)
        pop = np.array([self.popularity.get(str(c), 0.0) for c in cat.content_ids[items]])
        # most popular first, then most valuable, then catalog order
        order = np.lexsort((np.arange(len(items)), -cat.value[items], -pop))[:k]
        total = pop.sum()
        share = pop / total if total > 0 else np.full(len(items), 1.0 / max(len(items), 1))
        actions = tuple(
            ScoredAction(
                Action(
                    content_id=str(cat.content_ids[items[j]]),
                    contact_id="",
                    role="",
                    title=str(cat.title[items[j]]),
                    content_type=str(cat.content_type[items[j]]),
                    channel=str(cat.channel[items[j]]),
                    expected_value=float(share[j] * cat.value[items[j]]),
                    p_response=float(share[j]),
                    value=float(cat.value[items[j]]),
                    fit=1.0,
                    phase_fit=1.0,
                    role_fit=1.0,
                    lever=1.0,
                    propensity=1.0,
                    rank=rank + 1,
                    explored=False,
                ),
                (),
            )
            for rank, j in enumerate(order.tolist())
        )
        return AccountScore(
            account_id=account_id,
            as_of=now,
            phase_proba=dict(zip(self.phases, prior.tolist(), strict=True)),
            phase=self.phases[phase],
            phase_reasons=(),
            churn_risk=None,
            churn_band=None,
            churn_reasons=(),
            actions=actions,
            held_back=(),
            policy="cold-start-popular",
            explored=False,
            versions=dict(models.versions),
            cold_start=True,
            cache_hit=False,
        )

    # ---------------------------------------------------------------------------------
    # Batch

    def score_accounts_batch(
        self,
        data: JourneyData,
        now: pd.Timestamp,
        k: int = 3,
        *,
        chunk_accounts: int = 5_000,
    ) -> pd.DataFrame:
        """One row per account existing at ``now``: account_id, owner_rep_id, phase,
        phase_probability, churn_risk, churn_band, and for rank 1..k ``action_<r>_content_id``
        / ``action_<r>_contact_id`` / ``action_<r>_expected_value`` (greedy: no exploration).

        Features and the three models run for all accounts at once (chunks of
        ``chunk_accounts`` bound memory); arbitration runs per account. Equals the online
        phase probabilities and churn risk for the same account and time.
        """
        now = to_utc(now)
        models = self.holder.current
        frame = self._features(data, now)
        out_columns = _batch_columns(k)
        if frame is None:
            return pd.DataFrame({c: pd.Series([], dtype=object) for c in out_columns})
        proba = self._phase_proba(models, frame, threads=0)
        risk = calibrate(self._churn_raw(models, frame, threads=0), dict(models.calibration))

        contacts = _current_contacts(data.contacts, now)
        account_ids = frame["account_id"].astype(str).to_numpy(dtype=object)
        row_of = pd.Index(account_ids)
        c_row = row_of.get_indexer(pd.Index(contacts["account_id"].astype(str)))
        contacts = contacts.loc[c_row >= 0].reset_index(drop=True)
        c_row = c_row[c_row >= 0]
        p = self._batch_p_response(models, frame, contacts, c_row, chunk_accounts)

        tp = data.touchpoints
        tp = tp.loc[tp["content_id"].notna(), ["account_id", "content_id", "contact_id", "ts"]]
        tp_groups = tp.groupby(tp["account_id"].astype(str), sort=False).indices
        c_groups = pd.Series(np.arange(len(contacts))).groupby(c_row).indices
        n_items = len(self.content)
        owner = (
            data.accounts.set_index(data.accounts["account_id"].astype(str))["owner_rep_id"]
            if "owner_rep_id" in data.accounts
            else pd.Series(dtype=object)
        )
        rng = np.random.default_rng(0)
        records: list[dict[str, Any]] = []

        # a per-account loop: arbitration is per account by design
        for r, account_id in enumerate(account_ids.tolist()):
            mine = c_groups.get(r, np.zeros(0, dtype=np.int64))
            acc_contacts = contacts.iloc[mine][["contact_id", "role"]].reset_index(drop=True)
            ids = acc_contacts["contact_id"].astype(str).to_numpy(dtype=object)
            candidates = pd.DataFrame(
                {
                    "contact_id": np.repeat(ids, n_items),
                    "content_id": np.tile(self.catalog.content_ids, len(ids)),
                    "p_response": p[mine].ravel(),
                }
            )
            consumed_rows = tp_groups.get(account_id)
            consumed = (
                tp.iloc[consumed_rows][["content_id", "contact_id", "ts"]]
                if consumed_rows is not None
                else tp.iloc[:0][["content_id", "contact_id", "ts"]]
            )
            decision = rank_actions(
                AccountContext(
                    account_id=account_id,
                    phase_proba=proba[r],
                    phase_names=self.phases,
                    churn_risk=float(risk[r]),
                    contacts=acc_contacts,
                    consumed=consumed,
                ),
                candidates,
                self.catalog,
                self.config,
                k=k,
                rng=rng,
                now=now,
                explore=False,
            )
            best = int(np.argmax(proba[r]))
            record: dict[str, Any] = {
                "account_id": account_id,
                "owner_rep_id": owner.get(account_id),
                "phase": self.phases[best],
                "phase_probability": float(proba[r, best]),
                "churn_risk": float(risk[r]),
                "churn_band": decision.churn_band,
            }
            for slot in range(k):
                a = decision.actions[slot] if slot < len(decision.actions) else None
                record[f"action_{slot + 1}_content_id"] = a.content_id if a else None
                record[f"action_{slot + 1}_contact_id"] = a.contact_id if a else None
                record[f"action_{slot + 1}_expected_value"] = a.expected_value if a else np.nan
            records.append(record)
        return pd.DataFrame(records, columns=out_columns)

    def _batch_p_response(
        self,
        models: ModelSet,
        frame: pd.DataFrame,
        contacts: pd.DataFrame,
        c_row: np.ndarray,
        chunk_accounts: int,
    ) -> np.ndarray:
        """contacts x items P(response), each contact scored with its account's features."""
        n_items = len(self.content)
        out = np.zeros((len(contacts), n_items), dtype=np.float64)
        account = frame[self._account_inputs]
        roles = contacts["role"].astype(object).to_numpy()
        spec = models.inputs[NEXT_CONTENT]
        booster = _booster(models.next_content)
        step = max(1, chunk_accounts * 5)  # about five contacts per account
        for lo in range(0, len(contacts), step):
            sel = np.arange(lo, min(lo + step, len(contacts)))
            decisions = account.iloc[c_row[sel]].reset_index(drop=True)
            rows = nc.candidate_features(
                decisions, pd.Series(roles[sel], dtype=object), self.content, self.taxonomy
            )
            p = np.asarray(booster.predict(spec.encode(rows)), dtype=np.float64)
            out[sel] = p.reshape(len(sel), n_items)
        return out


def _batch_columns(k: int) -> list[str]:
    cols = [
        "account_id",
        "owner_rep_id",
        "phase",
        "phase_probability",
        "churn_risk",
        "churn_band",
    ]
    for slot in range(1, k + 1):
        cols += [
            f"action_{slot}_content_id",
            f"action_{slot}_contact_id",
            f"action_{slot}_expected_value",
        ]
    return cols


def _topic_definitions(taxonomy: Taxonomy) -> dict[str, str]:
    out: dict[str, str] = {}
    for t in taxonomy.topic_names:
        out[f"n_topic_{t}_365d"] = f"content touchpoints on topic '{t}' in the last 365 days"
        out[f"n_topic_{t}_ever"] = f"content touchpoints on topic '{t}' ever"
    return out


def _current_contacts(contacts: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """The contacts present at ``now`` (created before it, not left before it), as the
    feature pipeline counts them; account_id, contact_id, role."""
    present = contacts["created_at"] < now
    if "left_at" in contacts:
        present &= ~(contacts["left_at"] < now).fillna(False)
    cols = [c for c in ("account_id", "contact_id", "role") if c in contacts]
    out = contacts.loc[present.to_numpy(dtype=bool), cols].reset_index(drop=True)
    out["contact_id"] = out["contact_id"].astype(str)
    return out


def _account_mask(values: pd.Series, account_id: str) -> np.ndarray:
    """Rows of ``values`` equal to ``account_id``. Arrow's kernel directly: pandas' own
    comparison boxes the scalar and costs milliseconds per call on the warm path."""
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        array = pa.array(values.array)
        equal = pc.equal(array, pa.scalar(account_id, type=array.type))
        return np.asarray(equal.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    return (values == account_id).to_numpy(dtype=bool, na_value=False)


def _store_version(data_version: int) -> Hashable:
    """The cache key part of the store's version of an account's rows (distinct from the
    versions :func:`_data_version` computes from the rows themselves)."""
    return ("store", data_version)


def _data_version(data: JourneyData, account_id: str) -> tuple[Hashable, ...] | None:
    """(rows, latest timestamp) of the account's rows per table — changes when an event is
    ingested for the account — or None when ``data`` has no account row for it."""
    accounts = data.accounts
    if accounts.empty or not _account_mask(accounts["account_id"], account_id).any():
        return None
    parts: list[Hashable] = []
    for frame, ts in (
        (data.touchpoints, "ts"),
        (data.stages, "ts"),
        (data.exposures, "ts"),
        (data.contacts, "created_at"),
    ):
        if frame is None or frame.empty or "account_id" not in frame:
            parts.append((0, 0))
            continue
        mask = _account_mask(frame["account_id"], account_id)
        n = int(mask.sum())
        if n == 0:
            parts.append((0, 0))
            continue
        last = frame[ts].to_numpy(dtype="datetime64[ns]")[mask].view(np.int64).max()
        parts.append((n, int(last)))
    return tuple(parts)
