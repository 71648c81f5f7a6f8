"""The content catalog as arrays (:class:`PreparedCatalog`, built once by
:func:`prepare_catalog`), and the two table helpers the other input builders share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd

from features.schema import fits_every
from models.arbitration.errors import ArbitrationError


@dataclass(frozen=True)
class PreparedCatalog:
    """The content catalog as arrays, built once by :func:`prepare_catalog` (serving keeps
    one; :func:`~models.arbitration.rank_actions` also accepts the DataFrame and prepares it
    per call)."""

    content_ids: np.ndarray  # object array of str
    position: dict[str, int]  # content_id -> row
    title: np.ndarray
    content_type: np.ndarray
    channel: np.ndarray
    value: np.ndarray
    phase_names: tuple[str, ...]
    phase_fit: np.ndarray  # items x phases bool: the item fits the phase
    phase_adjacent: np.ndarray  # items x phases bool: fits a neighbour, not the phase
    role_index: dict[str, int]
    role_fit: np.ndarray  # items x roles bool
    # items bool: the item lists no role, so it fits every role (a contact without one too)
    any_role: np.ndarray
    # retention content types -> items bool (a config rarely changes; isin costs 20 us)
    _retention: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict, repr=False)
    # (exact, adjacent, none) phase weights -> items x phases weight (the same every request)
    _phase_weight: dict[tuple[float, float, float], np.ndarray] = field(
        default_factory=dict, repr=False
    )

    def is_retention(self, content_types: tuple[str, ...]) -> np.ndarray:
        """items bool: the item's content type is one of ``content_types``."""
        mask = self._retention.get(content_types)
        if mask is None:
            mask = np.isin(self.content_type, list(content_types))
            self._retention[content_types] = mask
        return mask

    def phase_weight(self, exact: float, adjacent: float, none: float) -> np.ndarray:
        """items x phases float: ``exact`` where the item fits the phase, ``adjacent`` where
        it fits a neighbouring phase, ``none`` elsewhere (read-only, cached)."""
        key = (exact, adjacent, none)
        weight = self._phase_weight.get(key)
        if weight is None:
            weight = np.where(self.phase_fit, exact, np.where(self.phase_adjacent, adjacent, none))
            weight.flags.writeable = False
            self._phase_weight[key] = weight
        return weight


def prepare_catalog(catalog: pd.DataFrame, phase_names: Sequence[str]) -> PreparedCatalog:
    """Arrays of the ``content`` table (content_id, content_type, phases, roles, optional
    title, channel, value — value defaults to 1, the title to the content id, a missing
    type or channel is '') for ranking against ``phase_names``. Phases an item lists that
    are not in ``phase_names`` are ignored; an item listing no phase (role) fits every phase
    (role): ``features.schema.fits_every``."""
    require_columns(catalog, "content catalog", ["content_id", "content_type", "phases", "roles"])
    ids = pd.Index(catalog["content_id"].astype(str))
    if ids.has_duplicates:
        dupes = ids[ids.duplicated()].unique()[:5].tolist()
        raise ArbitrationError(f"table content column 'content_id': duplicate ids {dupes}")
    n = len(catalog)
    phases = tuple(str(p) for p in phase_names)
    fit, neighbour, roles, role_fit = _fit_matrices(catalog, phases)

    def text(column: str, default: pd.Series) -> np.ndarray:
        values = catalog[column] if column in catalog.columns else default
        given = values.astype(object).where(values.notna(), default)
        return given.astype(str).to_numpy(dtype=object)

    blank = pd.Series([""] * n, index=catalog.index)

    value = (
        catalog["value"].to_numpy(dtype=np.float64, na_value=1.0)
        if "value" in catalog
        else np.ones(n)
    )
    return PreparedCatalog(
        content_ids=ids.to_numpy(dtype=object),
        position={c: i for i, c in enumerate(ids)},
        title=text("title", catalog["content_id"]),
        content_type=text("content_type", blank),
        channel=text("channel", blank),
        value=value,
        phase_names=phases,
        phase_fit=fit,
        phase_adjacent=neighbour & ~fit,
        role_index=roles,
        role_fit=role_fit,
        any_role=fits_every(catalog["roles"]),
    )


def _fit_matrices(
    catalog: pd.DataFrame, phases: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, dict[str, int], np.ndarray]:
    """(items x phases bool: the item lists the phase, the same for a neighbouring phase,
    role -> column in order of first mention, items x roles bool: the item lists the role;
    one all-false column when no item lists a role)."""
    phase_pos = {p: j for j, p in enumerate(phases)}
    fit = np.zeros((len(catalog), len(phases)), dtype=bool)
    fit[fits_every(catalog["phases"])] = True
    roles: dict[str, int] = {}
    role_pairs: list[tuple[int, int]] = []
    # a loop over ~100 items, once per catalog
    for i, (item_phases, item_roles) in enumerate(
        zip(catalog["phases"], catalog["roles"], strict=True)
    ):
        for p in _listed(item_phases):
            if p in phase_pos:
                fit[i, phase_pos[p]] = True
        for r in _listed(item_roles):
            role_pairs.append((i, roles.setdefault(str(r), len(roles))))
    role_fit = np.zeros((len(catalog), max(len(roles), 1)), dtype=bool)
    if role_pairs:
        rows, cols = np.array(role_pairs).T
        role_fit[rows, cols] = True
    neighbour = np.zeros_like(fit)
    neighbour[:, 1:] |= fit[:, :-1]
    neighbour[:, :-1] |= fit[:, 1:]
    return fit, neighbour, roles, role_fit


def _listed(cell: object) -> list[object]:
    """The names a list cell holds (none for a missing cell)."""
    return list(cell) if isinstance(cell, list | tuple | np.ndarray) else []


def require_columns(frame: pd.DataFrame, table: str, columns: list[str]) -> None:
    """Nothing; raises :class:`ArbitrationError` naming ``table`` when ``frame`` lacks one
    of ``columns``."""
    present = set(frame.columns)
    missing = [c for c in columns if c not in present]
    if missing:
        raise ArbitrationError(
            f"table {table}: missing columns {missing}; expected {columns}, got "
            f"{list(frame.columns)}"
        )


def positions(values: pd.Series | Sequence[Any], position: dict[str, int]) -> np.ndarray:
    """Row of each value in ``position`` (-1 if absent or null). A dict lookup beats
    Index.get_indexer at the few hundred values of one account."""
    items = values.tolist() if isinstance(values, pd.Series) else values
    return np.fromiter(map(position.get, items, repeat(-1)), dtype=np.int64, count=len(items))
