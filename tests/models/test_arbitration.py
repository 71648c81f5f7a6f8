"""Arbitration on hand-built accounts: expected value, eligibility, caps, the churn lever,
exploration propensities, filters and config errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.taxonomy import load_taxonomy
from models.arbitration import (
    DEFAULT_ARBITRATION_PATH,
    AccountContext,
    ArbitrationConfig,
    ArbitrationConfigError,
    ArbitrationError,
    Decision,
    OnlinePosterior,
    churn_band,
    load_arbitration_config,
    prepare_catalog,
    rank_actions,
    servable_actions,
    servable_json,
)

PHASES = ["awareness", "consideration", "selection", "onboarding"]
NOW = pd.Timestamp("2025-03-01 12:00", tz="UTC")


def _catalog() -> pd.DataFrame:
    """Five items: W1 whitepaper (awareness, consideration; IT), D1 live demo (selection;
    buyer, IT), T1 training (onboarding; IT, end user; a retention play), S1 service play
    (selection, onboarding; buyer; a retention play), B1 blog (awareness; IT, buyer)."""
    return pd.DataFrame(
        {
            "content_id": ["W1", "D1", "T1", "S1", "B1"],
            "title": ["Whitepaper", "Demo", "Training", "Service call", "Blog"],
            "content_type": ["whitepaper", "live_demo", "training", "service_play", "blog_article"],
            "phases": [
                ["awareness", "consideration"],
                ["selection"],
                ["onboarding"],
                ["selection", "onboarding"],
                ["awareness"],
            ],
            "roles": [
                ["it"],
                ["economic_buyer", "it"],
                ["it", "end_user"],
                ["economic_buyer"],
                ["it", "economic_buyer"],
            ],
            "topic": ["security"] * 5,
            "channel": ["website", "meeting", "webinar", "customer_service", "website"],
            "value": [2.0, 4.0, 3.0, 2.0, 1.0],
        }
    )


def _contacts() -> pd.DataFrame:
    return pd.DataFrame(
        {"contact_id": ["it1", "eb1", "fin1"], "role": ["it", "economic_buyer", "finance"]}
    )


def _candidates(p: float | dict[str, float] = 0.2) -> pd.DataFrame:
    """Every contact x every item; ``p`` per content_id or one value for all."""
    items = _catalog()["content_id"].tolist()
    contacts = _contacts()["contact_id"].tolist()
    frame = pd.DataFrame(
        {"contact_id": np.repeat(contacts, len(items)), "content_id": np.tile(items, len(contacts))}
    )
    frame["p_response"] = frame["content_id"].map(p) if isinstance(p, dict) else p
    return frame


def _config(**changes: object) -> ArbitrationConfig:
    """Defaults with phase weights 1 / 0.5 / 0, no exploration, caps that do not bind and
    dotted overrides (``contact_policy__distinct_content=False``)."""
    raw = ArbitrationConfig().model_dump()
    raw["exploration_rate"] = 0.0
    raw["contact_policy"]["max_actions_per_contact_per_week"] = 10
    raw["contact_policy"]["max_actions_per_account_per_week"] = 20
    raw["weights"]["phase_fit"] = {"exact": 1.0, "adjacent": 0.5, "none": 0.0}
    for key, value in changes.items():
        *path, last = key.split("__")
        node = raw
        for part in path:
            node = node[part]
        node[last] = value
    return ArbitrationConfig.model_validate(raw)


def _context(proba: list[float] | None = None, churn: float = 0.1, **kw: object) -> AccountContext:
    return AccountContext(
        account_id="A1",
        phase_proba=np.array(proba or [0.1, 0.6, 0.3, 0.0]),
        phase_names=PHASES,
        churn_risk=churn,
        contacts=_contacts(),
        **kw,  # type: ignore[arg-type]
    )


def _rank(
    context: AccountContext | None = None,
    candidates: pd.DataFrame | None = None,
    config: ArbitrationConfig | None = None,
    *,
    k: int = 3,
    seed: int = 0,
    explore: bool | None = None,
) -> Decision:
    return rank_actions(
        context or _context(),
        _candidates() if candidates is None else candidates,
        _catalog(),
        config or _config(),
        k=k,
        rng=np.random.default_rng(seed),
        now=NOW,
        explore=explore,
    )


def _pairs(decision: Decision) -> list[tuple[str, str]]:
    return [(a.content_id, a.contact_id) for a in decision.actions]


def _held(decision: Decision) -> dict[tuple[str, str], str]:
    return {(h.content_id, h.contact_id): h.rule for h in decision.held_back}


def _held_items(decision: Decision) -> dict[str, str]:
    """content_id -> rule (held back lists each item once per rule, for its best contact)."""
    return {h.content_id: h.rule for h in decision.held_back}


# --------------------------------------------------------------------------------------------
# Expected value and fit


def test_expected_value_is_p_times_value_times_fit_times_lever() -> None:
    d = _rank(candidates=_candidates({"W1": 0.3, "D1": 0.1, "T1": 0.2, "S1": 0.2, "B1": 0.5}))
    by = {(a.content_id, a.contact_id): a for a in d.actions}
    # W1 fits awareness (0.1) + consideration (0.6) exactly; adjacent selection 0.3 x 0.5
    w1 = by[("W1", "it1")]
    assert w1.phase_fit == pytest.approx(0.1 + 0.6 + 0.5 * 0.3)
    assert w1.role_fit == 1.0 and w1.lever == 1.0 and w1.value == 2.0
    assert w1.expected_value == pytest.approx(0.3 * 2.0 * 0.85)
    # D1: selection 0.3 exact + consideration 0.6 adjacent x 0.5 = 0.6; value 4; p 0.1
    d1 = by[("D1", "it1")]  # ties go to the first candidate row
    assert d1.phase_fit == pytest.approx(0.6)
    assert d1.expected_value == pytest.approx(0.1 * 4.0 * 0.6)
    assert [a.rank for a in d.actions] == [1, 2, 3]
    evs = [a.expected_value for a in d.actions]
    assert evs == sorted(evs, reverse=True)
    assert d.policy == "ev-greedy-epsilon-v1" and d.churn_band == "low"


def test_probability_mass_phase_fit_and_role_weights_without_role_rule() -> None:
    config = _config(
        weights__phase_fit={"exact": 1.0, "adjacent": 0.0, "none": 0.0},
        weights__role_fit={"match": 1.0, "no_match": 0.25},
        eligibility__require_role_fit=False,
        eligibility__require_phase_fit=False,
        contact_policy__distinct_content=False,
        contact_policy__max_actions_per_contact_per_week=10,
        contact_policy__max_actions_per_account_per_week=20,
    )
    d = _rank(config=config, k=15)
    by = {(a.content_id, a.contact_id): a for a in d.actions}
    assert by[("W1", "it1")].phase_fit == pytest.approx(0.7)
    assert by[("W1", "fin1")].role_fit == 0.25
    assert by[("W1", "fin1")].expected_value == pytest.approx(0.2 * 2.0 * 0.7 * 0.25)
    assert by[("T1", "it1")].phase_fit == 0.0


# --------------------------------------------------------------------------------------------
# Eligibility


def test_wrong_phase_and_wrong_role_are_held_back_with_their_rule() -> None:
    # an account surely in consideration: D1 (selection, adjacent 0.5) passes, T1 does not
    d = _rank(_context([0.0, 1.0, 0.0, 0.0]), k=10)
    held = _held(d)
    assert held[("T1", "it1")] == "wrong phase"
    assert held[("W1", "eb1")] == "wrong role"  # whitepaper is for IT only
    assert all(c != "fin1" for _, c in _pairs(d))  # nothing fits finance
    assert ("D1", "it1") in _pairs(d) or ("D1", "eb1") in _pairs(d)
    assert {h.rule for h in d.held_back} == {"wrong phase", "wrong role"}


def test_an_item_listing_no_phases_or_roles_fits_every_phase_and_role() -> None:
    # G1: only an id (no type, phases, roles, topic, title or channel), as a shopper's items
    bare = pd.DataFrame({"content_id": ["G1"], "phases": [[]], "roles": [[]], "value": [1.0]})
    catalog = pd.concat([_catalog(), bare], ignore_index=True)
    catalog.loc[5, ["content_type", "topic", "title", "channel"]] = np.nan
    candidates = _candidates().query("content_id == 'W1'").assign(content_id="G1")

    d = rank_actions(
        _context([0.0, 0.0, 0.0, 1.0]),  # surely onboarding
        candidates,
        catalog,
        _config(contact_policy__distinct_content=False),
        k=3,
        rng=np.random.default_rng(0),
        now=NOW,
    )

    assert not d.held_back
    # fin1's role (finance) is listed by no item: G1 still fits it
    assert sorted(_pairs(d)) == [("G1", "eb1"), ("G1", "fin1"), ("G1", "it1")]
    g1 = d.actions[0]
    assert g1.phase_fit == 1.0 and g1.role_fit == 1.0
    assert (g1.title, g1.content_type, g1.channel) == ("G1", "", "")


def test_min_phase_fit_threshold() -> None:
    # D1 fit = 0.5 x P(consideration) = 0.1: below 0.15 -> wrong phase; with 0.05 it passes
    ctx = _context([0.8, 0.2, 0.0, 0.0])
    assert _held_items(_rank(ctx, k=10))["D1"] == "wrong phase"
    loose = _config(eligibility__min_phase_fit=0.05)
    assert "D1" in [a.content_id for a in _rank(ctx, config=loose, k=10).actions]


def test_dismissed_recently_holds_back_for_every_contact_until_the_window_ends() -> None:
    days = _config().eligibility.dismissed_recently_days
    recent = pd.DataFrame({"content_id": ["W1"], "ts": [NOW - pd.Timedelta(days=days - 1)]})
    d = _rank(_context(dismissed=recent), k=10)
    assert "W1" not in [a.content_id for a in d.actions]
    assert _held(d)[("W1", "it1")] == "dismissed recently"
    old = pd.DataFrame({"content_id": ["W1"], "ts": [NOW - pd.Timedelta(days=days + 1)]})
    assert "W1" in [a.content_id for a in _rank(_context(dismissed=old), k=10).actions]


def test_consumed_recently_is_per_contact_and_account_level_without_contact() -> None:
    ts = [NOW - pd.Timedelta(days=3)]
    by_it = pd.DataFrame({"content_id": ["D1"], "contact_id": ["it1"], "ts": ts})
    config = _config(contact_policy__distinct_content=False)
    d = _rank(_context(consumed=by_it), config=config, k=10)
    assert _held(d)[("D1", "it1")] == "consumed recently"
    assert ("D1", "eb1") in _pairs(d)  # the buyer has not seen it
    account_level = pd.DataFrame({"content_id": ["D1"], "contact_id": [None], "ts": ts})
    d = _rank(_context(consumed=account_level), config=config, k=10)
    assert "D1" not in [a.content_id for a in d.actions]
    long_ago = pd.DataFrame(
        {"content_id": ["D1"], "contact_id": ["it1"], "ts": [NOW - pd.Timedelta(days=31)]}
    )
    assert ("D1", "it1") in _pairs(_rank(_context(consumed=long_ago), config=config, k=10))


def test_rule_precedence_dismissed_before_consumed() -> None:
    ts = [NOW - pd.Timedelta(days=1)]
    d = _rank(
        _context(
            dismissed=pd.DataFrame({"content_id": ["W1"], "ts": ts}),
            consumed=pd.DataFrame({"content_id": ["W1"], "contact_id": ["it1"], "ts": ts}),
        ),
        k=10,
    )
    assert _held(d)[("W1", "it1")] == "dismissed recently"


# --------------------------------------------------------------------------------------------
# Contact policy


def _served(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "contact_id": [r[0] for r in rows],
            "content_id": [r[1] for r in rows],
            "ts": [NOW - pd.Timedelta(days=r[2]) for r in rows],
        }
    )


def test_contact_cap_counts_this_weeks_actions() -> None:
    config = _config(contact_policy__max_actions_per_contact_per_week=1)
    served = _served([("it1", "B1", 2.0)])  # it1 got one action two days ago
    d = _rank(_context(served_last_week=served), config=config, k=10)
    assert all(a.contact_id != "it1" or a.content_id == "B1" for a in d.actions)
    assert "contact cap" in _held(d).values()
    # eight days ago is last week: it1 is free again
    d = _rank(_context(served_last_week=_served([("it1", "B1", 8.0)])), config=config, k=10)
    assert any(a.contact_id == "it1" for a in d.actions)


def test_servable_actions_are_what_could_fill_the_top_slot() -> None:
    """The servable actions are the eligible ones left by the caps, best expected value
    first: as many as the decision could draw from, its greedy top first, none held back,
    and ``p x rest`` is each one's expected value."""
    config = _config(contact_policy__max_actions_per_contact_per_week=1)
    context = _context(served_last_week=_served([("it1", "B1", 2.0)]))
    servable = servable_actions(context, _candidates(), _catalog(), config, now=NOW)
    decision = _rank(context, config=config, k=1)
    assert len(servable.content_ids) == decision.n_eligible > 1
    top = decision.actions[0]
    assert (servable.content_ids[0], servable.contact_ids[0]) == (top.content_id, top.contact_id)
    pairs = set(zip(servable.content_ids, servable.contact_ids, strict=True))
    assert not pairs & set(_held(decision))
    # it1 has used its one slot this week: only its standing action is servable for it
    assert {c for c, k in pairs if k == "it1"} == {"B1"}
    ev = servable.p * servable.rest
    assert ev[0] == pytest.approx(top.expected_value) and (np.diff(ev) <= 1e-12).all()
    # the decision carries them for the log, by contact, best first
    logged = [(c, k) for k, items in decision.servable.items() for c in items]
    assert sorted(logged) == sorted(pairs)
    for contact, items in decision.servable.items():
        assert list(items) == [
            c
            for c, k in zip(servable.content_ids, servable.contact_ids, strict=True)
            if k == contact
        ]
    assert json.loads(servable_json(decision.servable)) == {
        k: list(v) for k, v in decision.servable.items()
    }


