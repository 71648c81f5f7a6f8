"""The simulation's output: the six tables of the data contract and the ground truth,
assembled from a run's world and records, and written as Parquet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from features.load import write_data_dir
from features.schema import TABLES, JourneyData, column_dtype
from features.simulate.columns import STR, categorical, content_ids, ids, timestamps
from features.simulate.params import WEEK_NS
from features.simulate.records import Records
from features.simulate.response import ResponseModel
from features.simulate.truth import TRUTH_CONTENT_COLUMNS, SimulationTruth
from features.simulate.world import World
from features.taxonomy import Taxonomy


@dataclass
class Simulation:
    """The simulated tables and their ground truth."""

    data: JourneyData
    truth: SimulationTruth


@dataclass(frozen=True)
class IdStart:
    """Where a run's ids start: the numbers before its first account, contact, touchpoint
    and exposure, and the accounts of the whole world (which set the account ids' width).
    A run alone starts at zero; chunk k of a chunked world after the ids of chunks < k
    (``features.simulate.chunked``)."""

    account: int = 0
    contact: int = 0
    event: int = 0
    exposure: int = 0
    world_accounts: int | None = None  # None: the run's own accounts


class _Ids:
    """Account and contact ids of the simulator's indices (0-based)."""

    def __init__(self, n_accounts: int, start: IdStart) -> None:
        total = start.world_accounts if start.world_accounts is not None else n_accounts
        self.acc_width = 6 if total < 10**6 else 9
        self.start = start

    def acc(self, idx: np.ndarray) -> pd.Series:
        """Account ids ``A`` + number."""
        return ids("A", np.asarray(idx) + 1 + self.start.account, self.acc_width)

    def contact(self, idx: np.ndarray) -> pd.Series:
        """Contact ids ``K`` + number; index -1 gives NaN."""
        idx = np.asarray(idx)
        return ids("K", np.maximum(idx, 0) + 1 + self.start.contact, 7, valid=idx >= 0)


def assemble(world: World, records: Records, start: IdStart | None = None) -> Simulation:
    """Returns the canonical tables and the truth of a finished run, ids numbered from
    ``start`` (default: from 1)."""
    tax, n = world.taxonomy, world.n_accounts
    to_id = _Ids(n, start if start is not None else IdStart())
    account_id = to_id.acc(np.arange(n))
    cat_ids = [str(c) for c in world.content_frame["content_id"]]
    accounts_df = _accounts(world, account_id)
    contacts_df = _contacts(world, to_id)
    content_df = pd.DataFrame(
        {
            c.name: _content_column(world.content_frame, c.name, tax)
            for c in TABLES["content"].columns
            if c.name in world.content_frame
        }
    )
    touchpoints = _touchpoints(world, records, to_id, cat_ids)
    phases_truth, stages = _phases_and_stages(world, records, to_id)
    exposures_df, exposures_truth = _exposures(world, records, to_id, cat_ids)
    truth = SimulationTruth(
        phases=phases_truth,
        accounts=_latent(world, account_id, to_id),
        contacts=contacts_df[["contact_id", "account_id", "role"]].copy(),
        content=content_df[[c for c in TRUTH_CONTENT_COLUMNS if c in content_df.columns]].copy(),
        exposures=exposures_truth,
        churn_hazard=_churn_hazard(world, records, to_id),
        params=_params(world),
    )
    data = JourneyData(
        accounts=accounts_df,
        contacts=contacts_df,
        touchpoints=touchpoints,
        content=content_df,
        stages=stages,
        exposures=exposures_df,
    )
    return Simulation(data=data, truth=truth)


def _accounts(world: World, account_id: pd.Series) -> pd.DataFrame:
    tax, acc = world.taxonomy, world.accounts
    return pd.DataFrame(
        {
            "account_id": account_id,
            "industry": categorical(acc.industry, list(tax.industries)),
            "employees": pd.array(acc.employees, dtype="Int64"),  # nullable in the contract
            "region": categorical(acc.region, list(tax.regions)),
            "created_at": timestamps(acc.created_ns),
            "annual_revenue": np.round(acc.revenue, 0).astype(np.float64),
            "owner_rep_id": ids("R", acc.owner, 3),
        }
    )


def _contacts(world: World, to_id: _Ids) -> pd.DataFrame:
    centers = world.centers
    left = centers.contact_left
    frame = pd.DataFrame(
        {
            "contact_id": to_id.contact(np.arange(len(centers.contact_acc))),
            "account_id": to_id.acc(centers.contact_acc),
            "role": categorical(centers.contact_role, world.taxonomy.role_names),
            "created_at": timestamps(centers.contact_created),
            "left_at": timestamps(np.where(left >= 0, left, 0)),
        }
    )
    frame.loc[left < 0, "left_at"] = pd.NaT
    return frame


def _touchpoints(world: World, records: Records, to_id: _Ids, cat_ids: list[str]) -> pd.DataFrame:
    """Touchpoints before the end in time order; event ids follow it."""
    tax = world.taxonomy
    ev = records.events.arrays()
    keep = ev["ts"] < world.end_ns
    order = np.argsort(ev["ts"][keep], kind="stable")
    ev = {k: v[keep][order] for k, v in ev.items()}
    n_ev = len(ev["ts"])
    return pd.DataFrame(
        {
            "event_id": ids("E", np.arange(1, n_ev + 1) + to_id.start.event, 9),
            "account_id": to_id.acc(ev["acc"]),
            "contact_id": to_id.contact(ev["contact"]),
            "ts": timestamps(ev["ts"]),
            "channel": categorical(ev["channel"], tax.channel_names),
            "event_type": categorical(ev["etype"], tax.event_type_names),
            "content_id": content_ids(ev["content"].astype(np.int64), cat_ids),
            "value": ev["value"].astype(np.float64),
        }
    )


def stage_records(world: World, records: Records) -> pd.DataFrame:
    """The CRM's stage records of the run so far (the ``stages`` table, ids from 1): what a
    CRM sync brings while the run goes on (the closed-loop benchmark)."""
    return _phases_and_stages(world, records, _Ids(world.n_accounts, IdStart()))[1]


def _phases_and_stages(
    world: World, records: Records, to_id: _Ids
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The truth's phase segments and the CRM's stages (the records made before the end)."""
    phases = world.taxonomy.phases
    seg_acc, seg_phase, seg_start, rec_ts, rec_phase = (
        np.concatenate(x)
        for x in (records.seg_acc, records.seg_phase, records.seg_start, records.rec_ts,
                  records.rec_phase)
    )  # fmt: skip
    order = np.lexsort((seg_start, seg_acc))
    seg_acc, seg_phase, seg_start = seg_acc[order], seg_phase[order], seg_start[order]
    rec_ts, rec_phase = rec_ts[order], rec_phase[order]
    same_next = np.append(seg_acc[1:] == seg_acc[:-1], False)
    seg_end = np.where(same_next, np.append(seg_start[1:], 0), -1)
    recorded = rec_ts < world.end_ns
    phases_truth = pd.DataFrame(
        {
            "account_id": to_id.acc(seg_acc),
            "phase": categorical(seg_phase, phases),
            "start": timestamps(seg_start),
            "end": timestamps(np.maximum(seg_end, 0)),
            "recorded_at": timestamps(np.where(recorded, rec_ts, 0)),
            "recorded_phase": categorical(np.where(recorded, rec_phase, -1), phases),
        }
    )
    phases_truth.loc[seg_end < 0, "end"] = pd.NaT
    phases_truth.loc[~recorded, "recorded_at"] = pd.NaT
    s_order = np.lexsort((seg_acc[recorded], rec_ts[recorded]))
    stages = pd.DataFrame(
        {
            "account_id": to_id.acc(seg_acc[recorded][s_order]),
            "ts": timestamps(rec_ts[recorded][s_order]),
            "phase": categorical(rec_phase[recorded][s_order], phases),
        }
    )
    return phases_truth, stages


def _exposures(
    world: World, records: Records, to_id: _Ids, cat_ids: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The exposures table and the truth's exposures (true phase, response probability,
    response), both in time order."""
    xp = {k: np.concatenate(v) if v else np.empty(0) for k, v in records.exposures.items()}
    order = np.lexsort((xp["acc"], xp["ts"]))
    xp = {k: v[order] for k, v in xp.items()}
    n_x = len(order)
    exposure_id = ids("X", np.arange(1, n_x + 1) + to_id.start.exposure, 9)
    x_acc_ids = to_id.acc(xp["acc"])
    x_contact_ids = to_id.contact(xp["contact"])
    x_content_ids = content_ids(xp["item"].astype(np.int64), cat_ids)
    x_ts = timestamps(xp["ts"])
    exposures_df = pd.DataFrame(
        {
            "exposure_id": exposure_id,
            "account_id": x_acc_ids,
            "contact_id": x_contact_ids,
            "ts": x_ts,
            "content_id": x_content_ids,
            "channel": categorical(xp["channel"], world.taxonomy.channel_names),
            "propensity": xp["prop"].astype(np.float64),
        }
    )
    exposures_truth = pd.DataFrame(
        {
            "exposure_id": exposure_id,
            "account_id": x_acc_ids,
            "contact_id": x_contact_ids,
            "content_id": x_content_ids,
            "ts": x_ts,
            "channel": categorical(xp["channel"], world.taxonomy.channel_names),
            "true_phase": categorical(xp["phase"], world.taxonomy.phases),
            "p_response": xp["p"].astype(np.float64),
            "responded": xp["resp"].astype(bool),
        }
    )
    return exposures_df, exposures_truth


def _churn_hazard(world: World, records: Records, to_id: _Ids) -> pd.DataFrame:
    hz_acc, hz_week, hz_val = (
        np.concatenate(x) if x else np.empty(0)
        for x in (records.hz_acc, records.hz_week, records.hz_val)
    )
    return pd.DataFrame(
        {
            "account_id": to_id.acc(hz_acc.astype(np.int64)),
            "week_start": timestamps(world.start_ns + hz_week.astype(np.int64) * WEEK_NS),
            "hazard": hz_val.astype(np.float64),
        }
    )


def _latent(world: World, account_id: pd.Series, to_id: _Ids) -> pd.DataFrame:
    """The latent per-account parameters."""
    acc = world.accounts
    latent = pd.DataFrame(
        {
            "account_id": account_id,
            "velocity": acc.velocity,
            "frailty": acc.frailty,
            "engagement": acc.engagement,
            "champion_contact_id": to_id.contact(world.centers.champion_contact),
        }
    )
    for t, name in enumerate(world.taxonomy.topic_names):
        latent[f"interest_{name}"] = acc.interest[:, t]
    return latent


def _params(world: World) -> pd.DataFrame:
    """The response model's coefficients and the time span, as name/value rows."""
    p = world.params
    params = ResponseModel.rows(p)
    params.update(
        adjacent_phase_fit=p.adjacent_phase_fit,
        fatigue_window_days=float(p.fatigue_window_days),
        exposure_email_share=p.exposure_email_share,
        start_ns=float(world.start_ns),
        end_ns=float(world.end_ns),
        week_ns=float(WEEK_NS),
    )
    return pd.DataFrame(
        {"name": pd.Series(list(params), dtype=STR), "value": list(params.values())}
    )


def _content_column(frame: pd.DataFrame, name: str, tax: Taxonomy) -> pd.Series:
    dtype = column_dtype(TABLES["content"].column(name), tax)
    col = frame[name]
    if dtype is object:
        return col.map(list)
    return col.astype(cast(Any, dtype))


def write_simulation(sim: Simulation, out_dir: Path | str) -> Path:
    """Write the six tables (``features.load.write_data_dir``) and ``OUT_DIR/truth/*.parquet``;
    returns ``out_dir``."""
    out = write_data_dir(sim.data, out_dir)
    truth_dir = out / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in sim.truth.tables().items():
        frame.to_parquet(truth_dir / f"{name}.parquet", index=False)
    return out
