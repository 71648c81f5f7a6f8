"""The training -> serving handoff through the MLflow registry, named once.

Training (``training.tracking``, ``training.registry``, ``training.phase``,
``models.churn``) writes these names; serving (``serving.model_set``) reads them. Both
import them from here, so renaming one renames it on both sides, and serving refuses a model
set whose run lacks a required param or artifact instead of guessing (see
:data:`REQUIRED_PARAMS` and :data:`REQUIRED_ARTIFACTS`) and one whose model does not predict
what its name promises on its own input example (see :data:`MODEL_CLASSES`).
"""

from __future__ import annotations

from collections.abc import Mapping

# Registered model names (also the names of their MLflow experiments).
PHASE = "nba-phase"
CHURN = "nba-churn"
NEXT_CONTENT = "nba-next-content"
# The order serving keys its cache by (phase, churn, next content).
REGISTERED_MODELS: tuple[str, ...] = (PHASE, CHURN, NEXT_CONTENT)

# The outcome whose probability the answers' ``risk`` field carries.
RISK_OUTCOME = "churn"

# The alias serving loads; training points it at a model's first version and promotion moves it.
CHAMPION = "champion"
# The alias of a next-content version under trial (``nba challenge``): serving gives its own
# pick a share of the decisions (``NBA_CHALLENGER_SHARE``), logged with exact propensities,
# so ``nba promote`` judges it on decisions it served; the judgement ends the trial.
CHALLENGER = "challenger"

# Run params of the churn run: the Platt calibration serving applies to the raw churn score.
CALIBRATION_A = "calibration_a"
CALIBRATION_B = "calibration_b"

# Artifact of the phase run: the CRM-label confusion matrix of its test split. Its rows name
# the phases the model predicts, in class-code order.
PHASE_CONFUSION_ARTIFACT = "confusion_matrix_crm.csv"

# Key of a logged model's MLmodel metadata: column -> levels (code order) of each
# categorical input, which the model takes as the level's code (``models.fitting``); what a
# user outside this project encodes text values with.
CATEGORIES_METADATA = "categories"

# Artifact of every run: the declared custom attributes and their categorical levels as
# fixed at training (``features.attributes.FittedAttributes.to_dict``, JSON). Serving reads
# the phase run's and computes the attribute features with exactly these levels. A run
# without it (logged before feature pipeline 1.1.0) declared no attributes.
ATTRIBUTES_ARTIFACT = "attributes.json"

# Run params of a next-content run trained with a "no action" control
# (``features.schema.NO_ACTION_CONTENT_ID`` in its catalog): the control's content id, and
# per catalog item (JSON object) the value a positive reward of it is worth. Serving ranks
# such a model's actions by uplift: P(positive | item) x value(item) minus the same for the
# control. A run without CONTROL_PARAM ranks by P(response) as before.
CONTROL_PARAM = "control_content_id"
ARM_VALUES_PARAM = "arm_values"

# Binary outcome models (``models.outcomes``): registered as ``nba-<outcome name>`` (the
# default outcome, churn, is CHURN), each version tagged OUTCOME_KIND_TAG=OUTCOME_KIND and
# OUTCOME_NAME_TAG=<name>, which is how serving finds them; the run logs the outcome's
# definition as OUTCOME_ARTIFACT (JSON).
OUTCOME_ARTIFACT = "outcome.json"
OUTCOME_KIND_TAG = "nba.kind"
OUTCOME_KIND = "outcome"
OUTCOME_NAME_TAG = "nba.outcome"
# Run param of a binary outcome run: its horizon in days (the answers and pages say
# "within 90 days"; a run without it names no horizon).
HORIZON_DAYS_PARAM = "horizon_days"

# What serving reads from each model's run; a run missing one of these is not servable.
REQUIRED_PARAMS: Mapping[str, tuple[str, ...]] = {
    PHASE: (),
    CHURN: (CALIBRATION_A, CALIBRATION_B),
    NEXT_CONTENT: (),
}
REQUIRED_ARTIFACTS: Mapping[str, tuple[str, ...]] = {
    PHASE: (PHASE_CONFUSION_ARTIFACT,),
    CHURN: (),
    NEXT_CONTENT: (),
}

# What each registered model must predict before serving swaps a set in: serving predicts on
# the input example logged with the model (training always passes ``input_example`` to
# ``log_model``) and checks the classes. A number is a fixed count (the binary models answer
# P(positive): two classes); None means one class per phase the phase run recorded in
# PHASE_CONFUSION_ARTIFACT (its rows: the taxonomy's phases at training, in class order).
MODEL_CLASSES: Mapping[str, int | None] = {
    PHASE: None,
    CHURN: 2,
    NEXT_CONTENT: 2,
}
