"""Account topic engagement: the feature pipeline has no per-topic counts, so the
next-content model adds them (training and serving pass the same columns)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.schema import JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import NS_PER_DAY, column_ns
from models.next_content.columns import topic_columns


def topic_engagement(data: JourneyData, keys: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """Per key row (``account_id``, ``as_of``): the account's touchpoints with content of each
    topic in the 365 days before as-of and ever before as-of (``ts < as_of``), int32 columns
    named by :func:`topic_columns`, aligned with ``keys`` (same index).

    Assumes canonical tables; touchpoints whose content is not in the catalog are ignored.
    """
    topics = taxonomy.topic_names
    content = data.content
    topic_of = pd.Series(
        pd.Categorical(content["topic"].astype(str), categories=topics).codes,
        index=pd.Index(content["content_id"].astype(str)),
    )
    tp = data.touchpoints
    has = tp["content_id"].notna().to_numpy()
    tp_topic = topic_of.reindex(tp["content_id"][has].astype(str)).to_numpy()
    tp_topic = np.where(np.isnan(tp_topic), -1, tp_topic).astype(np.int64)
    acc_index = pd.Index(pd.unique(keys["account_id"].astype(str)))
    tp_acc = acc_index.get_indexer(pd.Index(tp["account_id"][has].astype(str)))
    tp_ns = column_ns(tp["ts"][has])
    ok = (tp_topic >= 0) & (tp_acc >= 0)
    tp_topic, tp_acc, tp_ns = tp_topic[ok], tp_acc[ok], tp_ns[ok]

    n_t = len(topics)
    key_acc = acc_index.get_indexer(pd.Index(keys["account_id"].astype(str)))
    key_ns = column_ns(keys["as_of"])
    out = np.zeros((len(keys), 2 * n_t), dtype=np.int32)
    for t_ns in np.unique(key_ns):  # a handful of as-of dates
        rows = np.nonzero(key_ns == t_ns)[0]
        before = tp_ns < t_ns
        recent = before & (tp_ns >= t_ns - 365 * NS_PER_DAY)
        for j, mask in enumerate((recent, before)):
            counts = np.bincount(
                tp_acc[mask] * n_t + tp_topic[mask], minlength=len(acc_index) * n_t
            ).reshape(len(acc_index), n_t)
            out[rows, j * n_t : (j + 1) * n_t] = counts[key_acc[rows]]
    return pd.DataFrame(out, columns=topic_columns(taxonomy), index=keys.index)


def topic_engagement_of_items(
    topic_code: np.ndarray, recent: np.ndarray, ever: np.ndarray, taxonomy: Taxonomy
) -> dict[str, int]:
    """One account's :func:`topic_engagement` row (column -> count) from its touchpoints
    per content item (``recent``: in the 365 days before as-of, ``ever``: before as-of),
    as an incremental feature state keeps them; ``topic_code`` is each item's topic
    (position in ``taxonomy.topic_names``; -1: none, or not in the catalog)."""
    n = len(taxonomy.topic_names)
    known = topic_code >= 0
    row = np.concatenate(
        [
            np.bincount(topic_code[known], weights=recent[known], minlength=n),
            np.bincount(topic_code[known], weights=ever[known], minlength=n),
        ]
    ).astype(np.int32)
    return dict(zip(topic_columns(taxonomy), row.tolist(), strict=True))
