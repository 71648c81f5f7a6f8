"""The insights report's plots. Each function is pure: it takes a table of
``features.insights`` and returns a new figure on the Agg canvas (no pyplot state)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

STATUS_COLOURS = {
    "empty": "#d62728",
    "unshown": "#ff9896",
    "weak": "#ffbb78",
    "thin": "#dddddd",
    "ok": "#98df8a",
    "unassigned": "#ffffff",
}


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def plot_trend(trend: pd.DataFrame) -> Figure:
    """Touchpoints and responses per day in each bucket (a bucket cut by the period's edge
    is shorter), and click-through with its interval."""
    figure = _figure(8, 4)
    left, right = figure.subplots(1, 2)
    labels = [pd.Timestamp(t).strftime("%Y-%m-%d") for t in trend["from"]]
    x = np.arange(len(trend))
    days = trend["days"].to_numpy(float)
    left.plot(x, trend["touchpoints"] / days, marker="o", label="touchpoints")
    left.plot(x, trend["responses"] / days, marker="o", label="responses")
    left.set_title("Engagement per day")
    left.legend()
    rate = trend["click_through"].astype(float)
    right.errorbar(
        x,
        rate,
        yerr=[
            rate - trend["click_through_low"].astype(float),
            trend["click_through_high"].astype(float) - rate,
        ],
        marker="o",
        capsize=3,
    )
    right.set_title("Click-through (95 % interval)")
    for ax in (left, right):
        ax.set_xticks(x, labels, rotation=45, ha="right")
    return figure


def plot_by(table: pd.DataFrame, key: str, title: str, *, top: int = 15) -> Figure:
    """Click-through with its 95 % interval per value of ``key`` (the ``top`` most exposed)."""
    shown = (
        table.loc[table["exposures"] > 0].head(top)
        if key == "content_id"
        else table.loc[table["exposures"] > 0]
    )
    figure = _figure(7, 0.35 * max(len(shown), 3) + 1.2)
    ax = figure.subplots()
    y = np.arange(len(shown))
    rate = shown["click_through"].astype(float).to_numpy()
    ax.errorbar(
        rate,
        y,
        xerr=[
            rate - shown["click_through_low"].to_numpy(float),
            shown["click_through_high"].to_numpy(float) - rate,
        ],
        fmt="o",
        capsize=3,
    )
    ax.set_yticks(y, shown[key].astype(str))
    ax.invert_yaxis()
    ax.set_xlabel("click-through (responses / exposures), 95 % interval")
    ax.set_title(title)
    return figure


def plot_gaps(gaps: pd.DataFrame) -> Figure:
    """The phase x role matrix coloured by status, each cell with items available and its
    response rate."""
    phases = list(dict.fromkeys(gaps["phase"]))
    roles = list(dict.fromkeys(gaps["role"]))
    statuses = list(STATUS_COLOURS)
    grid = np.full((len(phases), len(roles)), np.nan)
    figure = _figure(1.3 * len(roles) + 2, 0.55 * len(phases) + 1.5)
    ax = figure.subplots()
    cells = zip(
        gaps["phase"],
        gaps["role"],
        gaps["status"].astype(str),
        gaps["items_available"].astype(int),
        gaps["response_rate"].astype(float),
        strict=True,
    )
    for phase, role, status, items, response_rate in cells:
        i, j = phases.index(phase), roles.index(role)
        grid[i, j] = statuses.index(status)
        rate = "" if np.isnan(response_rate) else f"{100 * response_rate:.1f}%"
        ax.text(j, i, f"{items} items\n{rate}", ha="center", va="center", fontsize=7)
    ax.imshow(
        grid,
        cmap=ListedColormap(list(STATUS_COLOURS.values())),
        vmin=0,
        vmax=len(statuses) - 1,
        aspect="auto",
    )
    ax.set_xticks(range(len(roles)), roles, rotation=30, ha="right")
    ax.set_yticks(range(len(phases)), phases)
    ax.set_title(
        "Content gaps: "
        + ", ".join(
            f"{s} = {c}"
            for s, c in zip(
                statuses, ("red", "pink", "orange", "grey", "green", "white"), strict=True
            )
        )
    )
    return figure


def plot_journey(journey: pd.DataFrame) -> Figure:
    """Per phase: shares of entries that moved on, fell back or churned, or stayed."""
    figure = _figure(7, 4)
    ax = figure.subplots()
    entries = journey["entries"].to_numpy(float)
    shares = {
        name: np.divide(
            journey[name].to_numpy(float), entries, out=np.zeros_like(entries), where=entries > 0
        )
        for name in ("moved_on", "fell_back", "stayed")
    }
    left = np.zeros(len(journey))
    y = np.arange(len(journey))
    for name, share in shares.items():
        ax.barh(y, share, left=left, label=name.replace("_", " "))
        left += share
    ax.set_yticks(y, [f"{p} ({int(n)})" for p, n in zip(journey["phase"], entries, strict=True)])
    ax.invert_yaxis()
    ax.set_xlabel("share of entries in the period (entries in brackets)")
    ax.legend(loc="lower right")
    ax.set_title("Journey map: where accounts go after entering a phase")
    return figure
