"""A multiclass model's contributions for one class, from that class's trees alone.

LightGBM's ``pred_contrib`` on a multiclass booster computes every class's SHAP values
(TreeSHAP over all trees) although a reason explains one class: for the phase model's
eight classes that is eight times the work an answer needs. A multiclass model's trees
are iteration-major (tree ``i`` belongs to class ``i % n_classes``) and a class's raw
score is the sum of its trees alone, so a booster holding only those trees (built once
per model from its model string) gives the same contributions for that class: the same
trees, summed in the same order.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import lightgbm as lgb
import numpy as np

from models.explain import ExplainError
from serving.model_input import PREDICT_THREADS

_TREE = re.compile(r"^Tree=\d+\n", flags=re.MULTILINE)
_END = "end of trees"


def class_model_string(model: str, class_index: int) -> str:
    """The model string of the trees of class ``class_index`` of the multiclass model
    ``model`` (``Booster.model_to_string()``) as a one-class model."""
    head, _, body = model.partition("\nTree=")
    trees_text = "Tree=" + body.split(_END, 1)[0]
    trees = [t for t in _TREE.split(trees_text) if t.strip()]
    per_iteration = re.search(r"^num_tree_per_iteration=(\d+)$", head, re.MULTILINE)
    n_classes = int(per_iteration.group(1)) if per_iteration else 1
    mine = trees[class_index::n_classes]
    lines = []
    for line in head.splitlines():
        if line.startswith(("num_class=", "num_tree_per_iteration=")):
            line = line.split("=", 1)[0] + "=1"
        elif line.startswith("objective="):
            line = "objective=regression"
        elif line.startswith("tree_sizes="):
            continue  # the trees are read one after another without it
        lines.append(line)
    out = "\n".join(lines).rstrip("\n") + "\n\n"
    for i, tree in enumerate(mine):
        out += f"Tree={i}\n{tree.rstrip()}\n\n\n"
    return out + _END + "\n"


class ClassTrees:
    """Per class of one multiclass booster, a booster of its trees (built when first
    asked for, kept until another booster is asked about)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._of: Any = None
        self._boosters: list[lgb.Booster] = []

    def contributions(self, booster: Any, x: np.ndarray, class_index: int) -> np.ndarray:
        """``pred_contrib`` of class ``class_index`` of the multiclass ``booster`` for the
        rows of ``x`` (``models.explain.contributions_for``'s numbers): shape ``(len(x),
        n_features + 1)``, the last column the bias."""
        n_classes = int(booster.num_model_per_iteration())
        if n_classes < 2 or not 0 <= class_index < n_classes:
            raise ExplainError(
                f"class_index {class_index} of a model of {n_classes} classes per iteration; "
                "expected a multiclass model and a class of it"
            )
        with self._lock:
            if self._of is not booster:
                # every class at once: a first request per class would pay for the parse
                model = booster.model_to_string()
                self._boosters = [
                    lgb.Booster(model_str=class_model_string(model, c)) for c in range(n_classes)
                ]
                self._of = booster
            one = self._boosters[class_index]
        raw = np.asarray(
            one.predict(x, pred_contrib=True, num_threads=PREDICT_THREADS), dtype=np.float64
        )
        return raw.reshape(len(x), -1)