def test_contact_cap_within_one_decision() -> None:
    config = _config(contact_policy__max_actions_per_contact_per_week=1)
    d = _rank(config=config, k=5)
    contacts = [a.contact_id for a in d.actions]
    assert len(contacts) == len(set(contacts)) == 2  # it1 and eb1 once each; finance fits nothing
    assert "contact cap" in _held(d).values()


def test_account_cap_and_already_served_actions_need_no_new_slot() -> None:
    config = _config(contact_policy__max_actions_per_account_per_week=2)
    served = _served([("it1", "W1", 1.0), ("eb1", "D1", 1.0)])
    d = _rank(_context(served_last_week=served), config=config, k=3)
    # the account's two slots are used: only the two actions already served can come back
    assert set(_pairs(d)) <= {("W1", "it1"), ("D1", "eb1")}
    assert "account cap" in _held(d).values()
    d = _rank(_context(served_last_week=_served([("it1", "W1", 1.0)])), config=config, k=3)
    assert len(d.actions) == 2  # one slot left plus the re-served W1


def test_no_slot_left_gives_no_actions() -> None:
    config = _config(contact_policy__max_actions_per_account_per_week=0)
    d = _rank(config=config)
    assert d.actions == () and d.n_eligible == 0
    assert set(_held(d).values()) >= {"account cap"}


