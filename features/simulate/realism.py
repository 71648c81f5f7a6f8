"""How realistic a simulated world is: the quantities published B2B figures exist for,
measured on a finished run (its tables and truth), and the published ranges they are
checked against (``docs/realism.md`` cites each source).

Definitions (all over the simulated span; "run" = a buying run, the latent phase segments
from leaving trigger until a purchase (won) or a fall back to trigger (lost)):

- ``win_rate_opportunities``: won share of concluded runs that reached selection (an
  opportunity: short list, demos, pricing);
- ``win_rate_runs``: won share of all concluded runs (from awareness);
- ``new_customers_per_year``: share of the accounts that are no customers at the start that
  purchase within the first 52 weeks;
- ``ever_customer_24m``: share of all accounts that are customers at some time;
- ``annual_churn`` (and ``_smb`` < 100 employees, ``_mid``, ``_enterprise`` >= 1,000):
  churns per customer-year over the span;
- ``churn_at_renewal``: share of churns within 30 days of a contract anniversary (52-week
  years from the purchase that began the customer spell);
- ``customers_at_week_26``: share of the accounts that are customers half a year in;
- ``buying_group_mean`` / ``buying_group_6_10``: contacts per account at the start, their
  mean and the share of accounts with 6-10;
- ``response_rate`` (and ``_email``, ``_other_channels``): responses per exposure;
- ``web_ad_anonymous``: share of web and advertising touchpoints without a known contact;
- ``known_contact``: share of all touchpoints with a known contact;
- ``opportunity_without_earlier_stage``: share of runs reaching selection whose earlier
  phases of the run left no CRM record;
- ``stage_lag_median_days``: median days from a phase change to its CRM record;
- ``sales_cycle_median_days``: median days from a won run's start to the purchase;
- ``touchpoints_per_won_deal``: median touchpoints of an account during a won run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.simulate.tables import Simulation
from features.timestamps import NS_PER_DAY, column_ns

WEB_AD_CHANNELS = ("website", "search_ads", "social_ads", "blog", "review_portal",
                   "trade_portal", "web_shop", "print_media")  # fmt: skip
_WEEK_NS = 7 * NS_PER_DAY


@dataclass(frozen=True)
class Published:
    """A published range for one measured quantity and where it comes from."""

    quantity: str
    low: float
    high: float
    source: str


# The ranges a default world must fall in (docs/realism.md gives the sources in full).
PUBLISHED: dict[str, Published] = {
    p.quantity: p
    for p in (
        Published(
            "win_rate_opportunities",
            0.15,
            0.32,
            "HubSpot sales survey: ~21 % of all, ~29 % of qualified opportunities won; "
            "mid-market SaaS 15-25 %",
        ),
        Published(
            "win_rate_runs",
            0.03,
            0.20,
            "funnel: ~13 % lead-to-opportunity x ~22 % win (buying runs that start "
            "but never become opportunities are lost)",
        ),
        Published(
            "new_customers_per_year",
            0.01,
            0.05,
            "a vendor's account universe converts at low single-digit % a year",
        ),
        Published("annual_churn", 0.08, 0.20, "median B2B SaaS annual logo churn ~13 %"),
        Published("annual_churn_smb", 0.12, 0.30, "SMB SaaS 15-25 % a year"),
        Published("annual_churn_enterprise", 0.02, 0.09, "enterprise SaaS 3-7 % a year"),
        Published("churn_at_renewal", 0.8, 1.0, "annual contracts: customers leave at renewal"),
        Published("buying_group_mean", 6.0, 10.0, "Gartner: 6-10 decision makers"),
        Published("buying_group_6_10", 0.5, 1.0, "Gartner: 6-10 decision makers"),
        Published("response_rate_email", 0.015, 0.045, "B2B e-mail click-through 2-4 %"),
        Published(
            "response_rate",
            0.01,
            0.05,
            "B2B e-mail CTR 2-4 %; display and social ads well under 1 %",
        ),
        Published(
            "web_ad_anonymous",
            0.7,
            0.99,
            "most web and ad traffic is anonymous (form fill ~2-3 % of visitors)",
        ),
        Published(
            "opportunity_without_earlier_stage",
            0.5,
            1.0,
            "CRMs start at the opportunity: many accounts have no earlier stage",
        ),
        Published(
            "sales_cycle_median_days",
            60.0,
            240.0,
            "B2B SaaS sales cycle ~3-6 months (mid-market ~133 days)",
        ),
        Published(
            "touchpoints_per_won_deal",
            15.0,
            80.0,
            "B2B deals take dozens of touches (~30-50 cited)",
        ),
    )
}


def measure(sim: Simulation) -> dict[str, float]:
    """Returns every quantity of the module docstring, measured on ``sim`` (NaN where the
    world has no case, e.g. no concluded run). Assumes the default 8-phase taxonomy."""
    truth, data = sim.truth, sim.data
    start_ns = int(truth.param("start_ns"))
    seg = _segments(truth.phases)
    out: dict[str, float] = {}
    out.update(_runs(seg, data.touchpoints))
    out.update(_customers(seg, data.accounts, start_ns, int(truth.param("end_ns"))))
    out.update(_churn_timing(data.touchpoints))
    out.update(_buying_groups(data.contacts, data.accounts, start_ns))
    out.update(_responses(truth.exposures, data.exposures))
    out.update(_anonymity(data.touchpoints))
    out.update(_crm(seg))
    return out


def table(measured: dict[str, float]) -> pd.DataFrame:
    """The realism table: quantity, simulated, published range, inside, source."""
    rows = []
    for name, value in measured.items():
        pub = PUBLISHED.get(name)
        rows.append(
            {
                "quantity": name,
                "simulated": value,
                "published": f"{pub.low:g}-{pub.high:g}" if pub else "",
                "inside": (pub.low <= value <= pub.high) if pub else None,
                "source": pub.source if pub else "",
            }
        )
    return pd.DataFrame(rows)


def response_rates(sim: Simulation) -> pd.DataFrame:
    """Response rates to exposures by channel and by content type: by, name, exposures,
    response_rate."""
    x = sim.truth.exposures
    ctype = sim.data.content.set_index("content_id")["content_type"].astype(str)
    frames = []
    for by, key in (
        ("channel", x["channel"].astype(str)),
        ("content_type", x["content_id"].astype(str).map(ctype)),
    ):
        g = x["responded"].groupby(key.to_numpy())
        frames.append(
            pd.DataFrame(
                {
                    "by": by,
                    "name": g.size().index,
                    "exposures": g.size().to_numpy(),
                    "response_rate": g.mean().to_numpy(),
                }
            )  # fmt: skip
        )
    return pd.concat(frames, ignore_index=True)


def _segments(phases: pd.DataFrame) -> pd.DataFrame:
    """Phase segments with integer phase codes, ns times, run ids and each run's furthest
    phase; sorted by account and start."""
    seg = pd.DataFrame(
        {
            "acc": phases["account_id"].astype(str).to_numpy(),
            "phase": phases["phase"].cat.codes.to_numpy().astype(np.int64),
            "start": column_ns(phases["start"]),
            "rec": np.where(
                phases["recorded_at"].isna(),
                -1,
                column_ns(phases["recorded_at"].fillna(phases["start"])),
            ),
        }
    ).sort_values(["acc", "start"], kind="stable", ignore_index=True)
    same = seg["acc"].eq(seg["acc"].shift())
    buying = seg["phase"].between(1, 4)  # awareness .. purchase
    prev_buying = buying.shift(fill_value=False) & same
    seg["run_start"] = buying & ~prev_buying
    seg["run"] = np.where(buying, seg["run_start"].cumsum(), -1)
    seg["run_max"] = np.where(buying, seg.groupby("run")["phase"].transform("max"), -1)
    seg["next_phase"] = np.where(
        seg["acc"].eq(seg["acc"].shift(-1)), seg["phase"].shift(-1, fill_value=-1), -1
    )
    seg["next_start"] = np.where(
        seg["acc"].eq(seg["acc"].shift(-1)), seg["start"].shift(-1, fill_value=-1), -1
    )
    return seg


def _runs(seg: pd.DataFrame, touchpoints: pd.DataFrame) -> dict[str, float]:
    """Win rates, sales cycle and touchpoints per won deal."""
    ends = seg[(seg["run"] >= 0) & seg["next_phase"].isin([0, 5])]
    won = ends["next_phase"].eq(5).to_numpy()
    opp = ends["run_max"].ge(3).to_numpy()
    run_first = seg[seg["run_start"]].set_index("run")["start"]
    # Runs that began inside the span (not already under way at the start).
    first_seg = ~seg["acc"].eq(seg["acc"].shift())
    began = seg.loc[seg["run_start"] & ~first_seg, "run"]
    won_runs = ends[won & ends["run"].isin(began).to_numpy()]
    begin = run_first.reindex(won_runs["run"]).to_numpy()
    cycle_days = (won_runs["next_start"].to_numpy() - begin) / NS_PER_DAY
    tp = pd.DataFrame(
        {
            "acc": touchpoints["account_id"].astype(str).to_numpy(),
            "ts": column_ns(touchpoints["ts"]),
        }
    ).sort_values(["acc", "ts"], ignore_index=True)
    key = tp["acc"].to_numpy()
    lo = _search(key, tp["ts"].to_numpy(), won_runs["acc"].to_numpy(), begin)
    hi = _search(
        key, tp["ts"].to_numpy(), won_runs["acc"].to_numpy(), won_runs["next_start"].to_numpy()
    )
    return {
        "win_rate_opportunities": _mean(won[opp]),
        "win_rate_runs": _mean(won),
        "sales_cycle_median_days": _median(cycle_days),
        "touchpoints_per_won_deal": _median(hi - lo),
    }


def _search(key: np.ndarray, ts: np.ndarray, acc: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Per (acc, at): the position of acc's first touchpoint at or after ``at`` among the
    touchpoints (``key`` account, ``ts``) sorted by account, then time."""
    names, codes = np.unique(np.concatenate([key, acc]), return_inverse=True)
    k, q = codes[: len(key)].astype(np.int64), codes[len(key) :].astype(np.int64)
    # One int64 key (account, second); in nanoseconds it would overflow.
    t_s, a_s = ts // 10**9, -(-at // 10**9)
    base = min(t_s.min(initial=0), a_s.min(initial=0))
    scale = int(max(t_s.max(initial=0), a_s.max(initial=0)) - base + 1)
    return np.searchsorted(k * scale + (t_s - base), q * scale + (a_s - base), side="left")


