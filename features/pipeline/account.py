"""The online entry: one account's feature row "now", from only that account's rows."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from features.attributes import NO_FITTED_ATTRIBUTES, FittedAttributes
from features.pipeline.compute import compute_features
from features.pipeline.specs import FeatureError
from features.schema import JourneyData
from features.taxonomy import Taxonomy


def build_account_features(
    data: JourneyData,
    account_id: str,
    as_of: pd.Timestamp,
    taxonomy: Taxonomy,
    *,
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES,
) -> pd.Series:
    """One account's feature row as of ``as_of`` (serving computes "now" with this).

    ``data`` may hold only this account's rows (the online store's view) or everything; the
    result equals the batch row for the same account and time.
    """
    one = select_accounts(data, [account_id])
    if one.accounts.empty:
        raise FeatureError(f"account {account_id!r} is not in the accounts table")
    frame = compute_features(one, [as_of], taxonomy, attributes=attributes)
    if frame.empty:
        raise FeatureError(f"account {account_id!r} was created after {as_of}")
    return frame.iloc[0]


def select_accounts(data: JourneyData, account_ids: Sequence[str]) -> JourneyData:
    """The rows of ``data`` that belong to the given accounts (content is kept whole)."""
    ids = pd.Index(account_ids)

    def pick(frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty or "account_id" not in frame:
            return frame
        return frame[frame["account_id"].isin(ids)].reset_index(drop=True)

    return JourneyData(
        accounts=pick(data.accounts),
        contacts=pick(data.contacts),
        touchpoints=pick(data.touchpoints),
        content=data.content,
        stages=pick(data.stages),
        exposures=pick(data.exposures),
    )
