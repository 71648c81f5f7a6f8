"""The simulated world of the closed-loop benchmark (``bench.closed_loop``): the simulator's
run stepped week by week, where the service decides the week's exposures and the world
answers with its true response model (``features.simulate.response``), and the new
touchpoints as ``POST /v1/events`` records.

True values are read from the simulator's response model at the decision time, in two
objectives (:data:`OBJECTIVES`): the response probability (the issue's measure) and the
expected value, that probability times the item's catalog value (what the service's
arbitration multiplies P(response) by; its fit and churn lever are the service's own
heuristics, not value). Each policy is valued with the contact it addresses: the served
action (its contact), the logging policy (the simulator's sender: its item distribution for
the CRM-recorded phase, sent to a contact of the buying center drawn uniformly, as the
simulator does), a frozen champion (the first models, greedy; its own contact) and the
oracle of each objective (the (contact, item) pair best in that objective over every
contact a policy could address: the buying center that week, whoever the service or the
champion named and whoever the service's servable actions name), so each oracle bounds
every policy in its own objective. Between them, the oracle restricted to what the service
could serve in that decision (the actions its eligibility rules and contact caps left for
the top slot: ``restricted``) and the service's ranking there on the true probability
(``greedy_true``) split the gap into what the rules, the ranking's other factors, the model
and the policy's exploration cost (:class:`WeekValues`). The oracle knows each account's
topic interests, which no data shows; ``informed`` is the oracle's pick with the interests
estimated from the account's content touchpoints so far (:func:`interest_estimate`, the
simulator's own prior and topic choice), what the data could tell at best about them
(still knowing the true phase, which the data shows only through the CRM's lagging
records and the touchpoints): a reference for how much of the oracle a policy seeing the
data can reach, not a bound; ``informed_greedy`` ranks with those probabilities as the
service ranks (value x fit x lever) among the actions it could serve: what a model that had
learned the response model exactly would serve, its interests as the data show them. A
contact
gone by the decision answers nobody (probability 0). Every policy is valued with the item's
own channel, the channel the service names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from features.schema import RESPONSE_EVENT_TYPES, RESPONSE_WINDOW_DAYS
from features.simulate.draws import pick_cdf
from features.simulate.exposures import fatigue_at, remember_exposure
from features.simulate.params import DAY_S, SECOND_NS, SimulationError, SimulationParams
from features.simulate.records import Records
from features.simulate.response import sigmoid
from features.simulate.state import State, Week
from features.simulate.tables import stage_records
from features.simulate.world import World
from models.arbitration import ServableActions
from serving.store.posteriors import PosteriorCounts

# The action a policy serves an account: (content_id, contact_id), or None for nothing.
Chooser = Callable[[str, int], tuple[str, str] | None]


POLICIES = (
    "served",
    "logging",
    "frozen",
    "frozen_contact",
    "restricted",
    "greedy_true",
    "informed",
    "informed_greedy",
    "oracle",
)
# objective -> the suffix of its values' names: the true response probability, and the true
# expected value (that probability times the item's value)
OBJECTIVES = {"response": "", "value": "_ev"}


@dataclass
class WeekValues:
    """One loop week's decisions: per decision the true response probability of each
    policy's action for its contact (``served`` ... ``oracle``) and its true expected
    value, that probability times the item's value (``<policy>_ev``: the quantity the
    service's arbitration ranks by, before its fit and lever; ``oracle_ev`` is the (contact,
    item) of highest true expected value, not the response oracle's). ``restricted`` is
    the oracle over what the service could serve (the actions its rules and caps left for
    the top slot) and ``greedy_true`` the service's own ranking there (value x fit x
    lever) with the true probability for the model's: from the oracle to ``restricted`` is
    what the rules cost, from there to ``greedy_true`` the ranking's other factors, from
    there to ``frozen`` the model's error and from there to ``served`` what the policy's
    exploration and learning cost or gain. ``frozen_contact`` is the best item for the
    contact the frozen champion chose: from the oracle to it is what the champion's choice of
    contact costs, from it to ``frozen`` its choice of item. ``informed_greedy`` is the
    service's own ranking over what it could serve with the informed reference's
    probabilities for the model's: what a model that learned the response model exactly but
    knows the interests only as the data show them would serve."""

    served: list[float] = field(default_factory=list)
    logging: list[float] = field(default_factory=list)
    frozen: list[float] = field(default_factory=list)
    frozen_contact: list[float] = field(default_factory=list)
    restricted: list[float] = field(default_factory=list)
    greedy_true: list[float] = field(default_factory=list)
    informed: list[float] = field(default_factory=list)
    informed_greedy: list[float] = field(default_factory=list)
    oracle: list[float] = field(default_factory=list)
    served_ev: list[float] = field(default_factory=list)
    logging_ev: list[float] = field(default_factory=list)
    frozen_ev: list[float] = field(default_factory=list)
    frozen_contact_ev: list[float] = field(default_factory=list)
    restricted_ev: list[float] = field(default_factory=list)
    greedy_true_ev: list[float] = field(default_factory=list)
    informed_ev: list[float] = field(default_factory=list)
    informed_greedy_ev: list[float] = field(default_factory=list)
    oracle_ev: list[float] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)

    def add(self, objective: str, values: dict[str, float]) -> None:
        """Appends one decision's ``values`` (:func:`decision_values`) in ``objective``."""
        for policy, value in values.items():
            getattr(self, policy + OBJECTIVES[objective]).append(value)

    def summary(self) -> dict[str, Any]:
        """Mean true value per policy with its 95 % interval (normal, over decisions)."""
        out: dict[str, Any] = {"decisions": len(self.served)}
        for name in (p + suffix for suffix in OBJECTIVES.values() for p in POLICIES):
            values = np.asarray(getattr(self, name), dtype=float)
            out[name] = mean_interval(values[~np.isnan(values)])
        out["responses"] = len(self.responses)
        return out


