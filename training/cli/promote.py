"""``nba promote``: move a model's ``champion`` alias to a better version; ``nba challenge``:
put a next-content version on trial beside the champion."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from features.cli import (
    AttributesOption,
    MappingOption,
    StoreOption,
    StoreSchemaOption,
    TaxonomyOption,
    load_taxonomy_option,
)
from features.errors import InvalidInputError
from training.cli.options import (
    ForceOption,
    OutcomesOption,
    RewardEventOption,
    RewardOption,
    RewardWindowOption,
    TrackingOption,
    prepare_source,
    reward_of,
    store_source,
)

if TYPE_CHECKING:
    from features.taxonomy import Taxonomy
    from training.train import Prepared


def promote(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Argument(help="phase, next-content or a declared outcome (churn, ...).")
    ],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Data directory to build the test split from; default ./data."),
    ] = None,
    store: StoreOption = None,
    store_schema: StoreSchemaOption = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Challenger version (default: newest).")
    ] = None,
    as_of_dates: Annotated[int, typer.Option("--as-of-dates", min=4)] = 12,
    tracking_uri: TrackingOption = None,
    mapping: MappingOption = None,
    attributes: AttributesOption = None,
    taxonomy: TaxonomyOption = None,
    force: ForceOption = False,
    reward: RewardOption = "response",
    reward_event: RewardEventOption = None,
    reward_window_days: RewardWindowOption = 7,
    outcomes: OutcomesOption = None,
    arbitration: Annotated[
        Path | None,
        typer.Option(
            "--arbitration",
            help="The service's arbitration policy file, for judging next content on the "
            "served log as the service would rank with it (default: the shipped one).",
        ),
    ] = None,
) -> None:
    """Score the newest version and the champion on the same test data; move `champion` to
    the newcomer only if it is better on the model's primary metric and beat its strongest
    baseline on the validation split (its gate), unless --force. Read DIR through --mapping
    as in training; custom attributes get their levels from DIR as in training (the same
    data gives the same levels); the reward of a next-action model must be the one it was
    trained for. Next content on data holding the service's decisions (--store, or the
    directory nba export writes) is judged on that served log instead: the newest version's
    top-1 policy valued off-policy (IPS, SNIPS, DR, 95 % intervals) on the decisions the
    service served beside the champion's own top-1 policy on the same decisions, promoted
    only when the paired difference's lower bound is above 0 (a tie loses; without a
    champion, when its DR lower bound beats the served value); the comparison is logged to
    MLflow. The newcomer's policy ranks as the service would
    rank with it: the champion phase and churn models' answers on each decision day, the
    arbitration policy's fit, churn lever and rules (--arbitration). It counts only the
    decisions served after what the version learned from: run it before the next nba train,
    so a version trained a retrain period ago is judged on that whole period's decisions."""
    from models.outcomes import load_outcomes
    from training.model_steps import model_steps, parse_models
    from training.registry import promote as run_promotion
    from training.tracking import configure_tracking
    from training.train import scorer_on_test_split

    tax = load_taxonomy_option(taxonomy)
    declared = load_outcomes(outcomes, taxonomy=tax)
    chosen = parse_models(model, declared)
    if len(chosen) != 1:
        raise InvalidInputError(f"model {model!r}: promote one model at a time")
    name = chosen[0]
    configure_tracking(tracking_uri)
    rewarded = reward_of(reward, reward_event, reward_window_days)
    prepared = prepare_source(
        data,
        tax,
        mapping,
        as_of_dates,
        "pandas",
        None,
        attributes=attributes,
        models=[name],
        reward=rewarded,
        store=store_source(ctx, data, store, store_schema, mapping),
    )
    if name == "next-content":
        from training.next_content import has_served_log

        if has_served_log(prepared.data):
            typer.echo(
                _promote_on_log(
                    prepared, tax, version=version, force=force, arbitration=arbitration
                )
            )
            return
    score, paired = scorer_on_test_split(name, prepared, tax, declared)
    metric = model_steps(name, declared).primary_metric.removeprefix("model.")
    outcome = run_promotion(name, score, metric=metric, version=version, force=force, paired=paired)
    typer.echo(outcome.format())


def _promote_on_log(
    prepared: Prepared,
    taxonomy: Taxonomy,
    *,
    version: str | None,
    force: bool,
    arbitration: Path | None = None,
) -> str:
    """``nba promote next-content`` on data holding the service's decisions."""
    from mlflow import MlflowClient

    from models.arbitration import load_arbitration_config
    from training.log_promotion import (
        learned_until,
        load_service_models,
        promote_on_log,
        served_decisions,
    )
    from training.registry import end_trial, latest_version, load_version
    from training.result import registered_name
    from training.served_policy import judge, known_contacts
    from training.tracking import champion_version

    name = registered_name("next-content")
    challenger = version or latest_version(name)
    client = MlflowClient()
    run_id = client.get_model_version(name, challenger).run_id
    after = learned_until(client.get_run(str(run_id)).data.tags) if run_id else None
    models = load_service_models()
    current = champion_version(name)
    rows, columns = served_decisions(
        prepared.data,
        taxonomy,
        after=after,
        attributes=prepared.attributes,
        models=models,
    )
    judgement = judge(
        load_version(name, challenger),
        rows,
        columns,
        prepared.data.content,
        taxonomy,
        config=load_arbitration_config(arbitration) if models is not None else None,
        contacts=known_contacts(prepared.data),
        champion=None if current is None else load_version(name, current),
    )
    outcome = promote_on_log(challenger, judgement, force=force).format()
    # The judgement ends the version's trial: promoted, it serves every decision as the
    # champion; refused, it serves none.
    ended = end_trial(name, challenger)
    return outcome if ended.ended is None else f"{outcome}\n  {ended.format()}"


def challenge(
    model: Annotated[str, typer.Argument(help="next-content: the policy tried on decisions.")],
    version: Annotated[
        str | None, typer.Option("--version", help="The version to try (default: newest).")
    ] = None,
    stop: Annotated[
        bool, typer.Option("--stop", help="End the trial: the champion serves every decision.")
    ] = False,
    tracking_uri: TrackingOption = None,
    force: ForceOption = False,
) -> None:
    """Put a next-content version on trial beside the champion (the `challenger` alias):
    the service gives its own pick NBA_CHALLENGER_SHARE of the decisions (default 0.2),
    each logged with its exact propensity under the mixture, so that `nba promote
    next-content --store URL` judges it on decisions it served itself rather than on the
    few the champion's exploration served. The judgement ends the trial; --stop ends it
    now. A version that lost its gate is refused (--force tries it anyway, tagged)."""
    from training.registry import end_trial, start_trial
    from training.result import registered_name
    from training.tracking import configure_tracking

    if model != "next-content":
        raise InvalidInputError(
            f"model {model!r}: only next-content is tried on live decisions (its policy "
            "chooses what is served; the others are promoted on their test split)"
        )
    configure_tracking(tracking_uri)
    name = registered_name("next-content")
    trial = end_trial(name, version) if stop else start_trial(name, version, force=force)
    typer.echo(trial.format())