def test_distinct_content_sends_each_item_to_its_best_contact_once() -> None:
    d = _rank(k=10)
    items = [a.content_id for a in d.actions]
    assert len(items) == len(set(items))


# --------------------------------------------------------------------------------------------
# Churn lever


def test_churn_lever_raises_retention_plays_as_churn_risk_rises() -> None:
    # an account between selection and onboarding: D1 (value 4) vs S1 service play (value 2)
    ctx = {"proba": [0.0, 0.0, 0.5, 0.5]}
    cand = _candidates({"W1": 0.1, "D1": 0.2, "T1": 0.1, "S1": 0.2, "B1": 0.1})

    def ranks(churn: float) -> dict[str, int]:
        d = _rank(_context(ctx["proba"], churn=churn), cand, k=10)
        return {a.content_id: a.rank for a in d.actions}

    low, high = ranks(0.0), ranks(0.9)
    assert low["D1"] < low["S1"]
    assert high["S1"] < high["D1"]
    d = _rank(_context(ctx["proba"], churn=0.9), cand, k=10)
    s1 = next(a for a in d.actions if a.content_id == "S1")
    d1 = next(a for a in d.actions if a.content_id == "D1")
    assert s1.lever == pytest.approx(1 + 2.0 * 0.9) and d1.lever == 1.0
    assert d.churn_band == "high"


