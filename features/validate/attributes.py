"""Checks of declared custom attribute columns (``features.attributes``): present, and of
their kind (numbers numeric, categories as text)."""

from __future__ import annotations

import pandas as pd

from features.attributes import AttributeKind
from features.problems import Problem
from features.schema import Column
from features.validate.columns import CheckContext, convert_column


def check_attributes(
    table: str, frame: pd.DataFrame, declared: dict[str, AttributeKind], ctx: CheckContext
) -> dict[str, pd.Series]:
    """The declared attribute columns of ``table``, converted (numbers to float64 with NaN
    for missing, categories to ``str``); an absent column or a non-numeric value of a
    ``number`` attribute is a problem in ``ctx``."""
    out: dict[str, pd.Series] = {}
    for name, kind in declared.items():
        if name not in frame.columns:
            ctx.problems.append(
                Problem(
                    table,
                    name,
                    "missing declared attribute column",
                    f"a column {name!r} (declared in attributes.{table} as {kind})",
                )
            )
            continue
        column = Column(
            name, "float" if kind == "number" else "text", f"{kind} attribute", nullable=True
        )
        series = convert_column(table, column, frame[name], ctx)
        if series is not None:
            out[name] = series
    return out
