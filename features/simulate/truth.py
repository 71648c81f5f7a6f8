"""The simulation's ground truth and what evaluation derives from it: the latent phase of an
account at a time, the probability that a customer churns within a horizon (the Monte Carlo
oracle, when the run computed it, and the as-of week's hazard held for the horizon, which is
no bound), the probability that a contact responds to an exposure. The true phase, the
oracle and the response probability are the best achievable predictions.

Only evaluation may read the truth. This module does not import the simulator itself, so
importing it (as the training layer does) stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from features.simulate.columns import STR, timestamps
from features.simulate.params import SECOND_NS
from features.simulate.response import ResponseModel, build_catalog, fatigue_weight, sigmoid
from features.timestamps import NS_PER_DAY, column_ns, to_ns

# The catalog columns the truth keeps (``channel``: the item's usual channel, which the
# sender uses when it does not send by e-mail).
TRUTH_CONTENT_COLUMNS = ("content_id", "phases", "roles", "topic", "content_type", "channel")


@dataclass
class SimulationTruth:
    """Ground truth of a simulation; only evaluation may read it.

    - ``phases``: account_id, phase, start, end (NaT while ongoing), recorded_at and
      recorded_phase (the CRM record of this change; NaT/NaN if not recorded before the end),
      one row per latent phase segment;
    - ``accounts``: account_id, velocity, frailty, engagement, champion_contact_id and one
      ``interest_<topic>`` column per topic (the latent per-account parameters);
    - ``contacts``: contact_id, account_id, role;
    - ``content``: content_id, phases, roles, topic, content_type, channel (the catalog the
      response model used; channel: the item's usual channel);
    - ``exposures``: exposure_id, account_id, contact_id, content_id, ts, channel,
      true_phase, p_response, responded;
    - ``churn_hazard``: account_id, week_start, hazard (weekly churn hazard of every customer
      in every week it was a customer);
    - ``params``: name, value (the response model's coefficients and its per-phase,
      per-channel and per-content-type terms, start and end);
    - ``churn_oracle``: account_id, as_of, horizon_days, draws, p_churn (the Monte Carlo
      churn probability given the latent state, ``features.simulate.oracle``; empty unless
      the run was asked for it with ``oracle_as_of``).
    """

    phases: pd.DataFrame
    accounts: pd.DataFrame
    contacts: pd.DataFrame
    content: pd.DataFrame
    exposures: pd.DataFrame
    churn_hazard: pd.DataFrame
    params: pd.DataFrame
    churn_oracle: pd.DataFrame = field(default_factory=lambda: _empty_churn_oracle())

    def tables(self) -> dict[str, pd.DataFrame]:
        """The truth frames by field name, in field order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def param(self, name: str) -> float:
        """One numeric parameter by name (KeyError if absent)."""
        hit = self.params.loc[self.params["name"] == name, "value"]
        if hit.empty:
            raise KeyError(f"truth params has no {name!r}")
        return float(hit.iloc[0])


def load_truth(data_dir: Path | str) -> SimulationTruth:
    """Read ``DATA_DIR/truth/`` as written by :func:`write_simulation` (a data directory
    written before the churn oracle existed has no ``churn_oracle`` file: it reads as empty)."""
    truth_dir = Path(data_dir) / "truth"
    frames: dict[str, Any] = {}
    for f in fields(SimulationTruth):
        path = truth_dir / f"{f.name}.parquet"
        if f.name == "churn_oracle" and not path.exists():
            continue
        if not path.exists():
            raise FileNotFoundError(f"simulation truth file {path} is missing")
        frames[f.name] = pd.read_parquet(path)
    frames["content"]["phases"] = frames["content"]["phases"].map(list)
    frames["content"]["roles"] = frames["content"]["roles"].map(list)
    return SimulationTruth(**frames)


def _empty_churn_oracle() -> pd.DataFrame:
    """The churn oracle table of a run that computed none."""
    return pd.DataFrame(
        {
            "account_id": pd.Series([], dtype=STR),
            "as_of": pd.Series([], dtype="datetime64[ns, UTC]"),
            "horizon_days": pd.Series([], dtype=np.int64),
            "draws": pd.Series([], dtype=np.int64),
            "p_churn": pd.Series([], dtype=np.float64),
        }
    )


def _utc_ns(values: Any, n: int) -> np.ndarray:
    """Timestamps (one or n) as int64 UTC nanoseconds, broadcast to n."""
    if isinstance(values, pd.Series | pd.Index | np.ndarray | list):
        out = column_ns(pd.Series(values))
    else:
        out = np.full(n, to_ns(values), dtype=np.int64)
    if len(out) != n:
        raise ValueError(f"got {len(out)} timestamps for {n} rows")
    return out


def _segment_lookup(
    truth: SimulationTruth, account_ids: Any, at_ns: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Index into truth.phases of the segment covering each (account, time); -1 if none."""
    seg = truth.phases
    acc_codes, _ = pd.factorize(
        pd.concat([seg["account_id"].astype(str), pd.Series(account_ids, dtype=str)]),
        sort=False,
    )
    seg_codes = acc_codes[: len(seg)]
    req_codes = acc_codes[len(seg) :]
    seg_start = _utc_ns(seg["start"], len(seg))
    order = np.lexsort((seg_start, seg_codes))
    s_codes, s_start = seg_codes[order], seg_start[order]
    lo = np.searchsorted(s_codes, req_codes, side="left")
    hi = np.searchsorted(s_codes, req_codes, side="right")
    # One sorted int64 key (account code, start second): segment starts are whole seconds,
    # so start <= at  <=>  start_second <= floor(at_second).
    base = int(min(s_start.min(), at_ns.min())) if len(s_start) and len(at_ns) else 0
    s_sec = (s_start - base) // SECOND_NS
    q_sec = (at_ns - base) // SECOND_NS
    scale = int(max(s_sec.max(initial=0), q_sec.max(initial=0)) + 1)
    key = s_codes.astype(np.int64) * scale + s_sec
    pos = np.searchsorted(key, req_codes.astype(np.int64) * scale + q_sec, side="right") - 1
    valid = (pos >= lo) & (pos < hi)
    valid &= s_start[np.clip(pos, 0, None)] <= at_ns
    return np.where(valid, order[np.clip(pos, 0, None)], -1), req_codes


def true_phases(
    truth: SimulationTruth, account_ids: Any, at: pd.Timestamp | pd.Series | str
) -> pd.Series:
    """The latent phase of each account at ``at`` (one time or one per account), as a
    categorical Series aligned with ``account_ids`` (NaN before the account's first segment
    or for unknown accounts)."""
    ids = pd.Series(account_ids, dtype=str).reset_index(drop=True)
    at_ns = _utc_ns(at, len(ids))
    idx, _ = _segment_lookup(truth, ids, at_ns)
    phase = truth.phases["phase"]
    codes = np.where(idx >= 0, phase.cat.codes.to_numpy()[np.maximum(idx, 0)], -1)
    return pd.Series(
        pd.Categorical.from_codes(codes, dtype=cast(pd.CategoricalDtype, phase.dtype)), name="phase"
    )


def true_churn_probability(
    truth: SimulationTruth, as_of: Sequence[pd.Timestamp], horizon_days: int = 90
) -> pd.DataFrame:
    """For every account that is a customer at each as-of date: the probability that it
    churns in (as_of, as_of + horizon_days], holding the weekly hazard the simulator used in
    the week containing as_of for the horizon. Returns account_id, as_of, p_churn.

    A reference, not the best achievable prediction: the hazard changes predictably over the
    horizon (onboarding, tickets, health), so this under-predicts; the true upper reference
    is ``churn_oracle`` (:func:`oracle_churn_probability`)."""
    start_ns = int(truth.param("start_ns"))
    week_ns = int(truth.param("week_ns"))
    hz = truth.churn_hazard
    week = (_utc_ns(hz["week_start"], len(hz)) - start_ns) // week_ns
    out = []
    for t in as_of:  # a handful of as-of dates
        t_ns = int(_utc_ns(t, 1)[0])
        w = (t_ns - start_ns) // week_ns
        rows = hz[week == w]
        boundaries = (t_ns + horizon_days * NS_PER_DAY - start_ns) // week_ns - w
        p = 1.0 - (1.0 - rows["hazard"].to_numpy()) ** max(int(boundaries), 0)
        out.append(
            pd.DataFrame(
                {
                    "account_id": rows["account_id"].to_numpy(),
                    "as_of": timestamps(np.full(len(rows), t_ns)),
                    "p_churn": p,
                }
            )
        )
    if not out:
        return pd.DataFrame(
            {
                "account_id": pd.Series([], dtype=STR),
                "as_of": pd.Series([], dtype="datetime64[ns, UTC]"),
                "p_churn": pd.Series([], dtype=float),
            }
        )
    frame = pd.concat(out, ignore_index=True)
    frame["account_id"] = frame["account_id"].astype(STR)
    return frame


def true_response_probability(truth: SimulationTruth, requests: pd.DataFrame) -> np.ndarray:
    """The simulator's probability that ``contact_id`` of ``account_id`` responds to
    ``content_id`` shown at ``ts`` through ``channel`` (optional column; without it e-mail,
    the channel most exposures go out through): the response model with the true phase at
    ts, the contact's role, the account's topic interest and the contact's fatigue from its
    exposures in [ts - fatigue window, ts). Requests need account_id, contact_id,
    content_id, ts."""
    _require_request_columns(requests)
    n = len(requests)
    state = ResponseState.of(truth, requests)
    item = state.item_positions(requests["content_id"])
    if "channel" not in requests:
        return state.probability(np.arange(n), item)
    codes, names = pd.factorize(requests["channel"].astype(str))
    return state.probability(np.arange(n), item, channel=(codes, list(names)))


def sent_response_probability(truth: SimulationTruth, requests: pd.DataFrame) -> np.ndarray:
    """The simulator's probability that each request's contact responds to the item if the
    simulator's sender sent it (``true_response_probability`` averaged over the channel the
    sender picks: e-mail with the run's ``exposure_email_share``, else the item's usual
    channel). This is the true value of picking the item that a logged exposure's observed
    response estimates; e-mail alone overstates it where items usually go out through
    weaker channels. A truth written before the run kept the share and the items' channels
    gives the e-mail probability. Requests need account_id, contact_id, content_id, ts."""
    _require_request_columns(requests)
    state = ResponseState.of(truth, requests)
    item = state.item_positions(requests["content_id"])
    return state.sent_probability(np.arange(len(requests)), item)


def _require_request_columns(requests: pd.DataFrame) -> None:
    missing = {"account_id", "contact_id", "content_id", "ts"} - set(requests.columns)
    if missing:
        raise ValueError(f"requests lacks columns {sorted(missing)}")


@dataclass
class ResponseState:
    """What the response model reads of each decision (an account's contact at a time),
    computed once however many items are asked about: the true phase, the contact's role,
    the account's topic interests and the contact's fatigue. :meth:`probability` and
    :meth:`sent_probability` then answer for (decision, item) pairs, so scoring every item
    of a decision does not repeat the per-decision lookups for each item."""

    truth: SimulationTruth
    catalog: Any
    phase: np.ndarray
    role: np.ndarray
    interest: np.ndarray  # decisions x topics
    fatigue: np.ndarray

    @classmethod
    def of(cls, truth: SimulationTruth, decisions: pd.DataFrame) -> ResponseState:
        """The state of each row of ``decisions`` (account_id, contact_id, ts)."""
        n = len(decisions)
        ts = _utc_ns(decisions["ts"], n)
        phases = list(truth.phases["phase"].cat.categories)
        topics = list(truth.content["topic"].cat.categories)
        roles = list(truth.contacts["role"].cat.categories)
        cat = build_catalog(truth.content, phases, roles, topics, truth.param("adjacent_phase_fit"))
        seg, _ = _segment_lookup(truth, decisions["account_id"], ts)
        phase_codes = truth.phases["phase"].cat.codes.to_numpy()
        contacts = truth.contacts.set_index("contact_id")["role"]
        latent = truth.accounts.set_index("account_id")
        interest_cols = [f"interest_{t}" for t in topics]
        return cls(
            truth=truth,
            catalog=cat,
            phase=np.where(seg >= 0, phase_codes[np.maximum(seg, 0)], -1),
            role=contacts.reindex(decisions["contact_id"].astype(str)).cat.codes.to_numpy(),
            interest=latent[interest_cols]
            .reindex(decisions["account_id"].astype(str))
            .to_numpy(dtype=np.float64),
            fatigue=_fatigue(truth, decisions["contact_id"], ts),
        )

    def item_positions(self, content_ids: Any) -> np.ndarray:
        """Each id's position in the simulated catalog (raises for an unknown id)."""
        ids = pd.Series(content_ids)
        item = pd.Index(self.catalog.content_ids).get_indexer(pd.Index(ids.astype(str)))
        if (item < 0).any():
            bad = ids[item < 0].unique()[:5].tolist()
            raise ValueError(f"requests.content_id {bad} not in the simulated catalog")
        return item

    def probability(
        self,
        decision: np.ndarray,
        item: np.ndarray,
        *,
        channel: tuple[np.ndarray, Sequence[str]] | None = None,
    ) -> np.ndarray:
        """The response probability of each (``decision``, ``item``) pair (row positions,
        catalog positions) shown through ``channel`` (per pair a code into the names that
        follow; default e-mail)."""
        channel_codes, channel_names = channel or (
            np.zeros(len(decision), dtype=np.int64),
            ["email"],
        )
        truth = self.truth
        content_types = (
            truth.content["content_type"].astype(str).tolist()
            if "content_type" in truth.content
            else [""] * len(self.catalog.content_ids)
        )
        rows = dict(zip(truth.params["name"].astype(str), truth.params["value"], strict=True))
        model = ResponseModel.build(
            rows,
            roles=list(truth.contacts["role"].cat.categories),
            channels=[str(c) for c in channel_names],
            content_types=content_types,
            n_phases=len(truth.phases["phase"].cat.categories),
        )
        interest = np.nan_to_num(self.interest[decision, self.catalog.topic[item]])
        return sigmoid(
            model.logit(
                self.catalog,
                item=item,
                phase=self.phase[decision],
                role=self.role[decision],
                interest=interest,
                fatigue=self.fatigue[decision],
                channel=channel_codes,
            )
        )

    def sent_probability(self, decision: np.ndarray, item: np.ndarray) -> np.ndarray:
        """:meth:`probability` as the simulator's sender sends (see
        :func:`sent_response_probability`)."""
        truth = self.truth
        by_email = self.probability(decision, item)
        names = set(truth.params["name"].astype(str))
        if "exposure_email_share" not in names or "channel" not in truth.content.columns:
            return by_email
        share = truth.param("exposure_email_share")
        usual = truth.content.set_index(truth.content["content_id"].astype(str))["channel"]
        # Factorized over the few items, not the pairs.
        codes, channels = pd.factorize(
            usual.reindex(pd.Index(self.catalog.content_ids)).astype(str).to_numpy()
        )
        own = self.probability(decision, item, channel=(codes[item], list(channels)))
        return share * by_email + (1.0 - share) * own


def _fatigue(truth: SimulationTruth, contact_ids: Any, ts: np.ndarray) -> np.ndarray:
    """Exposures of each contact with time in [ts - window, ts), weighted by recency as the
    simulator weighs them (``fatigue_weight``)."""
    window = int(truth.param("fatigue_window_days")) * NS_PER_DAY
    halflife = (
        truth.param("fatigue_halflife_days")
        if "fatigue_halflife_days" in set(truth.params["name"].astype(str))
        else 0.0
    )
    ex = truth.exposures
    codes, uniques = pd.factorize(
        pd.concat([ex["contact_id"].astype(str), pd.Series(contact_ids, dtype=str)]), sort=False
    )
    ex_codes = codes[: len(ex)].astype(np.int64)
    req_codes = codes[len(ex) :].astype(np.int64)
    ex_ts = _utc_ns(ex["ts"], len(ex))
    base = min(int(ex_ts.min()) if len(ex_ts) else 0, int(ts.min()) - window) if len(ts) else 0
    sec = (ex_ts - base) // SECOND_NS
    scale = int(max(sec.max() if len(sec) else 0, ((ts - base) // SECOND_NS).max()) + 2)
    key = np.sort(ex_codes * scale + sec)
    # Exposure times are whole seconds, so e < t  <=>  e_sec < ceil(t_sec).
    hi_s = -((-(ts - base)) // SECOND_NS)
    lo_s = -((-(ts - window - base)) // SECOND_NS)
    hi = np.searchsorted(key, req_codes * scale + hi_s, side="left")
    lo = np.searchsorted(key, req_codes * scale + lo_s, side="left")
    fatigue = np.zeros(len(ts))
    for k in range(int((hi - lo).max(initial=0))):  # at most a few exposures in the window
        pos = hi - 1 - k
        inside = pos >= lo
        e_sec = key[np.clip(pos, 0, None)] % scale
        age_ns = (ts - base) - e_sec * SECOND_NS
        fatigue += np.where(inside, fatigue_weight(age_ns, halflife), 0.0)
    return fatigue


def oracle_churn_probability(
    truth: SimulationTruth, rows: pd.DataFrame, horizon_days: int
) -> np.ndarray | None:
    """The churn oracle's probability (``truth.churn_oracle``) for each (account_id, as_of)
    row, 0 for accounts that were no customers at as-of (they could churn only after a
    purchase within the horizon, which the oracle does not follow); None unless the oracle
    was computed for every as-of date of ``rows`` with this horizon."""
    oracle = truth.churn_oracle
    oracle = oracle[oracle["horizon_days"] == horizon_days]
    keys = pd.DataFrame(
        {
            "account_id": rows["account_id"].astype(str).to_numpy(),
            "as_of": _utc_ns(rows["as_of"], len(rows)),
        }
    )
    table = pd.DataFrame(
        {
            "account_id": oracle["account_id"].astype(str).to_numpy(),
            "as_of": _utc_ns(oracle["as_of"], len(oracle)),
            "p_churn": oracle["p_churn"].to_numpy(dtype=np.float64),
        }
    )
    if not set(keys["as_of"].unique()) <= set(table["as_of"].unique()):
        return None
    merged = keys.merge(table, on=["account_id", "as_of"], how="left", validate="many_to_one")
    return merged["p_churn"].fillna(0.0).to_numpy(dtype=np.float64)