def world_params(profile: str, overrides: list[str]) -> SimulationParams:
    """The simulation profile with ``--world KEY=VALUE`` overrides (values read as YAML);
    raises SimulationError naming an unknown parameter."""
    pairs = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SimulationError(f"--world {item!r}: expected KEY=VALUE")
        pairs[key] = yaml.safe_load(value)
    return SimulationParams.profile(profile).with_overrides(pairs, where="--world")


def mean_interval(values: np.ndarray) -> list[float] | None:
    """[mean, low, high]: the mean of ``values`` with its 95 % interval (normal), None for
    no values."""
    if not len(values):
        return None
    mean = float(values.mean())
    half = 1.96 * float(values.std(ddof=1)) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return [round(mean, 5), round(mean - half, 5), round(mean + half, 5)]


def ratio_interval(x: np.ndarray, y: np.ndarray) -> list[float] | None:
    """[ratio, low, high]: mean(x) / mean(y) over paired decisions with its 95 % interval
    (delta method), None for no decisions or a zero mean(y)."""
    if not len(x) or not y.mean():
        return None
    ratio = float(x.mean() / y.mean())
    if len(x) < 2:
        return [round(ratio, 4)] * 3
    cov = np.cov(x, y)
    var = (cov[0, 0] + ratio**2 * cov[1, 1] - 2 * ratio * cov[0, 1]) / (len(x) * y.mean() ** 2)
    half = 1.96 * float(np.sqrt(max(var, 0.0)))
    return [round(ratio, 4), round(ratio - half, 4), round(ratio + half, 4)]


def shares_of_oracles(weeks: list[WeekValues]) -> dict[str, dict[str, list[float] | None]]:
    """objective -> each policy's mean true value over the decisions of ``weeks`` with its
    95 % interval (normal, over decisions) and its share of that objective's oracle on the
    same decisions (``<policy>_share``: the ratio of the means, interval by the delta
    method; the frozen champion's over the decisions it decided)."""
    out = {}
    for objective, suffix in OBJECTIVES.items():
        values = {
            p: np.concatenate([np.asarray(getattr(w, p + suffix), dtype=float) for w in weeks])
            for p in POLICIES
        }
        entry: dict[str, list[float] | None] = {}
        for policy, x in values.items():
            kept = ~np.isnan(x)
            entry[policy] = mean_interval(x[kept])
            if policy != "oracle":
                entry[policy + "_share"] = ratio_interval(x[kept], values["oracle"][kept])
        out[objective] = entry
    return out


