"""A multiclass model's contributions for one class from that class's trees alone equal
LightGBM's contributions of the whole model for the class."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from models.explain import ExplainError, contributions_for
from serving.scoring.class_trees import ClassTrees


def test_one_class_trees_give_the_class_contributions_of_the_whole_model() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 6))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = np.digitize(np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]), [-0.7, 0.0, 0.7])
    model = lgb.train(
        {"objective": "multiclass", "num_class": 4, "num_leaves": 7, "verbose": -1, "seed": 7},
        lgb.Dataset(x, y),
        num_boost_round=15,
    )
    trees = ClassTrees()
    rows = x[:25]
    for c in range(4):
        want = contributions_for(model, rows, class_index=c)
        got = trees.contributions(model, rows, c)
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ExplainError):
        trees.contributions(model, rows, 4)