def test_churn_band_thresholds() -> None:
    config = _config()  # medium 0.15, high 0.4
    assert [churn_band(p, config) for p in (0.0, 0.149, 0.15, 0.39, 0.4, 1.0)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]
    with pytest.raises(ArbitrationError, match="not a probability"):
        churn_band(1.5, config)
    with pytest.raises(ArbitrationError, match="not a probability"):
        churn_band(float("nan"), config)


# --------------------------------------------------------------------------------------------
# Exploration and propensities


class _Draw:
    """A stand-in generator whose coin always explores and whose draw is ``index``."""

    def __init__(self, index: int) -> None:
        self.index = index

    def random(self) -> float:
        return 0.0

    def integers(self, n: int) -> int:
        assert 0 <= self.index < n
        return self.index


def _exact_distribution(
    context: AccountContext,
    candidates: pd.DataFrame,
    catalog: pd.DataFrame,
    config: ArbitrationConfig,
    k: int,
) -> tuple[dict[tuple[int, str, str], float], Decision]:
    """P(slot, content, contact) under the epsilon-greedy policy, by enumerating every draw."""
    eps = config.exploration_rate

    def run(rng: Any, explore: bool) -> Decision:
        return rank_actions(
            context, candidates, catalog, config, k=k, rng=rng, now=NOW, explore=explore
        )

    greedy = run(np.random.default_rng(0), False)
    n = greedy.n_eligible
    dist: dict[tuple[int, str, str], float] = {}
    for a in greedy.actions:
        key = (a.rank, a.content_id, a.contact_id)
        dist[key] = dist.get(key, 0.0) + 1 - eps
    for i in range(n):
        for a in run(_Draw(i), True).actions:
            key = (a.rank, a.content_id, a.contact_id)
            dist[key] = dist.get(key, 0.0) + eps / n
    return dist, greedy


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"contact_policy__max_actions_per_contact_per_week": 1},
        {"contact_policy__max_actions_per_account_per_week": 3},
        {"contact_policy__distinct_content": False},
    ],
)
def test_propensities_equal_the_policys_serving_probability_in_every_slot(
    changes: dict[str, object],
) -> None:
    """Exact check on the real catalog with caps: each action's propensity is the sum over
    all draws of the probability that this draw serves it in that slot."""
    taxonomy = load_taxonomy()
    catalog = taxonomy.content_frame()
    contacts = pd.DataFrame(
        {"contact_id": ["a", "b", "c"], "role": ["it", "economic_buyer", "end_user"]}
    )
    rng = np.random.default_rng(3)
    cand = pd.DataFrame(
        {
            "contact_id": np.repeat(contacts["contact_id"].to_numpy(), len(catalog)),
            "content_id": np.tile(catalog["content_id"].to_numpy(), len(contacts)),
        }
    )
    cand["p_response"] = rng.uniform(0.01, 0.3, len(cand))
    context = AccountContext(
        account_id="A9",
        phase_proba=np.array([0.0, 0.05, 0.5, 0.3, 0.1, 0.05, 0.0, 0.0]),
        phase_names=taxonomy.phases,
        churn_risk=0.2,
        contacts=contacts,
        served_last_week=pd.DataFrame(
            {"contact_id": ["a"], "content_id": ["C090"], "ts": [NOW - pd.Timedelta(days=1)]}
        ),
    )
    shipped_caps = {
        "contact_policy__max_actions_per_contact_per_week": 2,
        "contact_policy__max_actions_per_account_per_week": 6,
    }
    config = _config(exploration_rate=0.2, **{**shipped_caps, **changes})
    dist, _ = _exact_distribution(context, cand, catalog, config, k=3)
    for slot in (1, 2, 3):
        total = sum(p for (s, _, _), p in dist.items() if s == slot)
        assert total == pytest.approx(1.0)
    prepared = prepare_catalog(catalog, taxonomy.phases)
    for seed in range(30):
        # The coin drawn here at the configured rate (the account has a standing decision,
        # on which the policy itself would not explore; see the test after this one).
        rng = np.random.default_rng(seed)
        explore = bool(rng.random() < config.exploration_rate)
        d = rank_actions(context, cand, prepared, config, k=3, rng=rng, now=NOW, explore=explore)
        for a in d.actions:
            assert a.propensity == pytest.approx(dist[(a.rank, a.content_id, a.contact_id)])


