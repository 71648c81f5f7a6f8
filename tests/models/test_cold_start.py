"""The cold-start answer on a hand-built catalog: popularity counts responses only, the
prior picks the phase, items rank by popularity then value then catalog order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.arbitration import prepare_catalog
from models.cold_start import content_popularity, phase_prior, rank_cold_start

PHASES = ["awareness", "consideration", "selection"]


def _catalog() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "content_id": ["C1", "C2", "C3", "C4", "C5"],
            "content_type": ["blog", "webinar", "case_study", "blog", "pricing"],
            "phases": [
                ["awareness"],
                ["consideration"],
                ["consideration"],
                ["consideration"],
                ["selection"],
            ],
            "roles": [["it"]] * 5,
            "value": [1.0, 2.0, 3.0, 2.0, 5.0],
            "title": ["a", "b", "c", "d", "e"],
            "channel": ["website", "email", "website", "website", "email"],
        }
    )


def test_content_popularity_counts_response_touchpoints_with_content() -> None:
    touchpoints = pd.DataFrame(
        {
            "event_type": ["click", "download", "email_sent", "click", "visit"],
            "content_id": ["C2", "C2", "C3", None, "C4"],
        }
    )
    assert content_popularity(touchpoints) == {"C2": 2.0}
    assert content_popularity(touchpoints.iloc[:0]) == {}


def test_prior_is_normalised_or_uniform_when_it_does_not_fit() -> None:
    np.testing.assert_allclose(phase_prior(np.array([1.0, 3.0, 0.0]), 3), [0.25, 0.75, 0.0])
    np.testing.assert_allclose(phase_prior(np.array([1.0, 1.0]), 3), [1 / 3] * 3)
    np.testing.assert_allclose(phase_prior(np.zeros(3), 3), [1 / 3] * 3)


def test_ranks_the_likely_phase_by_popularity_then_value_then_catalog_order() -> None:
    catalog = prepare_catalog(_catalog(), PHASES)
    ranked = rank_cold_start(np.array([1.0, 6.0, 3.0]), catalog, {"C4": 3.0, "C5": 9.0}, 3)
    assert ranked.phase == 1
    np.testing.assert_allclose(ranked.phase_proba, [0.1, 0.6, 0.3])
    assert [a.content_id for a in ranked.actions] == ["C4", "C3", "C2"]
    assert [a.rank for a in ranked.actions] == [1, 2, 3]
    first = ranked.actions[0]
    assert first.contact_id == "" and first.p_response == 1.0 and first.expected_value == 2.0
    assert ranked.actions[1].p_response == 0.0

    # a channel filter, k beyond the items, and no popularity at all (equal shares)
    email = rank_cold_start(np.array([1.0, 6.0, 3.0]), catalog, {}, 5, channel="email")
    assert [a.content_id for a in email.actions] == ["C2"]
    assert email.actions[0].p_response == 1.0
