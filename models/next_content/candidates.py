"""Candidate rows: one per (decision, content item), the account's features followed by
the item's attributes and how the item fits the account and contact
(:func:`candidate_features`).

Training runs this on millions of exposures and serving per account: every step is a few
array operations over all rows, never a loop over rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.frames import select_columns
from features.taxonomy import Taxonomy
from models.next_content.catalog import codes, membership, phase_fit_matrix
from models.next_content.columns import (
    CANDIDATE_COLUMNS,
    CANDIDATE_DEFINITIONS,
    KEY_COLUMNS,
    SERVING_POSITION,
    candidate_input_columns,
)
from models.next_content.engagement import (
    phase_engagement,
    role_engagement,
    topic_interest,
    type_engagement,
    value_at,
)
from models.next_content.errors import NextContentModelError


def candidate_features(
    account_features: pd.DataFrame,
    contact_role: pd.Series | np.ndarray | Sequence[str | None],
    content: pd.DataFrame,
    taxonomy: Taxonomy,
    *,
    item_index: np.ndarray | None = None,
    decision_index: np.ndarray | None = None,
    shown_at: pd.Series | None = None,
    position: np.ndarray | None = None,
    catalog: CatalogArrays | None = None,
) -> pd.DataFrame:
    """Feature rows for (decision, content item) pairs.

    ``account_features`` has one row per decision (the account's pipeline features as of the
    decision, e.g. ``build_features`` output, optionally with :func:`topic_engagement`
    columns); ``contact_role`` the role of each decision's contact (NaN if unknown);
    ``content`` the catalog rows to score (content_id, content_type, phases, roles, topic,
    optional value). With ``item_index`` None the result is every decision x every item,
    decision-major (row ``d * len(content) + i``); with ``item_index`` (content row
    positions) it is one row per entry: the item with decision ``decision_index`` (row
    positions into ``account_features``; default: entry k is decision k).

    ``shown_at`` (one time per decision; training: the exposure's ``ts``) gives the
    decision's month and weekday, else the account features' ``as_of_month`` and
    ``as_of_weekday``; ``position`` (one slot per decision, NaN unknown) the slot, else
    ``SERVING_POSITION``. ``catalog`` is :func:`catalog_arrays` of ``content`` when the
    caller keeps it (serving scores one account at a time: rebuilding it costs more than the
    rows).

    Returns the account's columns except ``account_id``/``as_of`` followed by
    ``CANDIDATE_COLUMNS`` (default index). Topic columns are NaN when the account features
    lack :func:`topic_engagement`'s columns.
    """
    acc = account_features
    if len(contact_role) != len(acc):
        raise NextContentModelError(
            f"contact_role has {len(contact_role)} values for {len(acc)} account feature rows; "
            "expected one per decision"
        )
    dec, item = _pairs(len(acc), len(content), item_index, decision_index)
    _require(acc.columns, ["crm_phase"])
    items = catalog_arrays(content, taxonomy) if catalog is None else catalog
    _check_catalog(items, len(content))
    crm = codes(acc["crm_phase"], taxonomy.phases, "crm_phase", strict=False)
    role = codes(pd.Series(contact_role), taxonomy.role_names, "contact_role", strict=False)
    gathered = Gathered.of_frame(acc, taxonomy)
    cand = _candidate_columns(
        gathered,
        items,
        taxonomy,
        dec=dec,
        item=item,
        crm=crm[dec],
        role=role[dec],
        context=_decision_context(gathered, len(acc), shown_at, position),
    )
    dtypes = categorical_dtypes(items)
    base_cols = [c for c in acc.columns if c not in KEY_COLUMNS and c not in CANDIDATE_DEFINITIONS]
    base = select_columns(acc, base_cols)
    # One row per decision already (training's exposures) needs no copy of a million rows.
    if item_index is None or decision_index is not None:
        base = base.iloc[dec]
    base = base.reset_index(drop=True)
    extra = pd.DataFrame(
        {
            c: pd.Categorical.from_codes(cand[c], dtype=dtypes[c]) if c in dtypes else cand[c]
            for c in CANDIDATE_COLUMNS
        }
    )
    return pd.concat([base, extra], axis=1)


def candidate_arrays(
    account: Mapping[str, Any],
    contact_role: Sequence[str | None],
    taxonomy: Taxonomy,
    catalog: CatalogArrays,
    *,
    item_index: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """One account's candidate columns (``CANDIDATE_COLUMNS``) as arrays, the values
    :func:`candidate_features` gives for the account's feature row (serving, one account at
    a time: no frames). ``account`` maps the account's columns (those
    ``candidate_input_columns`` lists; topic counts may be absent) to plain values (None or
    NaN missing); ``contact_role`` is one decision per contact (None unknown). Rows are every
    decision x every item, decision-major, or with ``item_index`` one item per decision.
    Numbers come as float32; the categorical columns (:data:`CATEGORICAL_CANDIDATES`) as
    codes into :func:`categorical_dtypes`' categories (-1: missing)."""
    n_dec = len(contact_role)
    dec, item = _pairs(n_dec, len(catalog.value), item_index, None)
    _require(account.keys(), ["crm_phase"])
    crm = _codes_of([account["crm_phase"]], taxonomy.phases)[np.zeros(len(dec), dtype=np.int64)]
    role = _codes_of(list(contact_role), taxonomy.role_names)[dec]
    gathered = Gathered.of_values(account, taxonomy)
    at = np.zeros(len(dec), dtype=np.int64)  # every row reads the account's one row
    return _candidate_columns(
        gathered,
        catalog,
        taxonomy,
        dec=at,
        item=item,
        crm=crm,
        role=role,
        context=_decision_context(gathered, 1, None, None),
    )