def test_a_standing_decision_is_re_shown_without_exploring() -> None:
    """A reload: an account with an action decided this week draws no exploration, so
    looking again re-shows the greedy answer (with certainty) and uses no new slot."""
    config = _config(exploration_rate=1.0)  # every fresh decision explores
    first = _rank(config=config, k=1, seed=1)
    assert first.explored and first.exploration_rate == 1.0
    [fresh] = first.actions
    assert not fresh.repeat and fresh.propensity == pytest.approx(1.0 / first.n_eligible)
    standing = _served([(fresh.contact_id, fresh.content_id, 0.0)])
    for seed in range(10):
        again = _rank(_context(served_last_week=standing), config=config, k=1, seed=seed)
        assert not again.explored and again.exploration_rate == 0.0
        assert [a.propensity for a in again.actions] == [1.0]
        assert _pairs(again) == _pairs(_rank(config=config, k=1, explore=False))
    # the greedy answer, once decided, is re-shown as an impression of that decision
    greedy = _pairs(_rank(config=config, k=1, explore=False))
    decided = _served(
        [(greedy[0][1], greedy[0][0], 0.0), (fresh.contact_id, fresh.content_id, 0.0)]
    )
    again = _rank(_context(served_last_week=decided), config=config, k=1, seed=3)
    assert [(a.repeat, a.propensity) for a in again.actions] == [(True, 1.0)]


