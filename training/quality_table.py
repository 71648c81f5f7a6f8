"""The quality report's Markdown table: one column per model, baseline and reference, one
row per metric, each cell with its 95 % interval."""

from __future__ import annotations

CI_SUFFIXES = ("_ci_low", "_ci_high")


def _column_rank(who: str) -> tuple[int, str]:
    """Table column order: the model, its baselines, the references and oracle from the
    simulator's truth, then differences (model minus peer)."""
    if who == "model":
        return 0, who
    if who.startswith("baseline_"):
        return 1, who
    if who.startswith("model_minus_"):
        return 3, who
    return 2, who


def _cell(metrics: dict[str, float], key: str) -> str:
    """``value [low, high]`` of ``key`` (the interval when ``key_ci_low``/``_ci_high`` are
    in ``metrics``), ``[low, high]`` when only the interval is, blank when neither is."""
    value = f"{metrics[key]:.4f}" if key in metrics else ""
    low, high = (metrics.get(key + suffix) for suffix in CI_SUFFIXES)
    if low is not None and high is not None:
        value = f"{value} [{low:.4f}, {high:.4f}]".strip()
    return value


def metrics_table(metrics: dict[str, float], title: str) -> str:
    """A Markdown table ``metric | model | baseline_... | oracle ...`` from ``"<who>.<metric>"``
    keys, each cell with its 95 % interval where ``<who>.<metric>_ci_low``/``_ci_high`` are
    given (blank where a column has no value for a metric), under a ``### title`` heading."""
    whos: list[str] = []
    names: list[str] = []
    for key in metrics:
        who, _, name = key.partition(".")
        for suffix in CI_SUFFIXES:
            name = name.removesuffix(suffix)
        if who not in whos:
            whos.append(who)
        if name not in names:
            names.append(name)
    order = sorted(whos, key=_column_rank)
    lines = [
        f"### {title}",
        "",
        "| metric | " + " | ".join(order) + " |",
        "|---|" + "---:|" * len(order),
    ]
    for name in names:
        cells = [_cell(metrics, f"{w}.{name}") for w in order]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