# The categorical candidate columns and the CatalogArrays field holding each one's dtype.
CATEGORICAL_CANDIDATES: dict[str, str] = {
    "contact_role": "role_dtype",
    "content_type": "type_dtype",
    "content_topic": "topic_dtype",
    "content_channel": "channel_dtype",
    "content_item": "item_dtype",
}


def categorical_dtypes(catalog: CatalogArrays) -> dict[str, pd.CategoricalDtype]:
    """Categorical candidate column -> its dtype (what its codes index)."""
    return {c: getattr(catalog, attr) for c, attr in CATEGORICAL_CANDIDATES.items()}


def _candidate_columns(
    acc: Gathered,
    items: CatalogArrays,
    taxonomy: Taxonomy,
    *,
    dec: np.ndarray,
    item: np.ndarray,
    crm: np.ndarray,
    role: np.ndarray,
    context: np.ndarray,
) -> dict[str, np.ndarray]:
    """Every candidate column, one value per row (row k: account row ``dec[k]``, catalog
    item ``item[k]``, CRM phase code ``crm[k]``, contact role code ``role[k]``; ``context``
    is :func:`_decision_context` per account row). New candidate columns are computed here
    (and defined in ``columns.CANDIDATE_DEFINITIONS``); the account columns they read are
    listed in ``columns.candidate_input_columns``. Categorical columns as codes."""
    phase_fit = items.phase_fit[item]  # rows x phases
    type_code = items.type_code[item]
    cand = {
        **_item_attributes(items, item, phase_fit=phase_fit, crm=crm, role=role),
        **type_engagement(acc, dec, type_code, taxonomy.content_type_names),
        **phase_engagement(acc, dec, phase_fit, taxonomy.phases),
        **role_engagement(acc, dec, role, taxonomy.role_names),
        **topic_interest(acc, dec, items.topic_code[item], taxonomy.topic_names),
        "position": context[dec, 0].astype(np.float32),
        "decision_month": context[dec, 1].astype(np.float32),
        "decision_weekday": context[dec, 2].astype(np.float32),
        "content_item": item,
    }
    return {c: cand[c] for c in CANDIDATE_COLUMNS}


def _check_catalog(items: CatalogArrays, n_content: int) -> None:
    if len(items.value) != n_content:
        raise NextContentModelError(
            f"the catalog arrays hold {len(items.value)} items for {n_content} content rows; "
            "expected catalog_arrays of the same content"
        )


def _codes_of(values: list[Any], names: list[str]) -> np.ndarray:
    """Codes of a few plain values in ``names`` (-1: missing or unknown)."""
    index = {n: k for k, n in enumerate(names)}
    return np.array(
        [-1 if v is None or pd.isna(v) else index.get(str(v), -1) for v in values], dtype=np.int64
    )