def test_empirical_frequencies_match_propensities() -> None:
    config = _config(exploration_rate=0.3)
    cand = _candidates({"W1": 0.3, "D1": 0.2, "T1": 0.1, "S1": 0.25, "B1": 0.4})
    ctx = _context([0.2, 0.5, 0.3, 0.0])
    catalog = prepare_catalog(_catalog(), PHASES)
    draws = 3000
    seen: Counter[tuple[int, str, str]] = Counter()
    propensity: dict[tuple[int, str, str], float] = {}
    explored = 0
    for seed in range(draws):
        d = rank_actions(ctx, cand, catalog, config, k=2, rng=np.random.default_rng(seed), now=NOW)
        explored += d.explored
        for a in d.actions:
            key = (a.rank, a.content_id, a.contact_id)
            seen[key] += 1
            assert propensity.setdefault(key, a.propensity) == a.propensity
    assert explored / draws == pytest.approx(0.3, abs=0.03)
    for key, p in propensity.items():
        se = np.sqrt(p * (1 - p) / draws)
        assert abs(seen[key] / draws - p) < 4 * se + 1e-3, key
    assert sum(p for (slot, _, _), p in propensity.items() if slot == 1) == pytest.approx(1.0)


@pytest.mark.parametrize("online", [False, True], ids=["epsilon-greedy", "thompson"])
def test_a_challenger_under_trial_gets_its_share_of_the_top_slot(online: bool) -> None:
    """With a version on trial, its own pick takes ``challenger_share`` of the top slots the
    champion's policy would fill: the propensities are those of the mixture (checked
    against the frequencies of 3,000 decisions, every slot), the decision says when its
    top slot is the challenger's pick, and the policy is named for the trial. A challenger
    that agrees with the champion changes nothing but the name; a standing decision and a
    forced coin do not try it."""
    config = _config(exploration_rate=0.1)
    champion_p = {"W1": 0.3, "D1": 0.2, "T1": 0.1, "S1": 0.25, "B1": 0.4}
    cand = _candidates(champion_p)
    # the challenger thinks the demo is best; the champion's pick is the whitepaper
    cand["p_challenger"] = cand["content_id"].map({**champion_p, "D1": 0.9})
    ctx = _context([0.2, 0.5, 0.3, 0.0])
    catalog = prepare_catalog(_catalog(), PHASES)
    posterior = OnlinePosterior(counts={}, prior_strength=200.0) if online else None
    share = 0.25

    def decide(seed: int, candidates: pd.DataFrame = cand, **kw: Any) -> Decision:
        return rank_actions(
            kw.pop("context", ctx),
            candidates,
            catalog,
            config,
            k=2,
            rng=np.random.default_rng(seed),
            now=NOW,
            online=posterior,
            challenger_share=share,
            **kw,
        )

    without = rank_actions(
        ctx, cand, catalog, config, k=2, rng=np.random.default_rng(0), now=NOW, explore=False
    )
    champion_top = (without.actions[0].content_id, without.actions[0].contact_id)
    draws = 3000
    seen: Counter[tuple[int, str, str]] = Counter()
    propensity: dict[tuple[int, str, str], float] = {}
    tried = 0
    flagged: set[tuple[str, str]] = set()
    for seed in range(draws):
        d = decide(seed)
        assert d.policy.endswith("+challenger-0.25")
        top = d.actions[0]
        tried += d.challenger
        assert not (d.challenger and d.explored)
        if d.challenger:
            flagged.add((top.content_id, top.contact_id))
        for a in d.actions:
            key = (a.rank, a.content_id, a.contact_id)
            seen[key] += 1
            assert propensity.setdefault(key, a.propensity) == pytest.approx(a.propensity)
    for key, p in propensity.items():
        se = np.sqrt(p * (1 - p) / draws)
        assert abs(seen[key] / draws - p) < 4 * se + 1e-3, key
    assert sum(p for (slot, _, _), p in propensity.items() if slot == 1) == pytest.approx(1.0)
    # the challenger's pick: the demo, to one contact, flagged whenever it was its pick
    [pick] = flagged
    assert pick[0] == "D1"
    n = without.n_eligible
    if not online:  # the mixture in closed form: (1 - eps) x share + eps / n
        assert propensity[(1, *pick)] == pytest.approx(0.9 * share + 0.1 / n)
        assert propensity[(1, *champion_top)] == pytest.approx(0.9 * (1 - share) + 0.1 / n)
    # its pick, where the champion's own draw may also land on it with the posterior
    if online:
        assert tried / draws > 0.9 * share - 0.03
    else:
        assert tried / draws == pytest.approx(0.9 * share, abs=0.03)
    # a challenger that agrees with the champion: the same answers and propensities (with
    # the posterior its greedy pick still differs from the champion's draw)
    agreeing = cand.assign(p_challenger=cand["p_response"])
    for seed in range(0 if online else 20):
        same, plain = decide(seed, agreeing), decide(seed, cand.drop(columns="p_challenger"))
        assert not same.challenger and _pairs(same) == _pairs(plain)
        assert [a.propensity for a in same.actions] == pytest.approx(
            [a.propensity for a in plain.actions]
        )
    # a standing decision (a reload) and a forced coin try nothing
    standing = _context([0.2, 0.5, 0.3, 0.0], served_last_week=_served([("it1", "W1", 0.0)]))
    for seed in range(20):
        assert not decide(seed, context=standing).challenger
        assert not decide(seed, explore=False).challenger
        assert "+challenger" not in decide(seed, explore=False).policy


