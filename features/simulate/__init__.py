"""A seeded simulator of B2B customer journeys, with ground truth.

``simulate(n_accounts, seed)`` returns the six input tables of the data contract
(``features.schema``) in canonical dtypes plus a :class:`SimulationTruth` that only evaluation
may read. The same seed gives the same tables.

The model, stepped WEEKLY over all accounts at once (numpy arrays of length n_accounts; every
per-event attribute is drawn in bulk, never in a per-account or per-event Python loop). The
defaults are the ``realistic`` profile, calibrated to published B2B figures (docs/realism.md);
``SimulationParams.profile("legacy")`` is the world before that calibration.

- a latent phase process over the taxonomy's eight default phases (trigger = out of market,
  awareness, consideration, selection, purchase, onboarding, impact, expansion) with
  covariate-dependent weekly hazards (size, industry, an account velocity); lost deals fall
  back to trigger; entering onboarding is a purchase, yearly contracts renew, expansion deals
  close as purchases, customers churn back to trigger. Phase changes happen at week starts.
- buying groups of several contacts with roles, who leave and are replaced;
- organic touchpoints whose rate, channel, event type, content and contact role depend on the
  latent phase, with organic noise; most web and ad touchpoints have no known contact;
- exposures: decision points come at a rate set by what a sender knows (the CRM's last record,
  the week's activity with known contacts); a stochastic logging policy picks content by the
  CRM-recorded phase (softmax over eligible items mixed with uniform, every eligible item
  >= 0.01; no record: items fitting an early phase) and records the chosen item's propensity
  exactly;
- responses with P = sigmoid(base + channel + content type + phase fit vs the TRUE phase +
  role fit x how active the role is in that phase + topic interest x the phase's topic weight
  - recency-weighted fatigue); responding to content that fits the true phase raises the
  hazard of advancing to the next phase (the lever a next-best-action policy pulls);
- a customer churn hazard driven by onboarding (trainings), support tickets, usage trend,
  engagement decline, champion departure and size, concentrated in the last week of a
  contract year (annual contracts);
- a CRM (``stages``) that records phase changes late (lognormal lag, median ~14 days), about
  10 % of the time as a neighbouring phase, early phases mostly not at all and later ones
  now and then skipped.

The ``truth`` functions :func:`true_phases` and :func:`true_response_probability` give the
best achievable predictions (:func:`sent_response_probability`: the latter averaged over
the channels the sender sends an item through, the true value of picking it); for churn
that is the truth's ``churn_oracle`` (opt-in: ``simulate(..., oracle_as_of=[...])``,
``oracle``), while :func:`true_churn_probability`
holds the as-of week's hazard and is only a reference.

The package, one module per concern:

- ``params``: the model's knobs (:class:`SimulationParams`, its profiles) and fixed tables;
- ``realism``: the quantities published B2B figures exist for, measured on a run;
- ``world``, ``lookups``, ``response``: what is fixed during a run (accounts, buying centers,
  lookup tables, the catalog's fit tables and the response model);
- ``state``, ``records``: what the weekly steps evolve and record;
- ``customers``, ``touchpoints``, ``exposures``, ``phases``: the weekly steps; ``run``:
  :func:`simulate`, which threads them;
- ``tables``: the output tables and :func:`write_simulation`;
- ``truth``: :class:`SimulationTruth`, :func:`load_truth` and the ground-truth functions;
  ``oracle``: the churn oracle, by Monte Carlo over the weekly steps from a run's state.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from features.simulate.params import SimulationError, SimulationParams
from features.simulate.truth import (
    SimulationTruth,
    load_truth,
    sent_response_probability,
    true_churn_probability,
    true_phases,
    true_response_probability,
)

if TYPE_CHECKING:
    from features.simulate.run import simulate
    from features.simulate.tables import Simulation, write_simulation

# The simulator itself loads on first use, so that importing the truth (as the training
# layer does) does not import the weekly steps and the table writer.
_LAZY = {
    "simulate": "features.simulate.run",
    "Simulation": "features.simulate.tables",
    "write_simulation": "features.simulate.tables",
}


def __getattr__(name: str) -> Any:
    """Returns the lazily imported ``simulate``, ``Simulation`` or ``write_simulation``."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "Simulation",
    "SimulationError",
    "SimulationParams",
    "SimulationTruth",
    "load_truth",
    "sent_response_probability",
    "simulate",
    "true_churn_probability",
    "true_phases",
    "true_response_probability",
    "write_simulation",
]