# --------------------------------------------------------------------------------------------
# Rows and inputs


def _pairs(
    n_dec: int, n_items: int, item_index: np.ndarray | None, decision_index: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Returns the decision and the item position of every candidate row."""
    if item_index is None:
        return np.repeat(np.arange(n_dec), n_items), np.tile(np.arange(n_items), n_dec)
    item = np.asarray(item_index, dtype=np.int64)
    dec = np.arange(n_dec) if decision_index is None else np.asarray(decision_index, dtype=np.int64)
    if len(item) != len(dec):
        raise NextContentModelError(
            f"item_index has {len(item)} entries and the decisions {len(dec)}; expected "
            "one item per decision entry"
        )
    _check_positions(item, n_items, "item_index", "content rows")
    _check_positions(dec, n_dec, "decision_index", "account rows")
    return dec, item


def _check_positions(positions: np.ndarray, n: int, name: str, rows: str) -> None:
    if len(positions) and (positions.min() < 0 or positions.max() >= n):
        raise NextContentModelError(f"{name} holds positions outside the {rows} (0..{n - 1})")


def _require(present: Iterable[str], columns: list[str]) -> None:
    have = set(present)
    missing = [c for c in columns if c not in have]
    if missing:
        raise NextContentModelError(
            f"account features lack columns {missing[:5]}; expected the feature pipeline's "
            "output (features.pipeline.build_features)"
        )


def _decision_context(
    acc: Gathered,
    n_dec: int,
    shown_at: pd.Series | None,
    position: np.ndarray | None,
) -> np.ndarray:
    """Returns (slot, month, weekday) per decision, float64."""
    for name, given in (("shown_at", shown_at), ("position", position)):
        if given is not None and len(given) != n_dec:
            raise NextContentModelError(
                f"{name} has {len(given)} values for {n_dec} decisions; expected one each"
            )
    if shown_at is not None:
        times = pd.Series(shown_at).reset_index(drop=True)
        calendar = np.column_stack([times.dt.month, times.dt.day_of_week]).astype(np.float64)
    else:
        calendar = acc.take(["as_of_month", "as_of_weekday"], np.arange(n_dec))
    slot = (
        np.full(n_dec, SERVING_POSITION)
        if position is None
        else np.asarray(position, dtype=np.float64)
    )
    return np.column_stack([slot, calendar])


class Gathered:
    """The numeric account columns candidate features read (``candidate_input_columns``).
    For a few rows (serving scores one account at a time) they are read in one selection up
    front, not one per group of columns: there the per-call cost of pandas is most of the
    time. Training's millions of rows read each group when asked (all at once would hold
    every column as float64 together)."""

    _AT_ONCE_ROWS = 10_000

    def __init__(
        self,
        columns: Iterable[str],
        values: np.ndarray | None,
        position: dict[str, int],
        frame: pd.DataFrame | None,
    ) -> None:
        self._columns = set(columns)
        self._values = values
        self._position = position
        self._frame = frame

    @classmethod
    def of_frame(cls, acc: pd.DataFrame, taxonomy: Taxonomy) -> Gathered:
        """The columns of the account feature rows ``acc``."""
        if len(acc) > cls._AT_ONCE_ROWS:
            return cls(acc.columns, None, {}, acc)
        present = [c for c in _numeric_inputs(taxonomy) if c in acc.columns]
        values = select_columns(acc, present).to_numpy(dtype=np.float64, na_value=np.nan)
        return cls(acc.columns, values, {c: k for k, c in enumerate(present)}, acc)

    @classmethod
    def of_values(cls, account: Mapping[str, Any], taxonomy: Taxonomy) -> Gathered:
        """One account's columns (name -> plain value, None missing) as one row."""
        present = [c for c in _numeric_inputs(taxonomy) if c in account]
        values = np.array(
            [[np.nan if account[c] is None else account[c] for c in present]], dtype=np.float64
        )
        return cls(account.keys(), values, {c: k for k, c in enumerate(present)}, None)

    def has(self, names: Sequence[str]) -> bool:
        """Whether the account features hold every column of ``names``."""
        return all(c in self._columns for c in names)

    def take(self, names: list[str], dec: np.ndarray) -> np.ndarray:
        """Returns the account columns ``names`` as float64, one row per candidate row."""
        _require(self._columns, names)
        if self._values is not None and all(c in self._position for c in names):
            at = np.array([self._position[c] for c in names], dtype=np.int64)
            return self._values[np.ix_(dec, at)]
        assert self._frame is not None  # values hold every numeric input present
        return self._frame[names].to_numpy(dtype=np.float64, na_value=np.nan)[dec]


