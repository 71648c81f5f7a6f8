"""bench.logged_contrast: the sender's exposures and how often they fit the true phase."""

from __future__ import annotations

from bench.logged_contrast import phase_contrast
from bench.loop_world import world_params
from features.simulate import simulate

KNOWS_THE_PHASE = [
    "stage_lag_median_days=0.3",
    "stage_lag_sigma=0.1",
    "stage_error_rate=0",
    "crm_early_record_share=1",
    "stage_skip_rate=0",
]


def test_a_crm_that_knows_the_phase_leaves_the_history_without_contrast_in_it() -> None:
    as_is = phase_contrast(simulate(150, 3, months=6, params=world_params("realistic", [])))
    assert as_is["exposures"] > 500
    assert 0.3 < as_is["fit_true_phase_share"] < 0.8
    # what fits the true phase is answered far more often
    assert as_is["true_response_if_fit"] > 3 * as_is["true_response_if_not"]
    knows = phase_contrast(
        simulate(150, 3, months=6, params=world_params("realistic", KNOWS_THE_PHASE))
    )
    assert knows["fit_true_phase_share"] > 0.97