def _customers(
    seg: pd.DataFrame, accounts: pd.DataFrame, start_ns: int, end_of_span: int
) -> dict[str, float]:
    """New customers a year, customers ever, annual churn (overall and by size)."""
    first = seg[~seg["acc"].eq(seg["acc"].shift())]
    non_cust = first.loc[~first["phase"].isin([5, 6, 7]), "acc"]
    buys = seg[(seg["next_phase"] == 5) & (seg["phase"] == 4)]
    year1 = buys[buys["next_start"] < start_ns + 52 * _WEEK_NS]
    ever = seg.loc[seg["phase"].isin([5, 6, 7]), "acc"].nunique()
    out = {
        "new_customers_per_year": _mean(non_cust.isin(year1["acc"]).to_numpy()),
        "ever_customer_24m": ever / max(len(accounts), 1),
    }
    # Annual churn: churns per customer-year over the span, by account size.
    is_cust = seg["phase"].isin([5, 6, 7]).to_numpy()
    end_ns = seg["next_start"].where(seg["next_start"] >= 0, end_of_span).to_numpy()
    years = (end_ns - np.maximum(seg["start"].to_numpy(), start_ns)).clip(0) / (52 * _WEEK_NS)
    churned = is_cust & (seg["next_phase"] == 0).to_numpy()
    emp = accounts.set_index(accounts["account_id"].astype(str))["employees"]
    size = emp.reindex(seg["acc"]).to_numpy(dtype=float, na_value=np.nan)
    for name, part in (
        ("annual_churn", np.ones(len(seg), dtype=bool)),
        ("annual_churn_smb", size < 100),
        ("annual_churn_mid", (size >= 100) & (size < 1000)),
        ("annual_churn_enterprise", size >= 1000),
    ):
        cy = years[is_cust & part].sum()
        out[name] = float(churned[part].sum() / cy) if cy > 0 else float("nan")
    t0 = start_ns + 26 * _WEEK_NS
    at_t0 = is_cust & (seg["start"].to_numpy() <= t0) & (end_ns > t0)
    out["customers_at_week_26"] = float(at_t0.sum()) / max(len(accounts), 1)
    return out


