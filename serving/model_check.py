"""Smoke-testing a candidate :class:`~serving.model_set.ModelSet` before it serves.

A registered version can load and still be the wrong model: the phase model's files
registered as ``nba-churn`` load fine and then fail every request. So before the holder
swaps a set in, :func:`check_model_set` predicts with each model on the input example logged
with it, the way the request path does (``ModelInput.encode``, ``Booster.predict`` on one
thread), and checks what ``models.contract.MODEL_CLASSES`` promises of its name: the
feature columns are in the example, the binary models have classes 0 and 1 and answer one
probability per row, the phase model's classes are among the phases its run recorded (and
those are phases of the service's taxonomy, in its order) and it answers one probability
per class that sum to 1 (one per row when it is binary). Only the models the set holds are
checked (any subset serves). A set failing a check raises :class:`ModelSetRejected` naming
the model, version, check and what was found; the holder keeps the previous set serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from lightgbm.basic import LightGBMError

from models.contract import MODEL_CLASSES, NEXT_CONTENT, PHASE
from serving.model_input import PREDICT_THREADS, ModelLoadError
from serving.model_set import CHALLENGER_KEY, ModelSet

# How far a phase row's probabilities may sum from 1 (LightGBM's softmax in float64).
SUM_TOLERANCE = 1e-6


class ModelSetRejected(ModelLoadError):
    """A set that loaded but whose model ``model`` v``version`` failed the smoke test
    ``check`` (``feature_columns``, ``classes``, ``predict``, ``output``); the message says
    what was expected and found."""

    def __init__(self, model: str, version: str, check: str, detail: str) -> None:
        super().__init__(
            f"{model} v{version} rejected by the smoke test on its input example "
            f"({check}): {detail}"
        )
        self.model = model
        self.version = version
        self.check = check


def check_model_set(models: ModelSet, phases: Sequence[str] | None = None) -> None:
    """Raises :class:`ModelSetRejected` for the first model of ``models`` (whichever it
    holds) that does not predict what serving expects of its registered name on its input
    example. The phases the phase run recorded must then be among ``phases`` (the service's
    taxonomy's phases), in their order."""
    for name in models.versions:
        if name != CHALLENGER_KEY:
            _check_model(models, name, phases)
    if models.challenger is not None:  # the next-content version under trial
        _check_model(models.challenger, NEXT_CONTENT, phases)


def _check_model(models: ModelSet, name: str, phases: Sequence[str] | None) -> None:
    version = str(models.versions[name])
    estimator = models.estimators[name]
    example = models.examples[name]
    spec = models.inputs[name]
    missing = [c for c in spec.columns if c not in example.columns]
    if missing:
        raise ModelSetRejected(
            name,
            version,
            "feature_columns",
            f"the model takes {len(spec.columns)} columns, {len(missing)} of them not in its "
            f"input example (e.g. {missing[:5]})",
        )
    classes = _classes(estimator)
    _check_classes(models, name, version, classes, phases)
    booster = getattr(estimator, "booster_", estimator)
    try:
        out = np.asarray(booster.predict(spec.encode(example), num_threads=PREDICT_THREADS))
    except (LightGBMError, ValueError, TypeError, KeyError) as exc:
        raise ModelSetRejected(name, version, "predict", f"{type(exc).__name__}: {exc}") from exc
    # A phase model whose run recorded two phases is binary: one probability per row.
    binary = name != PHASE or len(models.phase_classes) == 2
    _check_output(name, version, out, len(example), None if binary else len(classes))


def _classes(estimator: Any) -> list[int]:
    """The class codes the estimator predicts (a bare booster: one per output column, a
    single output being the binary 0/1)."""
    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        return [int(c) for c in np.asarray(classes).tolist()]
    booster = getattr(estimator, "booster_", estimator)
    return list(range(max(2, int(booster.num_model_per_iteration()))))


def _check_classes(
    models: ModelSet, name: str, version: str, classes: list[int], phases: Sequence[str] | None
) -> None:
    expected = MODEL_CLASSES.get(name, 2)  # an outcome model is binary
    if expected is not None:
        if classes != list(range(expected)):
            raise ModelSetRejected(
                name,
                version,
                "classes",
                f"expected classes {list(range(expected))} (a binary model), got "
                f"{len(classes)} classes {classes[:10]}",
            )
        return
    recorded = list(models.phase_classes)
    if phases is not None and recorded != [p for p in phases if p in recorded]:
        raise ModelSetRejected(
            name,
            version,
            "classes",
            f"its run recorded the phases {recorded}; expected phases of the service's "
            f"taxonomy in its order, {list(phases)}",
        )
    if len(classes) < 2 or not set(classes) <= set(range(len(recorded))):
        raise ModelSetRejected(
            name,
            version,
            "classes",
            f"expected a multiclass model over the {len(recorded)} phases its run recorded "
            f"(class codes 0..{len(recorded) - 1}), got classes {classes[:10]}",
        )


def _check_output(
    name: str, version: str, out: np.ndarray, rows: int, n_classes: int | None
) -> None:
    """Binary (``n_classes`` None): one probability per row; multiclass: one per row and
    class, summing to 1."""
    shape = (rows,) if n_classes is None else (rows, n_classes)
    if out.shape != shape:
        raise ModelSetRejected(
            name, version, "output", f"expected an output of shape {shape}, got {out.shape}"
        )
    if not (np.isfinite(out).all() and (out >= 0).all() and (out <= 1).all()):
        raise ModelSetRejected(name, version, "output", "predicted values outside [0, 1]")
    if out.ndim == 2 and not np.allclose(out.sum(axis=1), 1.0, rtol=0, atol=SUM_TOLERANCE):
        raise ModelSetRejected(
            name, version, "output", "phase probabilities of a row do not sum to 1"
        )
