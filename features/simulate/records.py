"""What the weekly steps record, as column chunks collected week by week: touchpoints,
phase segments with their CRM records, exposures and customers' churn hazards."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NOT_RECORDED = np.iinfo(np.int64).max  # record time of a phase change the CRM never records
_EXPOSURE_COLUMNS = ("acc", "contact", "item", "ts", "channel", "prop", "phase", "p", "resp")


class Events:
    """Touchpoints collected week by week as column chunks."""

    def __init__(self) -> None:
        self.chunks: dict[str, list[np.ndarray]] = {
            k: [] for k in ("acc", "contact", "ts", "channel", "etype", "content", "value")
        }

    def add(
        self,
        acc: np.ndarray,
        contact: np.ndarray,
        ts: np.ndarray,
        channel: np.ndarray | int,
        etype: np.ndarray | int,
        content: np.ndarray | int = -1,
        value: np.ndarray | float = np.nan,
    ) -> None:
        """Append touchpoints of accounts ``acc``; scalars apply to all of them."""
        n = len(acc)
        if n == 0:
            return
        self.chunks["acc"].append(acc.astype(np.int32))
        self.chunks["contact"].append(np.asarray(contact, dtype=np.int32))
        self.chunks["ts"].append(ts.astype(np.int64))
        self.chunks["channel"].append(np.broadcast_to(np.int8(channel), (n,)).astype(np.int8))
        self.chunks["etype"].append(np.broadcast_to(np.int8(etype), (n,)).astype(np.int8))
        self.chunks["content"].append(np.broadcast_to(np.int16(content), (n,)).astype(np.int16))
        self.chunks["value"].append(np.broadcast_to(np.float64(value), (n,)).astype(np.float64))

    def arrays(self) -> dict[str, np.ndarray]:
        """Returns the touchpoints as one array per column, and frees the chunks."""
        out = {}
        for k, parts in self.chunks.items():
            out[k] = np.concatenate(parts) if parts else np.empty(0)
            parts.clear()
        return out


@dataclass
class Records:
    """Everything a run records for the output tables and the truth."""

    events: Events = field(default_factory=Events)
    # Latent phase segments (account, phase, start) and their CRM records (time as the
    # stages table shows it, NOT_RECORDED: none; phase).
    seg_acc: list[np.ndarray] = field(default_factory=list)
    seg_phase: list[np.ndarray] = field(default_factory=list)
    seg_start: list[np.ndarray] = field(default_factory=list)
    rec_ts: list[np.ndarray] = field(default_factory=list)
    rec_phase: list[np.ndarray] = field(default_factory=list)
    # Weekly churn hazard of each customer.
    hz_acc: list[np.ndarray] = field(default_factory=list)
    hz_week: list[np.ndarray] = field(default_factory=list)
    hz_val: list[np.ndarray] = field(default_factory=list)
    exposures: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {k: [] for k in _EXPOSURE_COLUMNS}
    )

    def add_segments(
        self,
        acc: np.ndarray,
        phase: np.ndarray,
        start: np.ndarray,
        rec_ts: np.ndarray,
        rec_phase: np.ndarray,
    ) -> None:
        """Append phase segments and their CRM records."""
        self.seg_acc.append(acc)
        self.seg_phase.append(phase)
        self.seg_start.append(start)
        self.rec_ts.append(rec_ts)
        self.rec_phase.append(rec_phase)

    def add_exposures(self, **columns: np.ndarray) -> None:
        """Append one batch of exposures (one array per column of the exposure records)."""
        for key in _EXPOSURE_COLUMNS:
            self.exposures[key].append(columns[key])