def _churn_timing(touchpoints: pd.DataFrame) -> dict[str, float]:
    """Share of churns within 30 days of a contract anniversary (52 weeks after the spell's
    first purchase; expansion deals are purchases too but no new contract), and the median
    days to the nearest anniversary."""
    et = touchpoints["event_type"].astype(str)
    life = touchpoints[et.isin(["purchase", "churn"]).to_numpy()]
    frame = pd.DataFrame(
        {
            "acc": life["account_id"].astype(str).to_numpy(),
            "ts": column_ns(life["ts"]),
            "churn": life["event_type"].astype(str).eq("churn").to_numpy(),
        }
    ).sort_values(["acc", "ts"], ignore_index=True)
    # A spell starts at an account's first purchase or the first after a churn.
    prev_churn = frame.groupby("acc")["churn"].shift(fill_value=True)
    frame["spell_ts"] = frame["ts"].where(~frame["churn"] & prev_churn)
    frame["spell_ts"] = frame.groupby("acc")["spell_ts"].ffill()
    churns = frame[frame["churn"] & frame["spell_ts"].notna()]
    days = (churns["ts"] - churns["spell_ts"]).to_numpy(dtype=float) / NS_PER_DAY
    since = np.mod(days, 364.0)
    distance = np.minimum(since, 364.0 - since)
    return {
        "churn_at_renewal": _mean(distance <= 30),
        "churn_days_from_anniversary_median": _median(distance),
    }