def test_forced_exploration_and_greedy_propensity() -> None:
    config = _config(exploration_rate=0.1)
    greedy = _rank(config=config, explore=False)
    n = greedy.n_eligible
    assert greedy.actions[0].propensity == pytest.approx(0.9 + 0.1 / n)
    assert not greedy.explored and not any(a.explored for a in greedy.actions)
    draws = {_rank(config=config, explore=True, seed=s).actions[0].content_id for s in range(40)}
    assert len(draws) > 1  # the top slot is drawn among the eligible actions
    d = _rank(config=config, explore=True, seed=1)
    assert d.explored and d.actions[0].explored and not d.actions[1].explored
    # no exploration configured: the greedy list has propensity 1 throughout
    assert [a.propensity for a in _rank().actions] == [1.0, 1.0, 1.0]


# --------------------------------------------------------------------------------------------
# Request filters


def test_contact_role_and_channel_filters() -> None:
    only_eb = _rank(_context(contact_id="eb1"), k=10)
    assert {a.contact_id for a in only_eb.actions} == {"eb1"}
    only_it = _rank(_context(role="it"), k=10)
    assert {a.role for a in only_it.actions} == {"it"}
    web = _rank(_context(channel="website"), k=10)
    assert {a.channel for a in web.actions} == {"website"}
    assert _held_items(web)["D1"] == "filtered by channel"


def test_held_back_keeps_the_best_few_per_rule() -> None:
    config = _config(held_back_per_rule=1)
    d = _rank(_context([0.0, 1.0, 0.0, 0.0]), config=config, k=10)
    rules = [h.rule for h in d.held_back]
    assert sorted(rules) == ["wrong phase", "wrong role"]


# --------------------------------------------------------------------------------------------
# Inputs and config


