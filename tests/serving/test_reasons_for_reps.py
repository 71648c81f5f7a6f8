"""Reasons as a rep reads them, over many simulated accounts: every phase, churn and action
reason and every "why now" signal the service gives is a sentence, never a bare feature name
or a raw zero count."""

from __future__ import annotations

import numpy as np

from features.pipeline import select_accounts
from serving.scoring import KnownAccount
from serving.scoring.stored import decode_state
from tests.utils.reasons import reason_problems
from tests.utils.registry import TrainedRegistry, registry_scorer

N_ACCOUNTS = 300


def test_no_reason_shows_a_bare_feature_name_or_a_raw_zero(
    trained_registry: TrainedRegistry,
) -> None:
    registry = trained_registry
    scorer = registry_scorer(registry)
    accounts = registry.data.accounts
    alive = accounts.loc[accounts["created_at"] < registry.now, "account_id"].astype(str)
    known = [KnownAccount(a, data_version=0) for a in alive.head(N_ACCOUNTS)]
    scored, _ = scorer.score_known(
        known,
        lambda ids: select_accounts(registry.data, list(ids)),
        registry.now,
        k=5,
        rng=np.random.default_rng(0),
        explore=False,
    )
    # the catalogue: every feature a served model may explain
    models = scorer.models
    catalogue = set(scorer.setup.definitions) | {
        c for columns in models.feature_columns.values() for c in columns
    }
    texts = [
        (kind, reason.feature, reason.text)
        for s in scored
        for kind, reasons in (
            ("phase", s.phase_reasons),
            ("churn", s.churn_reasons),
            *(("action", a.reasons) for a in s.actions),
        )
        for reason in reasons
    ]
    timing = [("why now", w.signal, w.text) for s in scored for w in s.why_now]
    assert len(scored) == N_ACCOUNTS and len(texts) > 5 * N_ACCOUNTS
    assert {kind for kind, _, _ in texts} == {"phase", "churn", "action"}
    # a simulated year moves accounts on: several kinds of timing signal show up
    assert len({signal for _, signal, _ in timing}) >= 3, timing[:10]
    texts += timing
    bad = [
        f"{kind} {feature}: {text!r} ({', '.join(problems)})"
        for kind, feature, text in texts
        if (problems := reason_problems(text, catalogue))
    ]
    assert not bad, "\n".join(sorted(set(bad))[:30])


def test_why_now_survives_the_store(trained_registry: TrainedRegistry) -> None:
    """A state stored by ``nba score`` answers with the same timing signals as one computed
    for the request."""
    registry = trained_registry
    scorer = registry_scorer(registry)
    accounts = registry.data.accounts
    alive = accounts.loc[accounts["created_at"] < registry.now, "account_id"].astype(str)
    ids = alive.head(80).tolist()
    part = select_accounts(registry.data, ids)
    stored = scorer.states_for_store(part, dict.fromkeys(ids, 1), registry.now)
    decoded = {s.account_id: decode_state(scorer.setup, s.state).why_now for s in stored}
    computed, _ = scorer.score_known(
        [KnownAccount(a, data_version=0) for a in ids],
        lambda chosen: select_accounts(registry.data, list(chosen)),
        registry.now,
        k=1,
        rng=np.random.default_rng(0),
        explore=False,
    )
    assert {s.account_id: s.why_now for s in computed} == decoded
    assert sum(len(w) for w in decoded.values()) > 0
