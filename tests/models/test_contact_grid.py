"""An account's candidate grid prepared from its contacts' ids and roles equals the grid
prepared from its contacts' frame."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.arbitration import (
    ACCOUNT_LEVEL,
    PreparedCandidates,
    addressees,
    prepare_catalog,
    prepare_contact_grid,
    prepare_grid,
)
from tests.models.test_arbitration import PHASES, _catalog


def _equal(a: PreparedCandidates, b: PreparedCandidates) -> None:
    for name in ("p", "item", "contact", "contact_ids", "contact_roles", "role_code"):
        got, want = getattr(a, name), getattr(b, name)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert a.contact_position == b.contact_position
    assert (a.catalog_size, a.account_level) == (b.catalog_size, b.account_level)


def test_the_grid_of_ids_and_roles_is_the_grid_of_the_frame() -> None:
    catalog = prepare_catalog(_catalog(), PHASES)
    n_items = len(catalog.content_ids)
    ids, roles = ["it1", "x9", "eb1"], ["it", None, "economic_buyer"]
    p = np.random.default_rng(7).random(len(ids) * n_items)
    frame = pd.DataFrame({"contact_id": ids, "role": roles})
    _equal(prepare_contact_grid(p, ids, roles, catalog), prepare_grid(p, frame, catalog))
    # no contact: the account-level addressee, without a role
    level = addressees(frame.iloc[:0])
    p1 = p[:n_items]
    got = prepare_contact_grid(p1, [ACCOUNT_LEVEL], [None], catalog)
    _equal(got, prepare_grid(p1, level, catalog))
    assert got.account_level == 0