def _numeric_inputs(taxonomy: Taxonomy) -> list[str]:
    """The numeric account columns candidate features read (all but the CRM phase)."""
    return [c for c in candidate_input_columns(taxonomy) if c != "crm_phase"]


# --------------------------------------------------------------------------------------------
# The item and how it fits the decision


@dataclass(frozen=True)
class CatalogArrays:
    """The catalog rows as arrays (codes into the taxonomy's vocabularies)."""

    phase_fit: np.ndarray  # items x phases, 0/1
    role_fit: np.ndarray  # items x roles, 0/1
    type_code: np.ndarray
    topic_code: np.ndarray
    channel_code: np.ndarray  # the item's usual channel, -1 when the catalog names none
    value: np.ndarray  # float64, 1 when the catalog has no values
    # The categorical dtypes of the candidate columns (built once: validating categories on
    # every call costs more than one account's rows).
    role_dtype: pd.CategoricalDtype
    type_dtype: pd.CategoricalDtype
    topic_dtype: pd.CategoricalDtype
    channel_dtype: pd.CategoricalDtype
    item_dtype: pd.CategoricalDtype


def catalog_arrays(content: pd.DataFrame, taxonomy: Taxonomy) -> CatalogArrays:
    """The catalog rows ``content`` as the arrays candidate features read."""
    return CatalogArrays(
        phase_fit=phase_fit_matrix(content, taxonomy),
        role_fit=membership(content["roles"], taxonomy.role_names, "roles"),
        type_code=codes(content["content_type"], taxonomy.content_type_names, "content_type"),
        topic_code=codes(content["topic"], taxonomy.topic_names, "topic"),
        channel_code=(
            codes(content["channel"], taxonomy.channel_names, "channel")
            if "channel" in content
            else np.full(len(content), -1, dtype=np.int64)
        ),
        value=(
            content["value"].to_numpy(dtype=np.float64)
            if "value" in content
            else np.ones(len(content), dtype=np.float64)
        ),
        role_dtype=pd.CategoricalDtype(pd.Index(taxonomy.role_names)),
        type_dtype=pd.CategoricalDtype(pd.Index(taxonomy.content_type_names)),
        topic_dtype=pd.CategoricalDtype(pd.Index(taxonomy.topic_names)),
        channel_dtype=pd.CategoricalDtype(pd.Index(taxonomy.channel_names)),
        item_dtype=pd.CategoricalDtype(pd.Index(content["content_id"].astype("str"))),
    )


def _item_attributes(
    items: CatalogArrays,
    item: np.ndarray,
    *,
    phase_fit: np.ndarray,
    crm: np.ndarray,
    role: np.ndarray,
) -> dict[str, np.ndarray]:
    """Returns the contact's role, the item's type, topic (codes) and value, and its fit
    to the CRM phase (``crm`` codes, -1 unknown: NaN), its neighbours and the role."""
    known_phase = crm >= 0
    role_fit = items.role_fit[item]
    return {
        "contact_role": role,
        "content_type": items.type_code[item],
        "content_topic": items.topic_code[item],
        "content_channel": items.channel_code[item],
        "content_value": items.value[item].astype(np.float32),
        "fits_phase": np.where(known_phase, value_at(phase_fit, crm), np.nan).astype(np.float32),
        "fits_next_phase": np.where(known_phase, value_at(phase_fit, crm + 1), np.nan).astype(
            np.float32
        ),
        "fits_previous_phase": np.where(known_phase, value_at(phase_fit, crm - 1), np.nan).astype(
            np.float32
        ),
        "n_content_phases": phase_fit.sum(axis=1).astype(np.float32),
        "fits_role": np.where(role >= 0, value_at(role_fit, role), np.nan).astype(np.float32),
        "n_content_roles": role_fit.sum(axis=1).astype(np.float32),
    }