def _buying_groups(
    contacts: pd.DataFrame, accounts: pd.DataFrame, start_ns: int
) -> dict[str, float]:
    """Contacts per account at the start."""
    created = column_ns(contacts["created_at"])
    at_start = contacts[created <= start_ns]
    counts = (
        at_start["account_id"].astype(str).value_counts()
        .reindex(accounts["account_id"].astype(str), fill_value=0).to_numpy()
    )  # fmt: skip
    return {
        "buying_group_mean": _mean(counts),
        "buying_group_6_10": _mean((counts >= 6) & (counts <= 10)),
    }


def _responses(truth_exposures: pd.DataFrame, exposures: pd.DataFrame) -> dict[str, float]:
    """Response rates to exposures, overall and by channel."""
    resp = truth_exposures["responded"].to_numpy(dtype=bool)
    email = exposures["channel"].astype(str).eq("email").to_numpy()
    return {
        "response_rate": _mean(resp),
        "response_rate_email": _mean(resp[email]),
        "response_rate_other_channels": _mean(resp[~email]),
    }


def _anonymity(touchpoints: pd.DataFrame) -> dict[str, float]:
    """Touchpoints without a known contact."""
    known = touchpoints["contact_id"].notna().to_numpy()
    web = touchpoints["channel"].astype(str).isin(WEB_AD_CHANNELS).to_numpy()
    return {"web_ad_anonymous": _mean(~known[web]), "known_contact": _mean(known)}


def _crm(seg: pd.DataFrame) -> dict[str, float]:
    """How late the CRM starts and how long it lags."""
    buying = seg[seg["run"] >= 0]
    reached = buying[buying["phase"] == 3]
    early = buying[buying["phase"] < 3]
    early_recorded = early.loc[early["rec"] >= 0, "run"].unique()
    began = seg.loc[seg["run_start"] & seg["acc"].eq(seg["acc"].shift()), "run"]
    reached = reached[reached["run"].isin(began)]
    rec = seg[(seg["rec"] >= 0) & (seg["rec"] >= seg["start"])]
    return {
        "opportunity_without_earlier_stage": _mean(~reached["run"].isin(early_recorded).to_numpy()),
        "stage_lag_median_days": _median((rec["rec"] - rec["start"]).to_numpy() / NS_PER_DAY),
        "stages_unrecorded": _mean((seg.loc[seg["phase"] >= 3, "rec"] < 0).to_numpy()),
    }


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else float("nan")


def _median(x: np.ndarray) -> float:
    return float(np.median(x)) if len(x) else float("nan")