def test_input_errors_name_the_table_column_and_value() -> None:
    bad = _candidates()
    bad.loc[0, "content_id"] = "NOPE"
    with pytest.raises(ArbitrationError, match=r"candidates column 'content_id'.*NOPE"):
        _rank(candidates=bad)
    bad = _candidates()
    bad.loc[0, "contact_id"] = "ghost"
    with pytest.raises(ArbitrationError, match=r"'contact_id'.*ghost.*account 'A1'"):
        _rank(candidates=bad)
    with pytest.raises(ArbitrationError, match="missing columns \\['p_response'\\]"):
        _rank(candidates=_candidates().drop(columns="p_response"))
    with pytest.raises(ArbitrationError, match="phase_proba has 3 values for 4"):
        _rank(_context([0.5, 0.5, 0.0]))
    with pytest.raises(ArbitrationError, match="k = 0"):
        _rank(k=0)


def test_shipped_config_loads_and_matches_the_defaults() -> None:
    assert DEFAULT_ARBITRATION_PATH.is_file()
    config = load_arbitration_config()
    assert config == ArbitrationConfig()
    assert config.exploration_rate == 0.02
    assert "service_play" in config.churn_lever.retention_content_types


def test_partial_config_takes_defaults(tmp_path: Path) -> None:
    f = tmp_path / "arb.yaml"
    f.write_text("exploration_rate: 0.1\ncontact_policy:\n  max_actions_per_contact_per_week: 4\n")
    config = load_arbitration_config(f)
    assert config.exploration_rate == 0.1
    assert config.contact_policy.max_actions_per_contact_per_week == 4
    assert config.contact_policy.max_actions_per_account_per_week == 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("weights:\n  phase_fit:\n    exakt: 1.0\n", r"weights\.phase_fit\.exakt: unknown key"),
        ("exploration_rate: 1.5\n", r"exploration_rate: .*less than or equal to 1 \(got 1\.5\)"),
        ("default_k: many\n", r"default_k: .*\(got 'many'\)"),
        (
            "churn_lever:\n  bands:\n    medium: 0.5\n    high: 0.3\n",
            r"churn_lever\.bands: .*medium \(0\.5\) must be below high \(0\.3\)",
        ),
        (
            "contact_policy:\n  max_actions_per_account_per_week: -1\n",
            r"contact_policy\.max_actions_per_account_per_week",
        ),
        ("- a\n- b\n", "must hold a mapping"),
        ("weights: [\n", "not valid YAML"),
    ],
)
def test_config_errors_name_the_bad_key(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "arb.yaml"
    f.write_text(text)
    with pytest.raises(ArbitrationConfigError, match=message):
        load_arbitration_config(f)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ArbitrationConfigError, match="cannot read arbitration config"):
        load_arbitration_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("distinct", [True, False])
def test_draw_groups_equal_brute_force_on_random_instances(distinct: bool) -> None:
    """The grouped fills behind the propensities equal one fill per top-1 draw."""
    from models.arbitration import _draw_groups, _Greedy

    rng = np.random.default_rng(11)
    for _ in range(300):
        n = int(rng.integers(1, 14))
        contact = rng.integers(0, 3, n)
        left = rng.integers(0, 3, 3)
        account_left = int(rng.integers(0, 5))
        # a draw needs a free slot unless it was served this week already
        already = (rng.uniform(size=n) < 0.2) | (left[contact] == 0) | (account_left == 0)
        ranker = _Greedy(
            contact=contact.tolist(),
            item=rng.integers(0, 5, n).tolist(),
            already=already.tolist(),
            contact_left=left.tolist(),
            account_left=account_left,
            distinct=distinct,
        )
        slots = int(rng.integers(1, 4))
        brute: Counter[tuple[int, ...]] = Counter(tuple(ranker.fill(s, slots)[0]) for s in range(n))
        grouped: Counter[tuple[int, ...]] = Counter()
        for fill, size in _draw_groups(ranker, slots):
            grouped[tuple(fill)] += size
        assert +grouped == brute


def test_decision_record_is_json() -> None:
    import json

    from models.arbitration import decision_record

    d = _rank(_context([0.0, 1.0, 0.0, 0.0]))
    record = json.loads(json.dumps(decision_record(d)))
    assert record["policy"] == "ev-greedy-epsilon-v1"
    assert [a["rank"] for a in record["actions"]] == [1, 2, 3]
    assert {h["rule"] for h in record["held_back"]} == {"wrong phase", "wrong role"}
    assert len(d.actions_frame()) == 3 and list(d.held_back_frame().columns)[5] == "rule"