def decision_values(
    probs: np.ndarray,
    values_of_items: np.ndarray,
    *,
    served: tuple[int, int],
    frozen: tuple[int, int] | None,
    logging_rows: list[int],
    logging_policy: np.ndarray,
    servable: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    informed: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """objective (:data:`OBJECTIVES`) -> policy -> its true value on one decision, from
    ``probs`` (contacts x items: each contact's true response probability of every item)
    and the items' values: the response probability, or it times the item's value. The
    served and the frozen champion's (contact row, item), NaN when the champion decided
    nothing, and the best item in the objective for the champion's contact
    (``frozen_contact``); the logging policy's item distribution ``logging_policy`` sent to
    one of ``logging_rows`` drawn uniformly; and the oracle, the best (contact, item) in that same
    objective, so no policy exceeds it. ``servable`` (contact rows, items, the rest of
    the service's expected value per action: value x fit x lever) is what the service
    could serve: its best in the objective (``restricted``) and the action of highest true
    probability x rest (``greedy_true``); NaN for both without it. ``informed`` (contacts x
    items, as ``probs``) is the response probability with the account's interests as the
    data show them: the true value of its best (contact, item) in each objective
    (``informed``) and of the action of highest informed probability x rest among the
    servable (``informed_greedy``); NaN without it."""
    nan = float("nan")
    known = servable is not None and len(servable[0]) > 0
    # the service's ranking (probability x rest) among the servable, on the true and on the
    # informed probabilities: the (contact row, item) each picks
    ranked: dict[str, tuple[int, int] | None] = {"greedy_true": None, "informed_greedy": None}
    if servable is not None and known:
        rows, items, rest = servable
        for name, p in (("greedy_true", probs), ("informed_greedy", informed)):
            if p is not None:
                k = int(np.argmax(p[rows, items] * rest))
                ranked[name] = (int(rows[k]), int(items[k]))
    out = {}
    for objective, weight in (("response", 1.0), ("value", values_of_items)):
        by_contact = probs * weight
        pick = (
            None
            if informed is None
            else np.unravel_index(np.argmax(informed * weight), probs.shape)
        )
        out[objective] = {
            "served": float(by_contact[served]),
            "logging": float((by_contact[logging_rows] @ logging_policy).mean()),
            "frozen": float(by_contact[frozen]) if frozen is not None else nan,
            "frozen_contact": float(by_contact[frozen[0]].max()) if frozen is not None else nan,
            "restricted": float(by_contact[rows, items].max()) if known else nan,
            **{name: nan if at is None else float(by_contact[at]) for name, at in ranked.items()},
            "informed": nan if pick is None else float(by_contact[pick]),
            "oracle": float(by_contact.max()),
        }
    return out


def account_id(world_index: int, width: int = 6) -> str:
    """The simulator's id of account index ``world_index`` (``features.simulate.tables``)."""
    return f"A{world_index + 1:0{width}d}"


def account_index(account_id: str) -> int:
    """The simulator's account index of ``account_id`` (``A`` + number)."""
    return int(account_id[1:]) - 1


def contact_index(contact_id: str) -> int:
    """The simulator's contact index of ``contact_id`` (``K`` + number)."""
    return int(contact_id[1:]) - 1


def contact_id(index: int) -> str:
    return f"K{index + 1:07d}"


def new_touchpoints(
    world: World, records: Records, *, before_ns: int, first_id: int
) -> list[dict[str, Any]]:
    """The touchpoints recorded since the last call, before ``before_ns``, as event records
    (ids ``L`` + a running number from ``first_id``; a contact with its role); later ones
    are kept for the next call."""
    ev = records.events.arrays()  # frees what it returns
    later = ev["ts"] >= before_ns
    if later.any():
        records.events.add(
            ev["acc"][later],
            ev["contact"][later],
            ev["ts"][later],
            ev["channel"][later],
            ev["etype"][later],
            ev["content"][later],
            ev["value"][later],
        )
    keep = ~later
    tax = world.taxonomy
    channels, etypes = tax.channel_names, tax.event_type_names
    content_ids = [str(c) for c in world.content_frame["content_id"]]
    roles = tax.role_names
    out = []
    start = first_id
    for i, r in enumerate(np.flatnonzero(keep).tolist()):
        contact = int(ev["contact"][r])
        record: dict[str, Any] = {
            "event_id": f"L{start + i:09d}",
            "account_id": account_id(int(ev["acc"][r])),
            "ts": pd.Timestamp(int(ev["ts"][r]), tz="UTC").isoformat(),
            "channel": channels[int(ev["channel"][r])],
            "event_type": etypes[int(ev["etype"][r])],
        }
        if contact >= 0:
            record["contact_id"] = contact_id(contact)
            record["contact"] = {"role": roles[int(world.centers.contact_role[contact])]}
        if int(ev["content"][r]) >= 0:
            record["content_id"] = content_ids[int(ev["content"][r])]
        value = float(ev["value"][r])
        if not np.isnan(value):
            record["value"] = value
        out.append(record)
    return out


def recorded_stages(
    world: World, records: Records, *, since_ns: int, before_ns: int
) -> pd.DataFrame:
    """The CRM's stage records (the ``stages`` table) with ``since_ns <= ts < before_ns``:
    what a CRM sync of that period brings to the store."""
    stages = stage_records(world, records)
    ts = stages["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return stages.loc[(ts >= since_ns) & (ts < before_ns)].reset_index(drop=True)


def true_probabilities(
    world: World,
    state: State,
    acc: int,
    contact: int,
    fatigue: float,
    interest: np.ndarray | None = None,
) -> np.ndarray:
    """The true response probability of every catalog item shown through its own channel to
    ``contact`` of account ``acc`` now; with ``interest`` (one per topic) the probability
    the response model gives with those interests for the account's own."""
    cat, lk = world.catalog, world.lookups
    items = np.arange(len(cat.content_ids))
    n = len(items)
    return sigmoid(
        world.response.logit(
            cat,
            item=items,
            phase=np.full(n, state.phase[acc]),
            role=np.full(n, world.centers.contact_role[contact]),
            interest=(world.accounts.interest[acc] if interest is None else interest)[
                cat.topic[items]
            ],
            fatigue=np.full(n, fatigue),
            channel=lk.item_channel[items],
        )
    )


@dataclass(frozen=True)
class DecisionTruth:
    """One decision's contacts (ids, roles), each one's true response probability of every
    item (contacts x items) and the row of the contact the service addressed."""

    contacts: list[str]
    roles: list[str]
    probs: np.ndarray
    served: int


@dataclass
class ServiceSender:
    """The weekly exposure step with the service deciding: accounts come to a decision at
    the simulator's own cadence (its exposure rate for the CRM-recorded phase, boosted by
    the week's activity), the service picks the action (``serve``), the world answers."""

    serve: Chooser
    frozen: Chooser
    # what the service could have served in its last decision (None: unknown)
    eligible: Callable[[], ServableActions | None] = lambda: None
    decide_ns: int = 0
    values: WeekValues = field(default_factory=WeekValues)
    # accounts x topics: the content touchpoints the data holds so far (:meth:`count`),
    # what the informed reference estimates interests from (None: no reference)
    topic_counts: np.ndarray | None = None
    # (account_id, decision ns) -> the contacts either policy could address then, with
    # their roles and the true response probability of every catalog item for each: what a
    # promotion's off-policy estimate is checked against
    truth: dict[tuple[str, int], DecisionTruth] = field(default_factory=dict)

    def __call__(
        self, world: World, state: State, week: Week, rng: np.random.Generator, records: Records
    ) -> np.ndarray:
        p, lk, cat = world.params, world.lookups, world.catalog
        n = world.n_accounts
        self.values = WeekValues()
        responded_fit = np.zeros(n)
        active = np.where(state.touched > 0, p.exposure_activity_boost, 1.0)
        due = rng.random(n) < np.minimum(lk.exposure_rate[state.crm_phase] * active, 1.0)
        has_contact = (week.slot_contact >= 0).any(axis=1)
        exists = world.accounts.created_ns <= self.decide_ns
        positions = content_positions(world)
        values_of_items = item_values(world)
        estimate = None if self.topic_counts is None else interest_estimate(self.topic_counts)
        for acc in np.flatnonzero(due & has_contact & exists).tolist():
            chosen = self.serve(account_id(acc), acc)
            if chosen is None:
                continue
            item, contact = positions[chosen[0]], contact_index(chosen[1])
            eligible = self.eligible()
            frozen = self.frozen(account_id(acc), acc)
            # every contact a policy could address: the account's buying center this week,
            # and whoever the service could or the frozen champion did name
            slots = week.slot_contact[acc]
            present = slots[slots >= 0]
            named = [contact] + ([contact_index(frozen[1])] if frozen is not None else [])
            # the servable actions the world knows (an account-level play names nobody)
            known = (
                []
                if eligible is None
                else [
                    (contact_index(c), positions[i], r)
                    for c, i, r in zip(
                        eligible.contact_ids, eligible.content_ids, eligible.rest, strict=True
                    )
                    if c.startswith("K") and i in positions
                ]
            )
            judged = np.unique(np.concatenate([present, np.asarray(named, dtype=np.int64)]))
            # after them, the contacts only the service's servable actions name (the truth
            # a promotion is checked on keeps the contacts of the buying center and named)
            more = np.setdiff1d(np.asarray([c for c, _, _ in known], dtype=np.int64), judged)
            contacts = np.concatenate([judged, more])
            row = {int(c): i for i, c in enumerate(contacts.tolist())}
            # the contacts' fatigue now, read once for the truth and the informed reference
            fatigue = fatigue_at(world, state, contacts, np.full(len(contacts), self.decide_ns))
            probs_by_contact = self._probabilities(world, state, acc, contacts, fatigue)
            informed = (
                None
                if estimate is None
                else self._probabilities(world, state, acc, contacts, fatigue, estimate[acc])
            )
            remember_exposure(state, np.array([contact]), np.array([self.decide_ns]))
            probs = probs_by_contact[row[contact]]
            self.truth[(account_id(acc), self.decide_ns)] = DecisionTruth(
                contacts=[contact_id(int(c)) for c in judged.tolist()],
                roles=[
                    world.taxonomy.role_names[int(world.centers.contact_role[c])]
                    for c in judged.tolist()
                ],
                probs=probs_by_contact[: len(judged)].astype(np.float32),
                served=row[contact],
            )
            logging_rows = [row[int(c)] for c in present] or [row[contact]]
            frozen_at = (
                None if frozen is None else (row[contact_index(frozen[1])], positions[frozen[0]])
            )
            for objective, values in decision_values(
                probs_by_contact,
                values_of_items,
                served=(row[contact], item),
                frozen=frozen_at,
                logging_rows=logging_rows,
                logging_policy=lk.policy[state.crm_phase[acc]],
                servable=None
                if eligible is None
                else (
                    np.array([row[c] for c, _, _ in known], dtype=np.int64),
                    np.array([i for _, i, _ in known], dtype=np.int64),
                    np.array([r for _, _, r in known], dtype=np.float64),
                ),
                informed=informed,
            ).items():
                self.values.add(objective, values)
            r_ts = self.decide_ns + int(rng.integers(60, 3 * DAY_S)) * SECOND_NS
            if rng.random() < probs[item] and r_ts < world.centers.contact_gone[contact]:
                etype = int(pick_cdf(lk.item_resp_cdf[[item]], rng.random(1))[0])
                self.values.responses.append(
                    {
                        "event_id": f"R{acc}-{self.decide_ns}",
                        "account_id": account_id(acc),
                        "contact_id": chosen[1],
                        "ts": pd.Timestamp(r_ts, tz="UTC").isoformat(),
                        "channel": world.taxonomy.channel_names[int(lk.item_channel[item])],
                        "event_type": world.taxonomy.event_type_names[etype],
                        "content_id": chosen[0],
                    }
                )
                if cat.phase_fit[item, state.phase[acc]] == 1.0:
                    responded_fit[acc] += 1
        return responded_fit

    def count(self, world: World, account_ids: Any, content_ids: Any) -> None:
        """Adds content touchpoints (their account and content ids; rows without content
        are skipped) to :attr:`topic_counts`."""
        if self.topic_counts is None:
            self.topic_counts = np.zeros(world.accounts.interest.shape)
        positions = content_positions(world)
        pairs = [
            (account_index(a), positions[c])
            for a, c in zip(account_ids, content_ids, strict=True)
            if isinstance(c, str) and c in positions
        ]
        if pairs:
            acc, item = (np.asarray(x, dtype=np.int64) for x in zip(*pairs, strict=True))
            np.add.at(self.topic_counts, (acc, world.catalog.topic[item]), 1.0)

    def _probabilities(
        self,
        world: World,
        state: State,
        acc: int,
        contacts: np.ndarray,
        fatigue: np.ndarray,
        interest: np.ndarray | None = None,
    ) -> np.ndarray:
        """contacts x items: each contact's true response probability of every item now at
        its ``fatigue``, 0 for a contact gone by the decision (they answer nobody); with
        ``interest`` the account's interests taken as those."""
        out = np.stack(
            [
                true_probabilities(world, state, acc, int(c), float(f), interest)
                for c, f in zip(contacts.tolist(), fatigue.tolist(), strict=True)
            ]
        )
        gone = world.centers.contact_gone[contacts] <= self.decide_ns
        out[gone] = 0.0
        return out


def interest_estimate(counts: np.ndarray, iterations: int = 30) -> np.ndarray:
    """Each account's topic interests (rows of ``counts``, its content touchpoints per
    topic) as the data tell them: the posterior mode under the simulator's prior (each
    interest standard normal) and its choice of a touchpoint's topic (softmax of the
    interests), by Newton's method with steps of at most 1 (the log posterior is strictly
    concave)."""
    counts = np.asarray(counts, dtype=float)
    eta = np.zeros_like(counts)
    n = counts.sum(axis=1, keepdims=True)
    eye = np.eye(counts.shape[1])
    for _ in range(iterations):
        p = np.exp(eta - eta.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        gradient = counts - n * p - eta
        # minus the Hessian: n (diag(p) - p p') + I, positive definite
        curvature = n[:, :, None] * (p[:, :, None] * eye - p[:, :, None] * p[:, None, :]) + eye
        step = np.linalg.solve(curvature, gradient[:, :, None])[:, :, 0]
        # damped: a full step overshoots from far away when n is large
        eta += step / np.maximum(np.abs(step).max(axis=1, keepdims=True), 1.0)
    return eta


def content_positions(world: World) -> dict[str, int]:
    """content_id -> catalog row of the simulator's catalog."""
    return {str(c): i for i, c in enumerate(world.catalog.content_ids)}


def item_values(world: World) -> np.ndarray:
    """The value of each catalog item (the catalog's ``value``, 1 where it has none), in
    catalog order: what the service's expected value multiplies a response by."""
    frame = world.content_frame
    if "value" not in frame:
        return np.ones(len(world.catalog.content_ids))
    by_id = dict(zip(frame["content_id"].astype(str), frame["value"].astype(float), strict=True))
    return np.array([by_id.get(str(c), 1.0) for c in world.catalog.content_ids])


def true_values_of_picks(
    picks: pd.DataFrame,
    truth: dict[tuple[str, int], DecisionTruth],
    positions: dict[str, int],
    organic: dict[tuple[str, str], list[int]],
) -> dict[str, Any]:
    """The true values, over the judged decisions of a promotion
    (``training.log_promotion.PICK_COLUMNS`` rows), of the item served, of the
    challenger's pick and of the champion's own pick (addressed to the contacts of its role,
    each alike, as the judgement takes them; to the served contact when it names no role or
    the world has no such contact then): the mean true response probability (``served``,
    ``challenger``, ``champion``) and
    the mean probability of what the reward counts (``*_reward``): a response, or a
    response-type touch of that item by that contact within the response window that came
    on its own (the world's organic touchpoints, ``organic``: (contact_id, content_id) ->
    their times), which happens whatever was served: 1 - (1 - p)(1 - organic).
    ``matched`` counts the decisions found in ``truth``, ``role_unmatched`` those whose
    challenger role no contact of the world's had."""
    ts = pd.to_datetime(picks["ts"], utc=True).astype("datetime64[ns, UTC]")
    window = RESPONSE_WINDOW_DAYS * 86_400 * SECOND_NS
    names = ("served", "challenger", "champion")
    out: dict[str, list[float]] = {k: [] for k in names}
    reward: dict[str, list[float]] = {k: [] for k in names}
    unmatched = 0

    def column(name: str) -> pd.Series:
        found = picks[name] if name in picks else pd.Series([""] * len(picks))
        return found.fillna("").astype(str)

    for acc, t, s, c, role, k, k_role in zip(
        picks["account_id"].astype(str),
        ts.map(lambda x: x.value),
        picks["served_content_id"].astype(str),
        picks["challenger_content_id"].astype(str),
        column("challenger_role"),
        column("champion_content_id"),
        column("champion_role"),
        strict=True,
    ):
        known = truth.get((acc, int(t)))
        if known is None:
            continue
        rows = [i for i, r in enumerate(known.roles) if role and r == role]
        unmatched += bool(role) and not rows
        theirs = [i for i, r in enumerate(known.roles) if k_role and r == k_role]
        chosen = [("served", s, [known.served]), ("challenger", c, rows)]
        if k:  # the champion's own pick, when the judgement valued it
            chosen.append(("champion", k, theirs))
        for name, item, at in chosen:
            at = at or [known.served]
            col = positions[item]
            p = known.probs[at, col].astype(np.float64)
            touched = np.array(
                [
                    any(
                        int(t) <= o <= int(t) + window
                        for o in organic.get((known.contacts[i], item), ())
                    )
                    for i in at
                ]
            )
            out[name].append(float(p.mean()))
            reward[name].append(float(np.where(touched, 1.0, p).mean()))

    def mean(values: list[float]) -> float | None:
        return round(float(np.mean(values)), 5) if values else None

    return {
        "matched": len(out["served"]),
        "of": len(picks),
        "role_unmatched": unmatched,
        "served": mean(out["served"]),
        "challenger": mean(out["challenger"]),
        # the champion model's own policy (None when the judgement did not value it)
        "champion": mean(out["champion"]),
        "served_reward": mean(reward["served"]),
        "challenger_reward": mean(reward["challenger"]),
        "champion_reward": mean(reward["champion"]),
    }


def organic_touches(events: list[dict[str, Any]], into: dict[tuple[str, str], list[int]]) -> None:
    """Adds the response-type touchpoints of a contact on an item among ``events`` (the
    world's own touchpoints, not the answers to the service) to ``into``."""
    kinds = set(RESPONSE_EVENT_TYPES)
    for e in events:
        if e["event_type"] in kinds and "contact_id" in e and "content_id" in e:
            key = (e["contact_id"], e["content_id"])
            into.setdefault(key, []).append(pd.Timestamp(e["ts"]).value)


def posterior_spread(counts: Mapping[Any, PosteriorCounts]) -> dict[str, float]:
    """What the online posterior's keys saw (``counts``: key -> decisions, rewarded
    decisions, successes the model expected): the totals, the common calibration factor
    (successes over expected), Pearson's chi-square test that every key shares it (Poisson
    counts), and a moment estimate of how far the keys' own factors spread around it
    (their standard deviation as a share of it, beyond the Poisson noise): what learning
    per key could find, beside how little each key holds (its median successes). The
    chi-square is approximate where keys expect few successes."""
    c = [v for v in counts.values() if v.expected > 0]
    s = np.array([v.successes for v in c], dtype=np.float64)
    e = np.array([v.expected for v in c], dtype=np.float64)
    if len(c) < 2 or s.sum() == 0:
        return {"keys": float(len(c))}
    theta = s.sum() / e.sum()
    chi2 = float((((s - theta * e) ** 2) / (theta * e)).sum())
    df = len(c) - 1
    spread = (np.sum(e * (s / e - theta) ** 2) - df * theta) / (e.sum() - (e**2).sum() / e.sum())
    return {
        "keys": float(len(c)),
        "trials": float(sum(v.trials for v in c)),
        "successes": float(s.sum()),
        "expected": round(float(e.sum()), 2),
        "factor": round(float(theta), 4),
        "median_successes_per_key": float(np.median(s)),
        "chi2": round(chi2, 1),
        "chi2_df": float(df),
        "chi2_p": round(float(stats.chi2.sf(chi2, df)), 4),
        "factor_spread_share": round(float(np.sqrt(max(spread, 0.0)) / theta), 3),
    }
