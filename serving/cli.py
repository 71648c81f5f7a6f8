"""The serving layer's commands: ``nba serve``, ``nba load``, ``nba export``, ``nba score``
and ``nba keys create|list|revoke``, and the store reader ``nba train --store`` is handed
(:func:`store_tables`).

Settings come from the environment once (:meth:`Settings.from_env`). Commands raise
:class:`~features.errors.NbaError` for a user's mistake; the root ``nba`` app turns it into
a message and an exit code once. Heavy libraries are imported inside each command, which
keeps ``nba --help`` fast.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from features.cli import (
    AttributesOption,
    JsonOption,
    MappingOption,
    TaxonomyOption,
    echo_json,
    load_taxonomy_option,
    parse_time,
    peak_memory_mb,
    read_data,
)

if TYPE_CHECKING:
    import pandas as pd

    from features.taxonomy import Taxonomy
    from serving.model_set import ModelSet
    from serving.settings import Settings
    from serving.store import Store

app = typer.Typer(add_completion=False)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _settings() -> Settings:
    import os

    from serving.settings import Settings

    return Settings.from_env(os.environ)


@contextmanager
def _store(taxonomy: Path | None = None) -> Iterator[Store]:
    """The migrated store of NBA_DATABASE_URL (and NBA_DATABASE_SCHEMA), disposed on exit;
    ingestion accepts the custom attributes of NBA_ATTRIBUTES."""
    from features.attributes import NO_ATTRIBUTES, resolve_attributes
    from serving.store import Store

    settings = _settings()
    tax = load_taxonomy_option(taxonomy or settings.taxonomy)
    store = Store(
        settings.database_url,
        tax,
        schema=settings.database_schema,
        attributes=resolve_attributes(NO_ATTRIBUTES, settings.attributes),
    )
    try:
        store.migrate()
        yield store
    finally:
        store.dispose()


def store_tables(url: str, taxonomy: Taxonomy, *, schema: str | None) -> dict[str, pd.DataFrame]:
    """The store at ``url`` (migrated first, as every command does) as the data contract's
    tables, unvalidated (``serving.store.contract``): what ``nba train --store`` reads.
    Raises NotFoundError for a SQLite file that is not there (rather than creating one)."""
    from sqlalchemy.engine import make_url

    from features.errors import NotFoundError
    from serving.store import Store

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(str(parsed.database or "")).is_file():
        raise NotFoundError(f"--store {url!r}: no SQLite file {parsed.database!r}")
    store = Store(url, taxonomy, schema=schema)
    try:
        store.migrate()
        return store.contract_tables().tables
    finally:
        store.dispose()


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="uvicorn worker processes.")] = 1,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log every request (a line each; /metrics counts them either way).",
        ),
    ] = True,
) -> None:
    """Run the recommendation API under uvicorn. Settings come from NBA_* environment
    variables (see README, Serving); each worker builds its app and loads its models after
    the fork."""
    import uvicorn

    from serving.model_set import how_to_train, sqlite_file_missing

    settings = _settings()  # fail fast on a bad setting, before any worker starts
    # Migrate once, here, rather than in every worker at once: on a large store a migration
    # can outlast the busy timeout the other workers would wait on it.
    with _store() as store:
        where = store.url.split("@")[-1]
    typer.echo(
        f"store {where}; models: alias {settings.model_alias!r} at tracking URI "
        f"{settings.tracking_uri} (MLFLOW_TRACKING_URI)"
    )
    absent = sqlite_file_missing(settings.tracking_uri)
    if absent is not None:
        typer.secho(
            f"warning: {absent} does not exist, so the tracking URI holds no models and "
            "the service will not be ready (/ready says why); nothing is created there. "
            f"Point MLFLOW_TRACKING_URI at the store training wrote, or "
            f"{how_to_train(settings.tracking_uri)}",
            err=True,
            fg=typer.colors.YELLOW,
        )
    uvicorn.run(
        "serving.app:app_from_env",
        factory=True,
        # uvicorn's httptools protocol plus a request-head deadline and receive times
        http="serving.http_protocol:NbaHttpProtocol",
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=access_log,
    )


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="A name for the key, e.g. crm-widget.")],
    scopes: Annotated[
        str,
        typer.Option(
            "--scopes",
            help="Comma-separated: events:write, recommendations:read, worklists:read, "
            "insights:read, feedback:write, admin.",
        ),
    ],
    rep: Annotated[
        str | None,
        typer.Option(
            "--rep",
            help="Bind the key to this rep: it reads only the rep's worklist and accounts "
            "and gives feedback only on them.",
        ),
    ] = None,
) -> None:
    """Create an API key and print it (the only time it is shown; only a hash is stored).
    The name is only a label: what the key may do comes from --scopes and --rep."""
    with _store() as store:
        key = store.create_api_key(
            name, [s.strip() for s in scopes.split(",") if s.strip()], rep_id=rep
        )
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """List the keys (names, scopes, created, revoked, rep; never the secrets)."""
    with _store() as store:
        keys = store.api_keys()
    for key in keys:
        revoked = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        rep = f"rep {key.rep_id}" if key.rep_id is not None else "no rep"
        typer.echo(
            f"{key.name}\t{','.join(sorted(key.scopes))}\t"
            f"created {key.created_at:%Y-%m-%d %H:%M}\t{revoked}\t{rep}"
        )


@keys_app.command("revoke")
def keys_revoke(
    name: Annotated[str, typer.Option("--name", help="The active key to revoke.")],
) -> None:
    """Revoke the active key NAME (running services stop accepting it within
    NBA_KEY_CACHE_TTL_S seconds)."""
    with _store() as store:
        store.revoke_api_key(name)
    typer.echo(f"revoked {name}")


@app.command()
def load(
    data_dir: Annotated[
        Path, typer.Argument(help="Directory with <table>.csv or <table>.parquet files.")
    ],
    mapping: MappingOption = None,
    attributes: AttributesOption = None,
    taxonomy: TaxonomyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a data directory and bulk-load it into the service's store
    (NBA_DATABASE_URL), custom attributes included; loading twice stores nothing twice."""
    import pandas as pd
    from rich.progress import Progress, TaskID

    with _store(taxonomy) as store, Progress(transient=True, disable=as_json) as progress:
        started = time.perf_counter()
        data, report = read_data(data_dir, store.taxonomy, mapping, attributes)
        read_s = time.perf_counter() - started
        tasks: dict[str, TaskID] = {}

        def show(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(f"loading {table}", total=max(total, 1))
            progress.update(tasks[table], completed=done)

        result = store.load_data(data, progress=show)
        # Every account's feature state, so that its first request reads its state and
        # not all its rows (the load bumped every account's data version).
        started = time.perf_counter()
        n_states = store.build_feature_states(
            pd.Timestamp.now(tz="UTC"),
            progress=lambda done, total: show("feature states", done, total),
        )
        states_s = time.perf_counter() - started
        where = store.url.split("@")[-1]
    if as_json:
        echo_json(
            {
                "rows_in": result.input_rows,
                "rows_stored": result.stored_rows,
                "feature_states": n_states,
                "notes": report.notes,
                "read_seconds": round(read_s, 2),
                "load_seconds": round(result.seconds, 2),
                "feature_states_seconds": round(states_s, 2),
                "peak_memory_mb": peak_memory_mb(),
            }
        )
        return
    typer.echo(
        f"loaded {data_dir} into {where} in {result.seconds:.1f} s: "
        + ", ".join(
            f"{result.stored_rows[t]:,}/{result.input_rows[t]:,} {t}" for t in result.input_rows
        )
        + f"; {n_states:,} feature states in {states_s:.1f} s"
    )


@app.command()
def export(
    out: Annotated[
        Path, typer.Option("--out", help="Data directory to write (Parquet).", file_okay=False)
    ],
    attributes: AttributesOption = None,
    taxonomy: TaxonomyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the service's store (NBA_DATABASE_URL) as a data directory in the data
    contract, validated: its journey tables, every served decision as an exposure with the
    propensity and policy it was served with, converted feedback as touchpoints. `nba train
    --data OUT` then trains as `nba train --store URL` does."""
    from features.cli import load_declarations
    from features.load import read_tables, write_data_dir

    started = time.perf_counter()
    _, declared = load_declarations(None, attributes)
    with _store(taxonomy) as store:
        exported = store.contract_tables()
        data = read_tables(exported.tables, store.taxonomy, attributes=declared)
    write_data_dir(data, out)
    rows = {name: len(frame) for name, frame in data.tables().items()}
    if as_json:
        echo_json(
            {
                "out": str(out),
                "rows": rows,
                "counts": exported.counts,
                "seconds": round(time.perf_counter() - started, 2),
                "peak_memory_mb": peak_memory_mb(),
            }
        )
        return
    typer.echo(f"exported to {out}: " + ", ".join(f"{n:,} {t}" for t, n in rows.items()))
    for note in exported.notes():
        typer.echo(f"  {note}")


@app.command()
def score(
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write.", dir_okay=False)],
    k: Annotated[int, typer.Option("--k", min=1, help="Actions per account.")] = 3,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Score as of this time (default: now, UTC).")
    ] = None,
    chunk_accounts: Annotated[
        int, typer.Option("--chunk-accounts", min=1, help="Accounts read and scored at once.")
    ] = 5_000,
    store_scores: Annotated[
        bool,
        typer.Option(
            "--store-scores/--no-store-scores",
            help="Also store each account's score in the store (what worklists read).",
        ),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Score every account in the store (phase, churn risk and band, top-k actions) for CRM
    sync, with the champion models of MLFLOW_TRACKING_URI; writes Parquet and, unless
    --no-store-scores, each account's score into the store, so that reps' worklists read
    them instead of computing them (until the account's next event or a model change).
    --json prints one summary line: accounts, scores stored, seconds, model versions, the
    parts missing and why, how actions are ranked and the share of accounts whose first
    action is each item."""
    import pandas as pd
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from models.arbitration import load_arbitration_config
    from serving.model_holder import ModelHolder
    from serving.model_set import ModelLoadError
    from serving.scoring import Scorer

    settings = _settings()
    now = parse_time(as_of, "--as-of") if as_of else pd.Timestamp.now(tz="UTC")
    # The phase model is checked against the taxonomy the store was loaded with.
    taxonomy = load_taxonomy_option(settings.taxonomy)
    holder = ModelHolder(settings.tracking_uri, settings.model_alias, tuple(taxonomy.phases))
    if not holder.load():
        raise ModelLoadError(f"no models to score with: {holder.status().last_error}")
    started = time.perf_counter()
    frames = []
    stored_n = 0
    with (
        _store() as store,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            disable=as_json,
        ) as progress,
    ):
        scorer = Scorer(
            holder,
            store.taxonomy,
            load_arbitration_config(settings.arbitration_config),
            store.content(),
        )
        ids = store.account_ids()
        task = progress.add_task("scoring accounts", total=len(ids))
        for lo in range(0, len(ids), chunk_accounts):
            chunk = ids[lo : lo + chunk_accounts]
            versions = store.data_versions(chunk) if store_scores else {}
            data = store.accounts_data(chunk)
            frames.append(scorer.score_accounts_batch(data, now, k=k))
            if store_scores:
                stored = scorer.states_for_store(data, versions, now)
                store.save_scores(stored)
                stored_n += len(stored)
            progress.update(task, advance=len(chunk))
    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    scores.insert(1, "as_of", now)
    out.parent.mkdir(parents=True, exist_ok=True)
    scores.to_parquet(out, index=False)
    seconds = time.perf_counter() - started
    models = scorer.models
    if as_json:
        echo_json(
            {
                "out": str(out),
                "as_of": now.isoformat(),
                "accounts": len(scores),
                "stored": stored_n,
                "seconds": round(seconds, 2),
                "models": dict(models.versions),
                "missing": dict(models.missing),
                "ranking": _ranking(models),
                "first_action_share": _first_action_share(scores),
                "peak_memory_mb": peak_memory_mb(),
            }
        )
        return
    typer.echo(
        f"wrote {out}: {len(scores):,} accounts scored as of {now:%Y-%m-%d %H:%M} UTC "
        f"in {seconds:.1f} s (models {dict(models.versions)})"
    )
    for part, why in models.missing.items():
        typer.echo(f"missing {part}: {why}")


def _ranking(models: ModelSet) -> str | None:
    """How the served next-content model ranks actions (None without one)."""
    from models.contract import CONTROL_PARAM, NEXT_CONTENT

    if models.next_content is None:
        return None
    control = models.run_params.get(NEXT_CONTENT, {}).get(CONTROL_PARAM)
    return f"uplift over {control}" if control else "response probability"


def _first_action_share(scores: pd.DataFrame) -> dict[str, float]:
    """Content id (``none``: no action) -> the share of accounts whose first action it is."""
    if scores.empty or "action_1_content_id" not in scores:
        return {}
    first = scores["action_1_content_id"].astype(object).fillna("none")
    return {str(c): round(float(v), 4) for c, v in first.value_counts(normalize=True).items()}
