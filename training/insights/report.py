"""The insights report on disk: ``index.html`` (the KPIs with trends, the tables and the
plots), ``insights.json`` (everything), one CSV per table and the plots as PNG."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from features.insights import Insights
from features.insights.gaps import MIN_EXPOSURES, WEAK_SHARE
from training.insights.plots import plot_by, plot_gaps, plot_journey, plot_trend

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem;color:#1d2329;max-width:80rem}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
th,td{border:1px solid #ccd3da;padding:.2rem .5rem;text-align:right}
th:first-child,td:first-child{text-align:left}
td.empty{background:#f8d0d0}td.weak{background:#ffe3c4}td.unshown{background:#fde8e8}
img{max-width:100%;border:1px solid #eee}.muted{color:#5a6570}
"""


def write_report(insights: Insights, out: Path) -> dict[str, Path]:
    """Writes the report into ``out`` (created) and returns what was written by name."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, frame in insights.tables().items():
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False)
        written[name] = path
    json_path = out / "insights.json"
    json_path.write_text(json.dumps(insights.to_dict(), indent=1), encoding="utf-8")
    written["json"] = json_path
    figures = {
        "trend": plot_trend(insights.trend),
        "by_channel": plot_by(
            insights.dimensions["channel"], "channel", "Click-through per channel"
        ),
        "by_content": plot_by(
            insights.dimensions["content_id"], "content_id", "Click-through per item (most shown)"
        ),
        "content_gaps": plot_gaps(insights.gaps),
        "journey": plot_journey(insights.journey),
    }
    for name, figure in figures.items():
        written[f"{name}.png"] = _save(figure, out / f"{name}.png")
    page = out / "index.html"
    page.write_text(_page(insights), encoding="utf-8")
    written["html"] = page
    return written


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=100)
    return path


def _page(insights: Insights) -> str:
    period = insights.period
    previous = period.previous
    title = f"Journey insights {period.start:%Y-%m-%d} to {period.end:%Y-%m-%d}"
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>",
        f"<p class='muted'>Period [{period.start:%Y-%m-%d}, {period.end:%Y-%m-%d}) against "
        f"[{previous.start:%Y-%m-%d}, {previous.end:%Y-%m-%d}); trend per {period.every}. "
        "Rates with Wilson 95 % intervals. Phase at an event: the CRM stage recorded last "
        "before it, carried forward ('unrecorded' before the first record).</p>",
        *(f"<p class='muted'>Note: {html.escape(n)}</p>" for n in insights.notes),
        "<h2>KPIs</h2>",
        _table(_kpis(insights)),
        "<h2>Trend</h2><img src='trend.png' alt='Engagement and click-through per bucket'>",
        _table(insights.trend, columns=_TREND_COLUMNS),
        "<h2>Per phase</h2>",
        _table(insights.dimensions["phase"]),
        "<h2>Per channel</h2><img src='by_channel.png' alt='Click-through per channel'>",
        _table(insights.dimensions["channel"]),
        "<h2>Per role</h2>",
        _table(insights.dimensions["role"]),
        "<h2>Per content item (30 most shown)</h2>",
        "<img src='by_content.png' alt='Click-through per item'>",
        _table(insights.dimensions["content_id"].head(30)),
        "<h2>Content gaps (phase x buying-center role)</h2>",
        f"<p class='muted'>empty: no item fits; unshown: items fit, none shown; thin: fewer "
        f"than {MIN_EXPOSURES} exposures; weak: response rate's interval below {WEAK_SHARE:g} x "
        "the overall rate, or uplift over no_action at or below 0; uplift blank: unknown "
        "(no control exposures in the cell).</p>",
        "<img src='content_gaps.png' alt='Content gap matrix'>",
        _table(insights.gaps, status="status"),
        "<h2>Journey map</h2><img src='journey.png' alt='Journey map'>",
        _table(insights.journey),
        "<h3>Phase changes</h3>",
        _table(insights.transitions),
        "</body></html>",
    ]
    return "\n".join(parts)


_TREND_COLUMNS = (
    "from",
    "to",
    "days",
    "touchpoints",
    "responses",
    "exposures",
    "click_through",
    "dwell_minutes",
    "purchases",
    "won_revenue",
    "leads",
    "churns",
    "renewals",
)


def _kpis(insights: Insights) -> pd.DataFrame:
    frame = insights.kpi_frame()
    return frame.rename(columns={"low": "95% low", "high": "95% high"})


def _table(
    frame: pd.DataFrame, *, columns: tuple[str, ...] | None = None, status: str | None = None
) -> str:
    shown = frame[[c for c in columns if c in frame.columns]] if columns else frame
    head = "".join(f"<th scope='col'>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = []
    for record in shown.to_dict("records"):
        cls = f" class='{html.escape(str(record[status]))}'" if status else ""
        cells = "".join(f"<td{cls}>{html.escape(_fmt(v))}</td>" for v in record.values())
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
