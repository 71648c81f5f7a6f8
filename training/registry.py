"""Model registry: which version serves (the ``champion`` alias) and promoting a challenger.

Promotion is evidence-based: the challenger and the champion are scored by the same function
on the same test data, and the alias moves only when the challenger is strictly better on
the model's primary metric and passed its own gate (it beat its strongest baseline on the
validation split, as stored on the version by ``training.tracking``). ``--force`` overrides
both and is recorded on the version (``nba.forced=true``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.errors import NotFoundError
from models.contract import CHALLENGER, CHAMPION
from training.result import Gate, registered_name
from training.tracking import FORCED_TAG, champion_version, format_gate, gate_from_tags


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
    gate: Gate | None = None  # the challenger's, as stored on its version
    forced: bool = False
    # challenger minus champion on the same test split, paired, with its 95 % interval
    difference: tuple[float, float, float] | None = None

    def format(self) -> str:
        def show(score: float | None) -> str:
            return "-" if score is None else f"{score:.4f}"

        paired = (
            ""
            if self.difference is None
            else ", challenger - champion {:+.4f} [{:+.4f}, {:+.4f}]".format(*self.difference)
        )
        text = (
            f"{self.registered_name}: challenger v{self.challenger_version} "
            f"{self.metric}={show(self.challenger_score)}, champion "
            f"{'v' + self.champion_version if self.champion_version else '(none)'} "
            f"{self.metric}={show(self.champion_score)}{paired} -> "
            f"{'promoted' if self.promoted else 'kept'}: {self.reason}"
        )
        gate = "no gate recorded" if self.gate is None else format_gate(self.gate)
        return f"{text}\n  challenger's gate: {gate}"


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


def version_gate(registered_name: str, version: str) -> Gate | None:
    """The gate stored on a registered version (None: it has none)."""
    try:
        tags = MlflowClient().get_model_version(registered_name, version).tags
    except MlflowException as exc:
        raise RegistryError(f"no version {version} of {registered_name}: {exc.message}") from exc
    return gate_from_tags(tags or {})


def promote(
    model: str,
    score: Callable[[Any], float],
    *,
    metric: str,
    version: str | None = None,
    force: bool = False,
    paired: Callable[[Any, Any], tuple[float, float, float]] | None = None,
) -> Promotion:
    """Score the challenger (``version``, default the newest) and the champion with ``score``
    (greater is better) and move ``champion`` to the challenger only if it is better and
    passed its own gate (it beat its strongest baseline on the validation split; a version
    without a gate passes). With ``paired`` (challenger, champion -> their difference on
    the same test split with its 95 % interval) better means that interval lies above 0:
    a challenger within noise of the champion ties, and a tie keeps the champion; without
    it, a higher score. ``force`` moves it regardless and tags the version
    ``nba.forced=true``.

    With no champion yet, the challenger becomes champion if it passed its gate.
    """
    name = registered_name(model)
    challenger = version or latest_version(name)
    gate = version_gate(name, challenger)
    gate_ok = gate is None or gate.passed
    current = champion_version(name)
    client = MlflowClient()
    if current == challenger:
        score_now = float(score(load_version(name, challenger)))
        return Promotion(
            name,
            metric,
            challenger,
            score_now,
            current,
            score_now,
            False,
            "the challenger already is the champion",
            gate,
        )
    challenger_model = load_version(name, challenger)
    challenger_score = float(score(challenger_model))
    champion_model = None if current is None else load_version(name, current)
    champion_score = None if champion_model is None else float(score(champion_model))
    difference = (
        None
        if paired is None or champion_model is None
        else paired(challenger_model, champion_model)
    )
    if difference is not None:
        better = bool(difference[1] > 0.0)
    else:
        better = champion_score is None or challenger_score > champion_score
    promoted = force or (better and gate_ok)
    forced = promoted and not (better and gate_ok)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, challenger)
    if forced:
        client.set_model_version_tag(name, challenger, FORCED_TAG, "true")
    reason = _reason(
        current, better=better, gate_ok=gate_ok, forced=forced, paired=difference is not None
    )
    return Promotion(
        name,
        metric,
        challenger,
        challenger_score,
        current,
        champion_score,
        promoted,
        reason,
        gate,
        forced,
        difference,
    )


def _reason(
    current: str | None, *, better: bool, gate_ok: bool, forced: bool, paired: bool = False
) -> str:
    """Why the alias moved or stayed, in words."""
    if current is None:
        compared = "there was no champion yet"
    elif paired:
        compared = (
            "better on the same test data (the difference's interval is above 0)"
            if better
            else "not shown better on the same test data (the difference's interval is not "
            "above 0: a tie keeps the champion)"
        )
    else:
        compared = ("better" if better else "not better") + " on the same test data"
    gate = "and it beats its baseline" if gate_ok else "but it LOSES to its baseline"
    if forced:
        return f"{compared} {gate}; promoted by --force (tagged {FORCED_TAG}=true)"
    return f"{compared} {gate}"


@dataclass(frozen=True)
class Trial:
    """What ``nba challenge`` did: the version under trial (None: none now), the one whose
    trial it ended (None: none), and its gate when it did not pass it."""

    registered_name: str
    version: str | None
    ended: str | None
    forced: bool = False
    gate: Gate | None = None  # the gate it lost (a tie, or a loss tried by --force)

    def format(self) -> str:
        ended = f"; the trial of v{self.ended} ends" if self.ended else ""
        if self.version is None:
            return f"{self.registered_name}: no version on trial{ended}"
        why = ""
        if self.forced:
            why = f" (its gate lost: --force, tagged {FORCED_TAG}=true)"
        elif self.gate is not None:
            why = (
                " (it tied its baseline on validation, "
                f"{self.gate.difference_text}: the trial settles it on live decisions)"
            )
        return (
            f"{self.registered_name}: v{self.version} is on trial{why}{ended}; the service "
            "gives its own pick NBA_CHALLENGER_SHARE of the decisions (default 0.2) from its "
            "next reload, and `nba promote next-content --store URL` judges it on them"
        )


def trial_version(registered_name: str) -> str | None:
    """The version the ``challenger`` alias points to, or None."""
    try:
        return str(MlflowClient().get_model_version_by_alias(registered_name, CHALLENGER).version)
    except MlflowException:
        return None


def start_trial(registered_name: str, version: str | None = None, *, force: bool = False) -> Trial:
    """Point the ``challenger`` alias at ``version`` (default: the newest), ending the
    trial of the version it pointed to. Raises :class:`RegistryError` when the version does
    not exist or is the champion, and when its gate showed it worse than its baseline
    (unless ``force``: then tagged ``nba.forced=true``). A version that tied its baseline
    (the gate's interval holds 0: not made champion by training) may be tried: a trial is
    how a tie on the validation split is settled, and its judgement is the promotion.
    (On a served log the validation split's policy value is seldom decisive: in the
    closed loop nearly every newcomer ties.)"""
    client = MlflowClient()
    chosen = version or latest_version(registered_name)
    try:
        tags = client.get_model_version(registered_name, chosen).tags or {}
    except MlflowException as exc:
        raise RegistryError(f"{registered_name} has no version {chosen!r}: {exc}") from exc
    if champion_version(registered_name) == chosen:
        raise RegistryError(
            f"{registered_name} v{chosen} is the champion: it serves every decision already; "
            "train a newer version to try"
        )
    gate = gate_from_tags(tags)
    worse = gate is not None and not gate.passed and not gate.tied
    if gate is not None and worse and not force:
        raise RegistryError(
            f"{registered_name} v{chosen} lost its gate ({format_gate(gate)}): its baseline is "
            "better, so it is not tried on live decisions (--force to try it anyway)"
        )
    before = trial_version(registered_name)
    client.set_registered_model_alias(registered_name, CHALLENGER, chosen)
    if worse:
        client.set_model_version_tag(registered_name, chosen, FORCED_TAG, "true")
    return Trial(
        registered_name,
        chosen,
        before if before not in (None, chosen) else None,
        forced=worse,
        gate=None if gate is None or gate.passed else gate,
    )


def end_trial(registered_name: str, version: str | None = None) -> Trial:
    """Remove the ``challenger`` alias (only when it points to ``version``, if given): the
    service stops giving it decisions at its next reload."""
    current = trial_version(registered_name)
    if current is None or (version is not None and current != version):
        return Trial(registered_name, current, None)
    MlflowClient().delete_registered_model_alias(registered_name, CHALLENGER)
    return Trial(registered_name, None, current)
