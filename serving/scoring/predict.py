"""Applying the three models to feature frames, shared by online and batch scoring.

:class:`ScoringSetup` holds what is built once per scorer (the prepared catalog, feature
definitions and labels for reasons, the next-content model's account inputs) and computes
the features as of a time (the feature pipeline's own code, so online equals batch), the
phase probabilities, the raw churn score and the next-content candidate rows.

Predictions use the boosters directly on float arrays with ``num_threads=1`` on the request
path (see ``serving.model_set``: threads after a fork can hang, and one row gains nothing
from them); batch scoring passes ``threads=0`` (LightGBM's default).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.attributes import FittedAttributes
from features.frames import select_columns
from features.pipeline import build_features, feature_definitions
from features.pipeline.incremental import CatalogCodes
from features.schema import TABLE_ORDER, TIMESTAMP_DTYPE, JourneyData, empty_table, with_all_columns
from features.taxonomy import Taxonomy
from models import next_content as nc
from models.arbitration import ArbitrationConfig, PreparedCatalog, prepare_catalog
from models.churn import calibrate
from models.contract import CHURN, NEXT_CONTENT, PHASE
from models.explain import taxonomy_labels
from serving.model_input import PREDICT_THREADS, ModelInput
from serving.model_set import ANSWER_PARTS, ModelSet
from serving.scoring.answer import ScoringError
from serving.scoring.class_trees import ClassTrees
from serving.scoring.rows import CandidateEncoder

log = logging.getLogger(__name__)

MAX_REASONS = 3


class SingleThreaded:
    """A booster whose ``predict`` always runs on one thread (for ``contributions_for``)."""

    def __init__(self, booster: Any) -> None:
        self._booster = booster

    def predict(self, x: Any, **kwargs: Any) -> Any:
        return self._booster.predict(x, num_threads=PREDICT_THREADS, **kwargs)

    def num_feature(self) -> int:
        return int(self._booster.num_feature())


def booster(estimator: Any) -> Any:
    """Returns the ``lightgbm.Booster`` of a fitted classifier (or the booster itself)."""
    return getattr(estimator, "booster_", estimator)


class ScoringSetup:
    """What scoring needs besides the models, built once from the taxonomy, the arbitration
    config and the catalog (``taxonomy.content_frame()`` shape)."""

    def __init__(
        self, taxonomy: Taxonomy, config: ArbitrationConfig, content: pd.DataFrame
    ) -> None:
        self.taxonomy = taxonomy
        self.config = config
        self.content = content.reset_index(drop=True)
        self.phases: list[str] = list(taxonomy.phases)
        self.catalog: PreparedCatalog = prepare_catalog(self.content, self.phases)
        self.catalog_arrays = nc.catalog_arrays(self.content, taxonomy)
        # The catalog as feature states read it (incremental features of cold accounts).
        self.catalog_codes = CatalogCodes.of(self.content, taxonomy)
        self.definitions: dict[str, str] = {
            **feature_definitions(taxonomy),
            **_topic_definitions(taxonomy),
            **nc.CANDIDATE_DEFINITIONS,
        }
        # Value -> label: the taxonomy's, then each catalog item's title (a reason about
        # the item itself names it, not its id).
        self.labels = {**_titles(self.content), **taxonomy_labels(taxonomy)}
        self.account_inputs = nc.account_input_columns(taxonomy)
        # The last model set :meth:`servable` saw and its answer (a request reads it once).
        self._servable: tuple[ModelSet, ModelSet] | None = None
        # (model set key, day) -> :meth:`new_account_prior`, the last one computed.
        self._new_prior: tuple[tuple[tuple[str, ...], int], np.ndarray] | None = None
        # The phase model's trees per class (a reason explains one class).
        self.class_trees = ClassTrees()
        # The last two next-content model inputs :meth:`candidate_encoder` saw and their
        # encoders, newest first.
        self._encoders: list[tuple[ModelInput, CandidateEncoder]] = []

    def servable(self, models: ModelSet) -> ModelSet:
        """Returns ``models`` as this service can apply them: without the next-content
        model, and ``missing`` saying why, when it takes account columns the features
        computed here never hold (a model trained on custom attributes the serving set
        did not log, or by another feature pipeline); else ``models`` itself."""
        last = self._servable
        if last is not None and last[0] is models:
            return last[1]
        out = models
        absent = self._uncomputable(models)
        if absent:
            part = ANSWER_PARTS[NEXT_CONTENT]
            version = models.versions.get(NEXT_CONTENT, "?")
            why = (
                f"{NEXT_CONTENT} v{version} takes account columns {absent[:5]} "
                f"({len(absent)} in all) that this service does not compute; expected "
                "features of the feature pipeline and the custom attributes logged with "
                "the models"
            )
            out = dataclasses.replace(
                models, next_content=None, missing={**models.missing, part: why}, challenger=None
            )
        elif models.challenger is not None and self._uncomputable(models.challenger):
            # A version under trial the service cannot feed is not tried (the champion
            # serves every decision); /ready names it among the versions held.
            log.warning(
                "%s v%s (challenger) takes account columns this service does not compute: "
                "not tried",
                NEXT_CONTENT,
                models.challenger.versions.get(NEXT_CONTENT, "?"),
            )
            out = dataclasses.replace(models, challenger=None)
        self._servable = (models, out)
        return out

    def _uncomputable(self, models: ModelSet) -> list[str]:
        """The next-content model's account columns no feature frame of
        :meth:`features` holds (none without a next-content model)."""
        if models.next_content is None:
            return []
        computed = {
            *feature_definitions(self.taxonomy, models.attributes),
            *nc.topic_columns(self.taxonomy),
        }
        return [c for c in self.account_columns(models) if c not in computed]

    def features(
        self, data: JourneyData, now: pd.Timestamp, attributes: FittedAttributes
    ) -> pd.DataFrame | None:
        """Returns one row per account of ``data`` existing at ``now``: the pipeline
        features (with those of the models' custom ``attributes``), then the topic
        engagement the next-content model needs; None if none."""
        frame = build_features(data, [now], self.taxonomy, attributes=attributes)
        if frame.empty:
            return None
        topics = nc.topic_engagement(data, frame[["account_id", "as_of"]], self.taxonomy)
        return pd.concat([frame, topics], axis=1)

    def phase_proba(self, models: ModelSet, rows: Encoded, threads: int = 1) -> np.ndarray:
        """Returns rows x taxonomy phases probabilities (phases the model never saw: 0).
        Without a phase model, every phase is equally likely (arbitration's phase fit is
        then neutral; the answer says the phase is missing)."""
        if models.phase is None:
            return np.full((rows.n, len(self.phases)), 1.0 / len(self.phases))
        raw = rows.raw(models, PHASE, threads).reshape(rows.n, -1)
        if raw.shape[1] == 1:  # a binary phase model (two recorded phases): P(class 1)
            raw = np.column_stack([1.0 - raw[:, 0], raw[:, 0]])
        classes = np.asarray(
            getattr(models.phase, "classes_", np.arange(raw.shape[1])), dtype=np.int64
        )
        out = np.zeros((rows.n, len(self.phases)), dtype=np.float64)
        out[:, self.phase_columns(models)[classes]] = raw
        return out

    def phase_columns(self, models: ModelSet) -> np.ndarray:
        """The taxonomy position of each phase class of the phase model (its run's recorded
        phases; class code = position when it recorded none)."""
        if not models.phase_classes:
            return np.arange(len(self.phases))
        return np.array([self.phases.index(p) for p in models.phase_classes], dtype=np.int64)

    def phase_codes(self, models: ModelSet, proba: np.ndarray) -> np.ndarray:
        """``proba`` (rows x taxonomy phases) as rows x the phase model's classes."""
        return proba[:, self.phase_columns(models)]

    def new_account_prior(self, models: ModelSet, now: pd.Timestamp) -> np.ndarray:
        """The taxonomy phases' probabilities for an account with no history at ``now``:
        the phase model's answer for an account created a second before ``now`` with no
        touchpoints, stages, contacts or firmographics (uniform without a phase model).

        This is what an account nobody has seen yet gets: the early phases of a journey,
        not the population's mix of phases (which peaks after the purchase). Remembered
        per model set and day (the as-of month and weekday are features)."""
        if models.phase is None:
            return np.full(len(self.phases), 1.0 / len(self.phases))
        key = (models.key, now.normalize().value)
        remembered = self._new_prior
        if remembered is not None and remembered[0] == key:
            return remembered[1]
        frame = self.features(_no_history(self.taxonomy, self.content, now), now, models.attributes)
        if frame is None:
            raise ScoringError(f"no feature row for an account created before {now}")
        prior = self.phase_proba(models, encode_frame(models, frame))[0]
        self._new_prior = (key, prior)
        return prior

    def account_columns(self, models: ModelSet) -> list[str]:
        """Returns the account columns each candidate row carries for the served
        next-content model: the fixed inputs the candidate features are computed from
        (``account_inputs``), then every other account column the model was trained on (a
        next-action model trained with a control takes every account feature, custom
        attributes included), in the model's order. Only ``account_inputs`` without a
        next-content model."""
        spec = models.inputs.get(NEXT_CONTENT)
        if models.next_content is None or spec is None:
            return list(self.account_inputs)
        fixed = set(self.account_inputs)
        wider = [c for c in spec.columns if c not in fixed and c not in nc.CANDIDATE_DEFINITIONS]
        return [*self.account_inputs, *wider]

    def account_frame(self, models: ModelSet, frame: pd.DataFrame) -> pd.DataFrame:
        """Returns the account columns of ``frame`` the served next-content model needs
        (:meth:`account_columns`). Raises :class:`ScoringError` naming the model and the
        columns when the features lack some (a model trained on attributes or features
        this service does not compute)."""
        columns = self.account_columns(models)
        self._require(models, [c for c in columns if c not in frame.columns])
        return select_columns(frame, columns)

    def account_values(self, models: ModelSet, values: Mapping[str, Any]) -> dict[str, Any]:
        """:meth:`account_frame` of one account's feature values (column -> value)."""
        columns = self.account_columns(models)
        self._require(models, [c for c in columns if c not in values])
        return {c: values[c] for c in columns}

    def _require(self, models: ModelSet, absent: list[str]) -> None:
        if absent:
            version = models.versions.get(NEXT_CONTENT, "?")
            raise ScoringError(
                f"{NEXT_CONTENT} v{version} takes account columns {absent[:5]} "
                f"({len(absent)} in all) that the features computed here lack; expected the "
                "features and custom attributes it was trained with (the mapping's "
                "attributes, logged with the model)"
            )

    def candidate_encoder(self, models: ModelSet) -> CandidateEncoder:
        """The served next-content model's :class:`CandidateEncoder` (built once per model
        set). Raises ``ScoringError`` without a next-content model."""
        spec = models.inputs.get(NEXT_CONTENT)
        if models.next_content is None or spec is None:
            raise ScoringError("no next-content model is served: no candidate rows to build")
        for held, encoder in self._encoders:
            if held is spec:
                return encoder
        encoder = CandidateEncoder(spec, self.catalog_arrays, self.taxonomy)
        # the champion's and the challenger's: two encoders alternate while a trial runs
        self._encoders = [(spec, encoder), *self._encoders[:1]]
        return encoder


class Encoded:
    """Rows as the float matrix of each model held but next content (``x``: registered
    name -> matrix), each model's raw output computed once when first asked for (the churn
    risk and the churn outcome share one prediction)."""

    def __init__(self, n: int, x: dict[str, np.ndarray]) -> None:
        self.n = n
        self.x = x
        self._raw: dict[str, np.ndarray] = {}

    def raw(self, models: ModelSet, name: str, threads: int = 1) -> np.ndarray:
        """The raw ``predict`` output of model ``name`` (registered name) for the rows."""
        if name not in self._raw:
            self._raw[name] = np.asarray(
                booster(models.estimators[name]).predict(self.x[name], num_threads=threads),
                dtype=np.float64,
            )
        return self._raw[name]


def _row_models(models: ModelSet) -> list[str]:
    """The registered names of the models that take account rows (all but next content)."""
    return [name for name in models.estimators if name != NEXT_CONTENT]


def encode_frame(models: ModelSet, frame: pd.DataFrame) -> Encoded:
    """``frame``'s rows encoded for every account-row model held."""
    return Encoded(len(frame), {n: models.inputs[n].encode(frame) for n in _row_models(models)})


def encode_values(models: ModelSet, values: Mapping[str, Any]) -> Encoded:
    """One account's row (column -> plain value) encoded for every account-row model held:
    the same matrices :func:`encode_frame` gives for its one-row frame."""
    return Encoded(1, {n: models.inputs[n].encode_values(values) for n in _row_models(models)})


def churn_raw(models: ModelSet, rows: Encoded, threads: int = 1) -> np.ndarray:
    """Returns the uncalibrated churn score of each row (NaN without a churn model)."""
    if models.churn is None:
        return np.full(rows.n, np.nan)
    return rows.raw(models, CHURN, threads)


def outcome_probabilities(
    models: ModelSet, rows: Encoded, threads: int = 1
) -> dict[str, np.ndarray]:
    """Returns outcome name -> the calibrated probability of each row, for every binary
    outcome model held (``churn`` included: the same numbers as the risk)."""
    return {
        outcome: calibrate(rows.raw(models, name, threads), dict(models.run_params[name]))
        for outcome, name in models.outcomes.items()
    }


def current_contacts(contacts: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """Returns the contacts present at ``now`` (created before it, not left before it), as
    the feature pipeline counts them: account_id, contact_id (as str), role."""
    present = contacts["created_at"] < now
    if "left_at" in contacts:
        present &= ~(contacts["left_at"] < now).fillna(False)
    cols = [c for c in ("account_id", "contact_id", "role") if c in contacts]
    out = contacts.loc[present.to_numpy(dtype=bool), cols].reset_index(drop=True)
    out["contact_id"] = out["contact_id"].astype(str)
    return out


def _topic_definitions(taxonomy: Taxonomy) -> dict[str, str]:
    out: dict[str, str] = {}
    for t in taxonomy.topic_names:
        out[f"n_topic_{t}_365d"] = f"content touchpoints on topic '{t}' in the last 365 days"
        out[f"n_topic_{t}_ever"] = f"content touchpoints on topic '{t}' ever"
    return out


# The id of the account :func:`_no_history` makes up (only its features are used).
NO_HISTORY_ACCOUNT = "new account"


def _no_history(taxonomy: Taxonomy, content: pd.DataFrame, now: pd.Timestamp) -> JourneyData:
    """Data holding one account, created a second before ``now``, with nothing else known
    about it (the catalog is kept: some features read it)."""
    tables = {name: empty_table(name, taxonomy) for name in TABLE_ORDER}
    account = pd.DataFrame(
        {
            "account_id": pd.Series([NO_HISTORY_ACCOUNT], dtype="str"),
            "created_at": pd.Series([now - pd.Timedelta(seconds=1)], dtype=TIMESTAMP_DTYPE),
        }
    )
    tables["accounts"] = with_all_columns("accounts", account, taxonomy)
    tables["content"] = content
    return JourneyData(**tables)


def _titles(content: pd.DataFrame) -> dict[str, str]:
    """content_id -> title of the catalog items that have one."""
    if "title" not in content:
        return {}
    titled = content[content["title"].notna()]
    return dict(zip(titled["content_id"].astype(str), titled["title"].astype(str), strict=True))
