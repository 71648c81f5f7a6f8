"""The next-action training set of data with a "no action" control: one row per logged
decision, the reward that followed it, and a split that honest evaluation allows.

**The control** is declared by the data alone: the catalog holds an item with the content
id ``features.schema.NO_ACTION_CONTENT_ID`` (``no_action``), and each logged decision to do
nothing is an exposure of it, with the propensity the logging policy gave doing nothing
(Hillstrom: the No E-Mail third, 1/3). Every exposure is then a decision among the catalog's
items and "no action"; the model learns the reward of each (no action is one more arm) and
ranks actions by **uplift**, their predicted reward minus that of doing nothing.

**The reward** (:class:`Reward`) is read from the touchpoints after the decision, whatever
content they name (the control's responses name none): a ``response`` is any touchpoint of
the account of the reward's event types within ``window_days`` (default: the response
types); a ``value`` is the sum of their ``value`` (default event type: purchase).

**Rows** are anchored on the decisions: the account's features as of the decision's day
(UTC midnight; events earlier that day are left out), the account's topic engagement and the
arm's candidate features (``training.next_content``).

**Split.** When the decisions fall on at least ``MIN_TIME_SPLIT_DATES`` days, by day (the
latest half of the days for test, one in six before them for validation, the reward window
purged between them). Otherwise (all decisions at one moment, as in a campaign) accounts
are split at random with a seeded generator: half for test (the held-out half the policy
values are reported on), 15 % for validation, 35 % for training; an account is in one
split only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from features.attributes import NO_FITTED_ATTRIBUTES, FittedAttributes
from features.pipeline import build_features
from features.schema import NO_ACTION_CONTENT_ID, JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import NS_PER_DAY, column_ns
from models import next_content as nc
from training.datasets import KEY_COLUMNS, TrainingSet, TrainingSetError
from training.next_content import (
    account_inputs,
    candidate_matrix,
    decision_frame,
    exposures_with_features,
)
from training.reward import Reward
from training.splits import AsOfSplit, TimeSplit, split_by_as_of

SplitRule = Literal["time", "random"]
REWARD_COLUMN = "reward"
MIN_TIME_SPLIT_DATES = 4
TEST_SHARE = 0.5
VALID_SHARE = 0.15
SPLIT_SEED = 7


@dataclass
class NextActionSet(TrainingSet):
    """A next-action set with a control: ``frame`` rows are decisions (``REWARD_COLUMN``
    holds the reward, ``label_column`` whether it was positive), ``catalog`` the actions
    (the control among them), ``split_rule`` how ``split`` was made."""

    reward: Reward = field(default_factory=Reward)
    catalog: pd.DataFrame = field(default_factory=pd.DataFrame)
    split_rule: SplitRule = "random"
    taxonomy: Taxonomy | None = None

    @property
    def control(self) -> int:
        """The catalog position of the control."""
        return int(
            np.flatnonzero(self.catalog["content_id"].astype(str) == NO_ACTION_CONTENT_ID)[0]
        )


def has_control(data: JourneyData) -> bool:
    """Whether the data log decisions to do nothing (exposures of ``no_action``)."""
    ex = data.exposures
    if ex is None or ex.empty or "content_id" not in ex:
        return False
    return bool((ex["content_id"].astype(str) == NO_ACTION_CONTENT_ID).any())


def label_rewards(
    decisions: pd.DataFrame, touchpoints: pd.DataFrame, reward: Reward, taxonomy: Taxonomy
) -> np.ndarray:
    """The reward of each decision (``account_id``, ``ts``): 0/1 for a response, the summed
    ``value`` (missing counts 0) for a value, of the account's touchpoints of the reward's
    types with ``ts`` in ``[decision ts, decision ts + window_days]``. Aligned with
    ``decisions``."""
    types = reward.types(taxonomy)
    tp = touchpoints.loc[touchpoints["event_type"].astype(object).isin(types).to_numpy()]
    left = pd.DataFrame(
        {
            "account_id": decisions["account_id"].astype(str).to_numpy(),
            "ts": column_ns(decisions["ts"]),
            "row": np.arange(len(decisions)),
        }
    )
    right = pd.DataFrame(
        {
            "account_id": tp["account_id"].astype(str).to_numpy(),
            "event_ts": column_ns(tp["ts"]),
            "value": tp["value"].to_numpy(dtype=np.float64, na_value=np.nan)
            if "value" in tp
            else np.zeros(len(tp)),
        }
    )
    pairs = left.merge(right, on="account_id", how="inner")
    inside = (pairs["event_ts"] >= pairs["ts"]) & (
        pairs["event_ts"] <= pairs["ts"] + reward.window_days * NS_PER_DAY
    )
    pairs = pairs.loc[inside]
    out = np.zeros(len(decisions), dtype=np.float64)
    if reward.kind == "response":
        out[pairs["row"].unique()] = 1.0
    else:
        sums = pairs.groupby("row")["value"].sum(min_count=1).fillna(0.0)
        out[sums.index.to_numpy()] = sums.to_numpy()
    return out


def build_next_action_set(
    data: JourneyData,
    taxonomy: Taxonomy,
    *,
    reward: Reward,
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES,
    seed: int = SPLIT_SEED,
) -> NextActionSet:
    """The next-action set of data with a control (see the module docstring): every pipeline
    feature (custom ``attributes`` included) as of each decision's day, the account's topic
    engagement, the arm's candidate features, the decision columns of
    ``training.next_content``, the reward and whether it was positive; split by time or at
    random by account."""
    if not has_control(data):
        raise TrainingSetError(
            f"table 'exposures' has no decision of {NO_ACTION_CONTENT_ID!r}; expected the "
            "control's logged decisions to rank by uplift"
        )
    ex_all = data.exposures.reset_index(drop=True)
    days = pd.DatetimeIndex(pd.unique(ex_all["ts"].dt.floor("D"))).sort_values()
    features = build_features(
        data, [d.as_unit("ns") for d in days], taxonomy, attributes=attributes
    )
    ex, ex_as_of, row = exposures_with_features(ex_all, features, 1)
    # Every account feature, not next-content's fixed list: who gains from an action over
    # doing nothing may show in any of them (Hillstrom: what the customer bought last year).
    fixed = account_inputs(data, taxonomy, features, ex_as_of, row)
    wider = [c for c in features.columns if c not in fixed.columns and c not in KEY_COLUMNS]
    account = pd.concat([fixed, features[wider].iloc[row].reset_index(drop=True)], axis=1)
    x = candidate_matrix(data, taxonomy, account, ex)
    decision = decision_frame(data, taxonomy, ex, ex_as_of)
    value = label_rewards(ex, data.touchpoints, reward, taxonomy)
    frame = pd.concat(
        [
            decision,
            x,
            pd.DataFrame({REWARD_COLUMN: value, nc.LABEL_COLUMN: (value > 0).astype(np.int8)}),
        ],
        axis=1,
    )
    rule: SplitRule = "time" if len(days) >= MIN_TIME_SPLIT_DATES else "random"
    split = (
        _time_split(frame, len(days), reward.window_days)
        if rule == "time"
        else _random_split(frame, reward.window_days, seed)
    )
    used = [c for c in nc.account_feature_columns(taxonomy) if c in account.columns]
    return NextActionSet(
        name="next-content",
        frame=frame,
        feature_columns=[*used, *wider, *nc.CANDIDATE_COLUMNS],
        label_column=nc.LABEL_COLUMN,
        horizon_days=reward.window_days,
        split=split,
        reward=reward,
        catalog=data.content.reset_index(drop=True),
        split_rule=rule,
        taxonomy=taxonomy,
    )


def _time_split(frame: pd.DataFrame, n_days: int, horizon_days: int) -> TimeSplit:
    """By decision day: the latest half for test, a sixth before them for validation."""
    return split_by_as_of(
        frame,
        valid_dates=max(1, n_days // 6),
        test_dates=max(1, n_days // 2),
        horizon_days=horizon_days,
    )


def _random_split(frame: pd.DataFrame, horizon_days: int, seed: int) -> TimeSplit:
    """Accounts drawn at random (``seed``): ``TEST_SHARE`` test, ``VALID_SHARE`` validation,
    the rest training. Every split holds the same decision days."""
    accounts = np.sort(frame["account_id"].astype(str).unique())
    draw = np.random.default_rng(seed).random(len(accounts))
    part = np.where(draw < TEST_SHARE, 2, np.where(draw < TEST_SHARE + VALID_SHARE, 1, 0))
    of_row = pd.Series(part, index=accounts).reindex(frame["account_id"].astype(str)).to_numpy()
    dates = tuple(pd.DatetimeIndex(frame["as_of"].unique()).sort_values())
    return TimeSplit(
        train=frame.loc[of_row == 0],
        valid=frame.loc[of_row == 1],
        test=frame.loc[of_row == 2],
        dates=AsOfSplit(train=dates, valid=dates, test=dates, purged=(), horizon_days=horizon_days),
    )
