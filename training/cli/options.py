"""What ``nba train`` and ``nba promote`` share: their options, the reward they are given
and the training data they read (a data directory, or the service's store)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from features.cli import StoreReader, store_reader
from features.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from features.cli import Engine
    from features.taxonomy import Taxonomy
    from training.reward import Reward, RewardKind
    from training.train import Prepared

OutcomesOption = Annotated[
    Path | None,
    typer.Option(
        "--outcomes",
        help="Outcomes file (YAML) declaring the binary outcome models; default the shipped "
        "one (churn).",
        exists=True,
        dir_okay=False,
    ),
]
TrackingOption = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking store; default a local SQLite file, sqlite:///mlflow.db.",
    ),
]

ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Make the version champion even if it loses to its baseline (tagged nba.forced).",
    ),
]


RewardOption = Annotated[
    str,
    typer.Option(
        "--reward",
        help="next-content on data with a no_action control: response (a touchpoint of the "
        "reward event types follows the decision) or value (their summed value).",
    ),
]
RewardEventOption = Annotated[
    list[str] | None,
    typer.Option(
        "--reward-event",
        help="Event type counted as the reward (repeatable; default: the response types for "
        "response, purchase for value).",
    ),
]
RewardWindowOption = Annotated[
    int,
    typer.Option("--reward-window-days", min=1, help="Days after a decision its reward counts."),
]


def reward_of(kind: str, event_types: list[str] | None, window_days: int) -> Reward:
    """The reward ``--reward``, ``--reward-event`` and ``--reward-window-days`` name; raises
    InvalidInputError for an unknown kind."""
    from training.reward import REWARD_KINDS, Reward

    if kind not in REWARD_KINDS:
        raise InvalidInputError(f"--reward {kind!r}: expected one of {', '.join(REWARD_KINDS)}")
    return Reward(cast("RewardKind", kind), tuple(event_types or ()), window_days=window_days)


@dataclass(frozen=True)
class StoreSource:
    """``--store``: the service's store at ``url`` and the reader the root app handed down."""

    url: str
    schema: str | None
    read: StoreReader


def store_source(
    ctx: typer.Context,
    data: Path | None,
    store: str | None,
    schema: str | None,
    mapping: Path | None,
) -> StoreSource | None:
    """The ``--store`` to read instead of a data directory (None: read ``--data``). Raises
    InvalidInputError for both ``--data`` and ``--store``, or ``--store`` with a mapping (the
    store holds the contract's tables already)."""
    if store is None:
        return None
    if data is not None:
        raise InvalidInputError("--data and --store: give one source of training data")
    if mapping is not None:
        raise InvalidInputError("--mapping maps a data directory; the store is in the contract")
    return StoreSource(store, schema or None, store_reader(ctx))


def prepare_source(
    data: Path | None,
    taxonomy: Taxonomy,
    mapping: Path | None,
    as_of_dates: int,
    engine: Engine,
    scheduler: str | None,
    *,
    attributes: Path | None = None,
    models: Sequence[str] | None = None,
    reward: Reward | None = None,
    store: StoreSource | None = None,
) -> Prepared:
    """The prepared training data of the data directory ``data`` (default ./data) or, with
    ``store``, of the service's store, read into the same validated tables."""
    from features.cli import load_declarations
    from training.result import MODEL_NAMES
    from training.train import prepare, prepare_data

    column_mapping, declared = load_declarations(mapping, attributes)
    if store is not None:
        from features.load import read_tables

        started, cpu = time.perf_counter(), time.process_time()
        tables = store.read(store.url, taxonomy, schema=store.schema)
        return prepare_data(
            read_tables(tables, taxonomy, attributes=declared),
            taxonomy,
            load_s=time.perf_counter() - started,
            load_cpu_s=time.process_time() - cpu,
            n_dates=as_of_dates,
            engine=engine,
            scheduler=scheduler,
            attributes=declared,
            models=models if models is not None else MODEL_NAMES,
            reward=reward,
        )
    return prepare(
        data if data is not None else Path("data"),
        taxonomy,
        mapping=column_mapping,
        n_dates=as_of_dates,
        engine=engine,
        scheduler=scheduler,
        attributes=declared,
        models=models if models is not None else MODEL_NAMES,
        reward=reward,
    )
