"""Model registry: which version serves (the ``champion`` alias) and promoting a challenger.

Promotion is evidence-based: the challenger and the champion are scored by the same function
on the same test data, and the alias moves only when the challenger is strictly better on
the model's primary metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.errors import NotFoundError
from models.contract import CHAMPION
from training.result import REGISTERED_NAMES, ModelName
from training.tracking import champion_version


class RegistryError(NotFoundError):
    """The registry does not hold what was asked for; the message says what is missing."""


@dataclass(frozen=True)
class Promotion:
    """The outcome of ``promote``: both versions, both scores, and whether the alias moved."""

    registered_name: str
    metric: str
    challenger_version: str
    challenger_score: float | None
    champion_version: str | None
    champion_score: float | None
    promoted: bool
    reason: str

    def format(self) -> str:
        def show(score: float | None) -> str:
            return "-" if score is None else f"{score:.4f}"

        return (
            f"{self.registered_name}: challenger v{self.challenger_version} "
            f"{self.metric}={show(self.challenger_score)}, champion "
            f"{'v' + self.champion_version if self.champion_version else '(none)'} "
            f"{self.metric}={show(self.champion_score)} -> "
            f"{'promoted' if self.promoted else 'kept'}: {self.reason}"
        )


def latest_version(registered_name: str) -> str:
    """The newest registered version of a model."""
    versions = MlflowClient().search_model_versions(f"name='{registered_name}'")
    if not versions:
        raise RegistryError(
            f"no versions of {registered_name} in the registry at {mlflow.get_tracking_uri()}; "
            "run `nba train` first"
        )
    return str(max(int(v.version) for v in versions))


def load_version(registered_name: str, version: str) -> Any:
    """The LightGBM model of one registered version."""
    try:
        return mlflow.lightgbm.load_model(f"models:/{registered_name}/{version}")
    except MlflowException as exc:
        raise RegistryError(f"cannot load {registered_name} v{version}: {exc}") from exc


def promote(
    model: ModelName,
    score: Callable[[Any], float],
    *,
    metric: str,
    version: str | None = None,
) -> Promotion:
    """Score the challenger (``version``, default the newest) and the champion with ``score``
    (greater is better) and move ``champion`` to the challenger only if it scores higher.

    With no champion yet, the challenger becomes champion without a comparison.
    """
    name = REGISTERED_NAMES[model]
    challenger = version or latest_version(name)
    current = champion_version(name)
    client = MlflowClient()
    if current is None:
        client.set_registered_model_alias(name, CHAMPION, challenger)
        return Promotion(
            name, metric, challenger, None, None, None, True, "there was no champion yet"
        )
    challenger_score = float(score(load_version(name, challenger)))
    if current == challenger:
        return Promotion(
            name,
            metric,
            challenger,
            challenger_score,
            current,
            challenger_score,
            False,
            "the challenger already is the champion",
        )
    champion_score = float(score(load_version(name, current)))
    better = challenger_score > champion_score
    if better:
        client.set_registered_model_alias(name, CHAMPION, challenger)
    return Promotion(
        name,
        metric,
        challenger,
        challenger_score,
        current,
        champion_score,
        better,
        "better on the same test data" if better else "not better on the same test data",
    )
