"""The scorer the service and the ``nba score`` command use: online, cold start, batch.

Online, :meth:`Scorer.score_account` answers from the account's cached state when it is
fresh for the account's data version and the serving model versions (only arbitration runs:
``serving.scoring.online.decide``), and otherwise computes the state first
(``serving.scoring.states.compute_state``) and caches it (``serving.scoring.cache``). An
account the data do not hold (or hold with no account row) gets a cold start
(``models.cold_start``): the phase model's answer for an account with no history (the
early phases) and the most popular catalog items for the most likely phase,
``cold_start=True`` and ``known=False`` (an account it holds that has no history yet at that
time is a cold start with ``known=True``). :meth:`Scorer.score_accounts_batch`
scores every account at once (``serving.scoring.batch``).

Many known accounts at once (a rep's worklist), :meth:`Scorer.score_known` answers each
from its cached state, else from its stored state (``serving.scoring.stored``), and
computes the states of the rest together (``serving.scoring.states.compute_states``),
returning them serialized for the caller to store; :meth:`Scorer.states_for_store` does the
same for every account of a data set (``nba score``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.pipeline.incremental import StateError
from features.schema import JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import to_utc
from models.arbitration import (
    ArbitrationConfig,
    OnlinePosterior,
    Recent,
    ServableActions,
    churn_band,
)
from models.cold_start import POLICY as COLD_START_POLICY
from models.cold_start import rank_cold_start
from serving.model_holder import ModelHolder
from serving.model_set import CHALLENGER_KEY, ModelSet
from serving.scoring.answer import AccountScore, ScoredAction, ScoringError
from serving.scoring.batch import score_batch
from serving.scoring.cache import AccountState, StateCache, cache_version, store_version
from serving.scoring.incremental import StateSource, compute_state_from
from serving.scoring.online import CandidateRows, Request, decide, servable
from serving.scoring.predict import ScoringSetup
from serving.scoring.states import compute_state, compute_states
from serving.scoring.stored import decode_state, encode_state, scoring_key
from serving.store import NewScore

DEFAULT_CACHE_ENTRIES = 20_000
DEFAULT_FEATURE_TTL_S = 3600.0
_NS_PER_S = 10**9


@dataclass(frozen=True)
class KnownAccount:
    """An account the store holds, as :meth:`Scorer.score_known` takes it: its data
    version, the history arbitration reads (``served``, ``dismissed``) and its stored state
    (bytes of :func:`~serving.scoring.stored.encode_state`) when the caller holds a current
    one."""

    account_id: str
    data_version: int
    served: Recent | None = None
    dismissed: Recent | None = None
    stored: bytes | None = None


class Scorer:
    """Scores accounts with the models of ``model_holder`` (one snapshot per request).

    ``content`` is the catalog (``taxonomy.content_frame()`` shape); ``popularity`` maps
    content_id -> popularity (e.g. ``models.cold_start.content_popularity``) for cold
    starts (default: catalog value). Thread-safe: the cache is guarded by a lock held only
    for lookups. ``feature_ttl_s`` bounds how old cached features may get.
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
        self.setup = ScoringSetup(taxonomy, arbitration_config, content)
        self.popularity = dict(popularity or {})
        self.cache = StateCache(cache_entries, int(feature_ttl_s * _NS_PER_S))

    @property
    def models(self) -> ModelSet:
        """The serving models as this scorer applies them (``ScoringSetup.servable``: a
        next-content model it cannot feed is left out, and ``missing`` says why). Raises
        ``ModelLoadError`` when no models are loaded."""
        return self.setup.servable(self.holder.current)

    @property
    def hits(self) -> int:
        """Requests answered from the cache."""
        return self.cache.hits

    @property
    def misses(self) -> int:
        """Requests that computed the account's state."""
        return self.cache.misses

    def score_account(
        self,
        data: JourneyData | Callable[[], JourneyData | StateSource | None] | None,
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
        online: OnlinePosterior | None = None,
        challenger_share: float = 0.0,
    ) -> AccountScore:
        """Returns the answer for one account at ``now``.

        ``data`` holds the account's rows (the online store's view; a full
        :class:`JourneyData` works too, at the cost of filtering it), or is a function
        returning them, called only when the cache cannot answer (with ``data_version``
        given); ``None`` or no account row gives a cold start. ``served`` (contact_id,
        content_id, ts) are the actions served or shown recently and ``dismissed``
        (content_id, ts) the account's dismissals: arbitration's contact caps and
        "dismissed recently" rule read them. ``k`` defaults to the config's ``default_k``;
        ``explore`` forces the exploration coin (None: drawn from ``rng`` at the configured
        rate). ``data_version`` is the store's version of the account's rows when the
        caller knows it (it then keys the cache instead of a version computed from
        ``data``). ``online``: the online posterior the top slot is drawn on (learning
        between retrains; None: the epsilon-greedy policy alone). ``challenger_share``: the
        share of drawn decisions whose top slot goes to the next-content version under
        trial, when the set serves one (``models.arbitration.rank_actions``).
        """
        models = self.models  # one snapshot for the whole request
        now = to_utc(now)
        k = self.setup.config.default_k if k is None else k
        if k < 1:
            raise ScoringError(f"k = {k}; expected at least 1 action")
        request = Request(
            account_id,
            now,
            k,
            rng,
            contact_id,
            role,
            channel,
            served,
            dismissed,
            explore,
            online,
            challenger_share if models.challenger is not None else 0.0,
            models.versions.get(CHALLENGER_KEY, ""),
        )
        version = cache_version(data, account_id, data_version)
        if version is None:
            return self._cold_start(models, request, known=False)
        key = (account_id, version, models.key)
        state = self.cache.hit(key, now.value)
        if state is not None:
            return decide(self.setup, models, state, request, hit=True)
        rows = data() if callable(data) else data
        computed: CandidateRows | None = None
        if isinstance(rows, StateSource):
            state, computed = self._from_state(models, rows, now, k)
            known = True
        else:
            state = (
                None
                if rows is None
                else compute_state(
                    self.setup, models, rows, account_id, now, ttl_ns=self.cache.ttl_ns, explain_k=k
                )
            )
            known = _holds(rows, account_id)
        if state is None:  # unknown after all, or created after now
            return self._cold_start(models, request, known=known)
        self.cache.put(key, state)
        return decide(self.setup, models, state, request, hit=False, computed=computed)

    def _from_state(
        self, models: ModelSet, source: StateSource, now: pd.Timestamp, k: int
    ) -> tuple[AccountState | None, CandidateRows | None]:
        """The account's state from its feature state with the candidate rows the request
        explains its actions from, or from all its rows (greedy top ``k`` + 1 explained,
        no rows) when the feature state cannot give the features these models take."""
        ttl_ns = self.cache.ttl_ns
        try:
            fresh = compute_state_from(self.setup, models, source, now, ttl_ns=ttl_ns)
        except StateError:
            account_id = source.state.account_id
            rows = source.rows()
            return compute_state(
                self.setup, models, rows, account_id, now, ttl_ns=ttl_ns, explain_k=k
            ), None
        return (None, None) if fresh is None else fresh

    def scoring_key(self) -> str:
        """The key stored states must carry to be current for the serving models and this
        scorer's catalog (:func:`~serving.scoring.stored.scoring_key`)."""
        return scoring_key(self.setup, self.models)

    def score_known(
        self,
        accounts: Sequence[KnownAccount],
        load: Callable[[list[str]], JourneyData],
        now: pd.Timestamp,
        *,
        k: int,
        rng: np.random.Generator,
        explore: bool | None = None,
    ) -> tuple[list[AccountScore], list[NewScore]]:
        """Returns the answer for each of ``accounts`` at ``now`` (as :meth:`score_account`
        would give it) and the states that had to be computed, serialized for the store.

        A state comes from the cache, else from ``stored`` (when it is not from after
        ``now``), else is computed: ``load(account_ids)`` returns the rows of all of those
        accounts, scored together. Computed states are cached."""
        models = self.models
        now = to_utc(now)
        states: dict[str, AccountState] = {}
        missing: list[KnownAccount] = []
        for account in accounts:
            state = self.cache.hit(self._key(account, models), now.value)
            if state is None and account.stored is not None:
                state = self._restore(account.stored, now)
            if state is None:
                missing.append(account)
            else:
                states[account.account_id] = state
        computed = self._compute_missing(models, missing, load, now, states)
        cold = {a.account_id for a in missing}
        answers = []
        for account in accounts:
            request = Request(
                account.account_id,
                now,
                k,
                rng,
                served=account.served,
                dismissed=account.dismissed,
                explore=explore,
            )
            state = states.get(account.account_id)
            answers.append(
                self._cold_start(models, request, known=True)
                if state is None
                else decide(self.setup, models, state, request, hit=account.account_id not in cold)
            )
        return answers, computed

    def states_for_store(
        self, data: JourneyData, versions: Mapping[str, int], now: pd.Timestamp
    ) -> list[NewScore]:
        """Returns the states of the accounts of ``data`` existing at ``now``, serialized
        for the store; ``versions`` maps each account to its data version, read before
        ``data`` (an account missing from it is skipped)."""
        models = self.models
        now = to_utc(now)
        fresh = compute_states(
            self.setup, models, data, now, ttl_ns=self.cache.ttl_ns, for_store=True
        )
        key = scoring_key(self.setup, models)
        return [
            self._encoded(account_id, versions[account_id], state, models, key)
            for account_id, state in fresh.items()
            if account_id in versions
        ]

    def _key(self, account: KnownAccount, models: ModelSet) -> tuple[object, ...]:
        return (account.account_id, store_version(account.data_version), models.key)

    def _restore(self, blob: bytes, now: pd.Timestamp) -> AccountState | None:
        """A stored state, or None when it is unreadable or computed after ``now``."""
        try:
            state = decode_state(self.setup, blob)
        except ScoringError:
            return None
        return state if state.as_of_ns <= now.value else None

    def _compute_missing(
        self,
        models: ModelSet,
        missing: Sequence[KnownAccount],
        load: Callable[[list[str]], JourneyData],
        now: pd.Timestamp,
        states: dict[str, AccountState],
    ) -> list[NewScore]:
        """Computes the states of ``missing`` together into ``states`` and the cache;
        returns them serialized (accounts created after ``now`` get none)."""
        if not missing:
            return []
        data = load([a.account_id for a in missing])
        fresh = compute_states(
            self.setup, models, data, now, ttl_ns=self.cache.ttl_ns, for_store=True
        )
        key = scoring_key(self.setup, models)
        out: list[NewScore] = []
        for account in missing:
            state = fresh.get(account.account_id)
            if state is None:
                continue
            self.cache.put(self._key(account, models), state)
            states[account.account_id] = state
            out.append(self._encoded(account.account_id, account.data_version, state, models, key))
        return out

    def _encoded(
        self, account_id: str, version: int, state: AccountState, models: ModelSet, key: str
    ) -> NewScore:
        proba = state.phase_proba
        return NewScore(
            account_id=account_id,
            data_version=version,
            scoring_key=key,
            model_versions=dict(models.versions),
            as_of=state.as_of,
            phase=self.setup.phases[int(np.argmax(proba))] if models.phase is not None else None,
            churn_risk=state.churn_risk if models.churn is not None else None,
            churn_band=churn_band(state.churn_risk, self.setup.config)
            if models.churn is not None
            else None,
            state=encode_state(self.setup, models, state),
        )

    def is_warm(self, account_id: str, data_version: int, now: pd.Timestamp) -> bool:
        """Returns whether a request for the account at ``now`` would hit the cache
        (features and predictions ready, only arbitration left to run) for the current
        models; False when no models are loaded."""
        if not self.holder.ready:
            return False
        key = (account_id, store_version(data_version), self.holder.current.key)
        return self.cache.is_fresh(key, to_utc(now).value)

    def servable_actions(
        self,
        account_id: str,
        now: pd.Timestamp,
        *,
        data_version: int,
        served: Recent | None = None,
        dismissed: Recent | None = None,
    ) -> ServableActions | None:
        """What arbitration could put in the account's top slot at ``now`` with this served
        and dismissed history, on the state cached for the store's ``data_version`` of its
        rows and the serving models (a request answered just before caches it); None when no
        such state is cached. Counts no cache hit: an evaluation's look, not a request."""
        now = to_utc(now)
        models = self.models
        key = (account_id, store_version(data_version), models.key)
        state = self.cache.peek(key, now.value)
        if state is None:
            return None
        request = Request(
            account_id, now, 1, np.random.default_rng(0), served=served, dismissed=dismissed
        )
        return servable(self.setup, state, request)

    def score_accounts_batch(
        self,
        data: JourneyData,
        now: pd.Timestamp,
        k: int = 3,
        *,
        chunk_accounts: int = 5_000,
    ) -> pd.DataFrame:
        """Returns one row per account existing at ``now``: account_id, owner_rep_id, phase,
        phase_probability, churn_risk, churn_band, and for rank 1..k
        ``action_<r>_content_id`` / ``action_<r>_contact_id`` / ``action_<r>_expected_value``
        (greedy: no exploration).

        Features and the three models run for all accounts at once (chunks of
        ``chunk_accounts`` bound memory); arbitration runs per account. Equals the online
        phase probabilities and churn risk for the same account and time.
        """
        models = self.models
        return score_batch(self.setup, models, data, to_utc(now), k, chunk_accounts=chunk_accounts)

    def _cold_start(self, models: ModelSet, request: Request, *, known: bool) -> AccountScore:
        """The answer for an account without history at the request's time: ``known`` says
        whether the store holds it (created later, or nothing recorded yet)."""
        ranked = rank_cold_start(
            self.setup.new_account_prior(models, request.now),
            self.setup.catalog,
            self.popularity,
            request.k,
            channel=request.channel,
        )
        phases = self.setup.phases
        return AccountScore(
            account_id=request.account_id,
            as_of=request.now,
            phase_proba=dict(zip(phases, ranked.phase_proba.tolist(), strict=True))
            if models.phase is not None
            else {},
            phase=phases[ranked.phase] if models.phase is not None else None,
            phase_reasons=(),
            churn_risk=None,
            churn_band=None,
            churn_reasons=(),
            actions=tuple(ScoredAction(a, ()) for a in ranked.actions),
            held_back=(),
            policy=COLD_START_POLICY,
            explored=False,
            versions=dict(models.versions),
            cold_start=True,
            known=known,
            cache_hit=False,
            missing=dict(models.missing),
        )


def _holds(rows: JourneyData | None, account_id: str) -> bool:
    """Whether ``rows`` has an account row for ``account_id``."""
    return rows is not None and bool(rows.accounts["account_id"].astype(str).eq(account_id).any())
