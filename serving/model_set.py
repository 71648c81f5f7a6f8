"""The three models serving applies, loaded from the MLflow registry as one :class:`ModelSet`.

:func:`load_model_set` resolves ``models:/<name>@<alias>`` for the registered models of
``models.contract`` to a version first and then loads that exact version, so the versions a
:class:`ModelSet` reports are the ones it holds even if the alias moves while it loads. The
churn model's calibration comes from its run's params and the phases the phase model
predicts from the phase run's confusion matrix; the names (registered models, alias,
params, artifacts) are the training -> serving contract in :mod:`models.contract`. A set
whose run lacks a param or artifact the contract requires is refused with a
:class:`ModelLoadError` naming the model, version and what is missing (rather than served
with a guessed default). Each model's input example (logged with it by training) is kept
in the set, so ``serving.model_check`` can smoke-test a candidate set before it serves.
:class:`~serving.model_input.ModelInput` turns a DataFrame into the float matrix a model's
booster takes.

Several uvicorn workers: LightGBM predicts with OpenMP threads, and a process forked after
OpenMP's thread pool started can hang in its first parallel region (the pool's threads do
not survive the fork, its state does). So (1) nothing here loads a model on import (the app
loads in each worker after the fork, see ``serving.model_holder``); (2) every loaded
estimator is set to ``n_jobs=1`` and the request path passes ``num_threads=1`` to
``Booster.predict``: a one-row prediction gains nothing from threads, and single-threaded
prediction keeps 2 workers on 2 cores from oversubscribing them.

This module never imports ``training`` (layers: serving uses features and models only);
both sides share the names through ``models.contract``.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.attributes import NO_FITTED_ATTRIBUTES, FittedAttributes
from features.pipeline import attribute_specs
from models.contract import (
    ATTRIBUTES_ARTIFACT,
    CHALLENGER,
    CHAMPION,
    CHURN,
    HORIZON_DAYS_PARAM,
    NEXT_CONTENT,
    OUTCOME_KIND,
    OUTCOME_KIND_TAG,
    OUTCOME_NAME_TAG,
    PHASE,
    PHASE_CONFUSION_ARTIFACT,
    REGISTERED_MODELS,
    REQUIRED_ARTIFACTS,
    REQUIRED_PARAMS,
    RISK_OUTCOME,
)
from serving.model_input import PREDICT_THREADS, ModelInput, ModelLoadError, model_input

log = logging.getLogger(__name__)

# The key of the next-content version under trial in a set's ``versions`` (beside the
# alias's own ``nba-next-content``): answers, /ready and reloads see it.
CHALLENGER_KEY = f"{NEXT_CONTENT}@{CHALLENGER}"

# The part of an answer each registered model provides (``missing`` says which are absent).
ANSWER_PARTS: Mapping[str, str] = {PHASE: "phase", CHURN: "risk", NEXT_CONTENT: "next_actions"}


@dataclass(frozen=True)
class ModelSet:
    """The models one request uses, with what serving needs to apply them: any subset of
    the three of ``models.contract`` and the binary outcome models found by their tags.

    ``phase``, ``churn`` and ``next_content`` are None when the registry has no champion of
    that model; ``missing`` then maps its answer part (``ANSWER_PARTS``) to why.
    ``outcomes`` maps outcome name -> registered name of every binary outcome model held
    (the default outcome ``churn`` is ``nba-churn``); ``estimators`` registered name ->
    model, for all models held.

    ``versions`` maps registered name -> version; ``run_params`` registered name -> the
    run's params as text (the churn calibration is there); ``feature_columns`` registered
    name -> the columns the model takes; ``phase_classes`` the phase names the
    phase run recorded (its confusion matrix's rows, class code order); ``examples``
    registered name -> the input example logged with the model.
    """

    phase: Any | None
    churn: Any | None
    next_content: Any | None
    versions: Mapping[str, str]
    run_params: Mapping[str, Mapping[str, str]]
    feature_columns: Mapping[str, tuple[str, ...]]
    inputs: Mapping[str, ModelInput]
    alias: str
    loaded_at: pd.Timestamp
    phase_classes: tuple[str, ...] = ()
    examples: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    attributes: FittedAttributes = NO_FITTED_ATTRIBUTES
    missing: Mapping[str, str] = field(default_factory=dict)
    outcomes: Mapping[str, str] = field(default_factory=dict)
    estimators: Mapping[str, Any] = field(default_factory=dict)
    # The same set with the next-content version under trial (the ``challenger`` alias) as
    # its next-content model, when one is served beside the champion (its version is
    # ``versions[CHALLENGER_KEY]``); None otherwise.
    challenger: ModelSet | None = None

    @property
    def attribute_definitions(self) -> dict[str, str]:
        """Definitions of the custom-attribute features (reason codes quote them)."""
        return {s.name: s.definition for s in attribute_specs(self.attributes)}

    @property
    def key(self) -> tuple[str, ...]:
        """The versions as a hashable cache key (phase, churn, next content, then each
        outcome model; "-" for a missing model)."""
        others = sorted(set(self.versions) - set(REGISTERED_MODELS))
        return (
            *(self.versions.get(n, "-") for n in REGISTERED_MODELS),
            *(f"{n}={self.versions[n]}" for n in others),
        )

    @property
    def horizon_days(self) -> dict[str, int]:
        """Outcome name -> the horizon its model was trained for, in days (outcomes whose
        run logged none are left out)."""
        out: dict[str, int] = {}
        for outcome, name in self.outcomes.items():
            days = self.run_params.get(name, {}).get(HORIZON_DAYS_PARAM)
            if days is not None and str(days).isdigit():
                out[outcome] = int(days)
        return out

    @property
    def calibration(self) -> Mapping[str, str]:
        """The churn run's params (``models.churn.calibrate`` reads the calibration)."""
        return self.run_params.get(CHURN, {})


def _client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def sqlite_file_missing(tracking_uri: str) -> Path | None:
    """The file a ``sqlite:///`` tracking URI names when it does not exist (MLflow would
    create an empty store there on first use); None for other URIs or an existing file."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])
    return None if path.exists() else path.resolve()


def how_to_train(tracking_uri: str, model: str = "all") -> str:
    """What to run so that the registry at ``tracking_uri`` gets a ``champion`` of ``model``
    (``all`` or a registered name)."""
    name = model.removeprefix("nba-")
    return (
        f"train with `MLFLOW_TRACKING_URI={tracking_uri} nba train {name} --data DIR`, or, "
        f"when a trained version lost its gate, `nba promote "
        f"{'MODEL' if name == 'all' else name} --data DIR` (--force to override) against "
        "the same tracking URI"
    )


def alias_versions(
    tracking_uri: str, alias: str = CHAMPION, *, challenger: bool = False
) -> dict[str, str]:
    """Registered name -> the version ``alias`` points to now, for each of the three
    models of ``models.contract`` and each binary outcome model (versions tagged
    ``nba.kind=outcome``) that has one. With ``challenger``, also the next-content version
    the ``challenger`` alias points to (under :data:`CHALLENGER_KEY`) when there is one
    beside another next-content version of ``alias``. Raises :class:`ModelLoadError`
    naming every model looked for, and how to get one, when none has the alias, and
    without touching it when ``tracking_uri`` names a SQLite file that does not exist
    (no empty store is created)."""
    from mlflow.exceptions import MlflowException

    absent = sqlite_file_missing(tracking_uri)
    if absent is not None:
        raise ModelLoadError(
            f"tracking URI {tracking_uri} holds no models: {absent} does not exist (nothing "
            "was created). Point MLFLOW_TRACKING_URI at the store training wrote (`nba demo` "
            f"prints it), or {how_to_train(tracking_uri)}"
        )
    client = _client(tracking_uri)
    out: dict[str, str] = {}
    for name in [*REGISTERED_MODELS, *_outcome_names(client)]:
        try:
            out[name] = str(client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            continue  # not trained, or no version beat its baseline: served without it
    if challenger and NEXT_CONTENT in out:
        try:
            trial = str(client.get_model_version_by_alias(NEXT_CONTENT, CHALLENGER).version)
        except MlflowException:
            trial = out[NEXT_CONTENT]  # no trial
        if trial != out[NEXT_CONTENT]:
            out[CHALLENGER_KEY] = trial
    if not out:
        raise ModelLoadError(
            f"no registered model has the alias {alias!r} at tracking URI {tracking_uri} "
            f"(looked for {', '.join(REGISTERED_MODELS)} and outcome models): "
            + how_to_train(tracking_uri)
        )
    return out


def missing_parts(versions: Mapping[str, str], alias: str = CHAMPION) -> dict[str, str]:
    """Answer part -> why it is missing, for each of the three models without a version in
    ``versions`` (short: the pages show it; ``/ready`` adds :func:`how_to_train`)."""
    return {
        part: f"no {alias} of {name} in the registry"
        for name, part in ANSWER_PARTS.items()
        if name not in versions
    }


def _outcome_names(client: Any) -> list[str]:
    """The registered names of the binary outcome models (versions tagged
    ``nba.kind=outcome``), sorted; the three models of ``models.contract`` excluded."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"tags.`{OUTCOME_KIND_TAG}` = '{OUTCOME_KIND}'")
    except MlflowException as exc:
        log.warning("cannot search the registry for outcome models: %s", exc)
        return []
    return sorted({str(v.name) for v in found} - set(REGISTERED_MODELS))


def load_model_set(
    tracking_uri: str, alias: str = CHAMPION, *, versions: Mapping[str, str] | None = None
) -> ModelSet:
    """Returns the :class:`ModelSet` of ``models:/<name>@<alias>`` of the three registered
    models (or of the given ``versions``), loaded with MLflow's LightGBM flavor and set to
    predict single-threaded.

    Resolves the alias to versions once and loads those versions (an alias moving during
    the load cannot mix versions). Uses an explicit client for ``tracking_uri`` (no global
    MLflow state is changed). Raises :class:`ModelLoadError` naming the model and version
    when one cannot be loaded or its run lacks what ``models.contract`` requires.
    """
    resolved = dict(versions) if versions is not None else alias_versions(tracking_uri, alias)
    client = _client(tracking_uri)
    estimators: dict[str, Any] = {}
    examples: dict[str, pd.DataFrame] = {}
    params: dict[str, dict[str, str]] = {}
    outcomes: dict[str, str] = {}
    confusion = pd.Series(dtype=np.float64)
    attributes = NO_FITTED_ATTRIBUTES
    trial = resolved.pop(CHALLENGER_KEY, None)
    for name, version in resolved.items():
        where = f"{name} v{version} ({alias})"
        estimators[name], run_id, params[name], examples[name] = _load_version(
            client, name, version, where
        )
        _check_contract(client, name, where, run_id, params[name])
        outcome = _outcome_name(client, name, version, where)
        if outcome is not None:
            outcomes[outcome] = name
        # The attribute levels are the same in every run of one training; the phase run's
        # are read first when there is one (REGISTERED_MODELS order).
        if attributes is NO_FITTED_ATTRIBUTES and ATTRIBUTES_ARTIFACT in _artifacts(
            client, where, run_id, None
        ):
            attributes = _attributes(
                _read_artifact(client, where, run_id, ATTRIBUTES_ARTIFACT), where
            )
        if name == PHASE:
            csv = _read_artifact(client, where, run_id, PHASE_CONFUSION_ARTIFACT)
            confusion = _confusion_counts(csv, where)
    inputs = {name: model_input(est) for name, est in estimators.items()}
    phase_est = estimators.get(PHASE)
    champion = ModelSet(
        phase=phase_est,
        churn=estimators.get(CHURN),
        next_content=estimators.get(NEXT_CONTENT),
        versions=resolved,
        run_params=params,
        feature_columns={n: spec.columns for n, spec in inputs.items()},
        inputs=inputs,
        alias=alias,
        loaded_at=pd.Timestamp.now(tz="UTC"),
        phase_classes=tuple(str(c) for c in confusion.index),
        examples=examples,
        attributes=attributes,
        missing=missing_parts(resolved, alias),
        outcomes=outcomes,
        estimators=estimators,
    )
    if trial is None:
        return champion
    return replace(
        champion,
        versions={**resolved, CHALLENGER_KEY: trial},
        challenger=_challenger(client, champion, trial),
    )


def _challenger(client: Any, champion: ModelSet, version: str) -> ModelSet:
    """``champion`` with next-content ``version`` (the one under trial) as its next-content
    model; raises :class:`ModelLoadError` as for a version of the set."""
    where = f"{NEXT_CONTENT} v{version} ({CHALLENGER})"
    estimator, run_id, params, example = _load_version(client, NEXT_CONTENT, version, where)
    _check_contract(client, NEXT_CONTENT, where, run_id, params)
    spec = model_input(estimator)
    return replace(
        champion,
        next_content=estimator,
        versions={**champion.versions, NEXT_CONTENT: version},
        run_params={**champion.run_params, NEXT_CONTENT: params},
        feature_columns={**champion.feature_columns, NEXT_CONTENT: spec.columns},
        inputs={**champion.inputs, NEXT_CONTENT: spec},
        alias=CHALLENGER,
        examples={**champion.examples, NEXT_CONTENT: example},
        estimators={**champion.estimators, NEXT_CONTENT: estimator},
    )


def _outcome_name(client: Any, name: str, version: str, where: str) -> str | None:
    """The outcome a version predicts (its ``nba.outcome`` tag) when it is tagged
    ``nba.kind=outcome``; ``churn`` for ``nba-churn`` without tags (trained before
    outcomes were configurable); else None."""
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_model_version(name, version).tags or {}
    except MlflowException as exc:
        raise ModelLoadError(f"cannot read the tags of {where}: {exc}") from exc
    if tags.get(OUTCOME_KIND_TAG) == OUTCOME_KIND:
        return str(tags.get(OUTCOME_NAME_TAG) or name.removeprefix("nba-"))
    return RISK_OUTCOME if name == CHURN else None


def _load_version(
    client: Any, name: str, version: str, where: str
) -> tuple[Any, str, dict[str, str], pd.DataFrame]:
    """Returns (the estimator set to predict single-threaded, its run id, the run's params,
    the input example logged with the model) of one registered version."""
    import mlflow.artifacts
    import mlflow.lightgbm
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    try:
        mv = client.get_model_version(name, version)
        run_id = str(mv.run_id or "")
        params = dict(client.get_run(run_id).data.params) if run_id else {}
        uri = str(client.get_model_version_download_uri(name, version))
    except (MlflowException, OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load {where}: {exc}") from exc
    try:
        # One local copy (a local store's own folder) for the model and its input example.
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri)
        estimator = mlflow.lightgbm.load_model(local)
        example = Model.load(local).load_input_example(local)
    except (MlflowException, OSError, ValueError) as exc:
        raise ModelLoadError(
            f"{where}: model files missing or unreadable at {uri} (run {run_id or '(none)'}): {exc}"
        ) from exc
    if not isinstance(example, pd.DataFrame) or example.empty:
        raise ModelLoadError(
            f"{where}: the model at {uri} has no input example (training logs one with every "
            "model; serving smoke-tests a new set on it before serving it)"
        )
    if hasattr(estimator, "set_params"):
        estimator.set_params(n_jobs=PREDICT_THREADS)
    return estimator, run_id, params, example


def _check_contract(
    client: Any, name: str, where: str, run_id: str, params: Mapping[str, str]
) -> None:
    """Raises :class:`ModelLoadError` naming the model, version and what is missing when
    the version's run lacks a param or an artifact ``models.contract`` requires of
    ``name``."""

    missing = [p for p in REQUIRED_PARAMS.get(name, ()) if p not in params]
    if missing:
        raise ModelLoadError(f"{where}: run {run_id or '(none)'} has no param {', '.join(missing)}")
    artifacts = REQUIRED_ARTIFACTS.get(name, ())
    if artifacts and not run_id:
        raise ModelLoadError(f"{where}: no training run recorded, so no {', '.join(artifacts)}")
    for artifact in artifacts:
        if artifact not in _artifacts(client, where, run_id, posixpath.dirname(artifact) or None):
            raise ModelLoadError(f"{where}: run {run_id} has no artifact {artifact!r}")


def _artifacts(client: Any, where: str, run_id: str, folder: str | None) -> set[str]:
    """The artifact paths of ``run_id`` in ``folder`` (None: the top level)."""
    from mlflow.exceptions import MlflowException

    try:
        return {a.path for a in client.list_artifacts(run_id, folder)}
    except (MlflowException, OSError) as exc:
        raise ModelLoadError(f"{where}: cannot list the artifacts of run {run_id}: {exc}") from exc


def _read_artifact(client: Any, where: str, run_id: str, artifact: str) -> str:
    """Returns the text of one artifact of ``run_id``; :class:`ModelLoadError` naming the
    model, version and artifact when it cannot be read."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        uri = client.get_run(run_id).info.artifact_uri + "/" + artifact
        return str(mlflow.artifacts.load_text(uri))
    except (MlflowException, OSError, ValueError) as exc:
        raise ModelLoadError(f"{where}: cannot read artifact {artifact!r}: {exc}") from exc


def _attributes(text: str, where: str) -> FittedAttributes:
    """The attribute levels the phase run logged; :class:`ModelLoadError` if unreadable."""
    try:
        return FittedAttributes.from_dict(json.loads(text))
    except (ValueError, TypeError, AttributeError) as exc:  # pydantic's errors are ValueErrors
        raise ModelLoadError(f"{where}: {ATTRIBUTES_ARTIFACT!r} is not readable: {exc}") from exc


def _confusion_counts(confusion_csv: str, where: str) -> pd.Series:
    """Returns the row sums of the phase run's CRM confusion matrix, indexed by phase name
    in the file's class order (= class codes)."""
    try:
        return pd.read_csv(StringIO(confusion_csv), index_col=0).sum(axis=1)
    except ValueError as exc:  # pandas' parse errors derive from ValueError
        raise ModelLoadError(
            f"{where}: {PHASE_CONFUSION_ARTIFACT!r} is not a table: {exc}"
        ) from exc
