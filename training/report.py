"""The quality report of the current champions: model vs baselines vs ceiling, per model."""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from models.contract import CHAMPION, KIND_TAG, OUTCOME_KIND
from training.registry import RegistryError, latest_version
from training.result import MODEL_NAMES, REGISTERED_NAMES
from training.tracking import FORCED_TAG, REPORT_ARTIFACT, champion_version, gate_from_tags


def registered_names() -> list[str]:
    """The registered models a report covers: the three of ``training.result`` and every
    binary outcome model (versions tagged ``nba.kind=outcome``), in that order."""
    names = [REGISTERED_NAMES[m] for m in MODEL_NAMES]
    try:
        tagged = {
            str(v.name)
            for v in MlflowClient().search_model_versions(f"tags.`{KIND_TAG}` = '{OUTCOME_KIND}'")
        }
    except MlflowException:  # a store that cannot filter on tags lists no outcome models
        tagged = set()
    return names + sorted(tagged - set(names))


def gates_table(names: list[str]) -> str:
    """Markdown: per registered model, the champion (or newest) version's gate on the
    validation split and the verdict: wins, LOSES, or LOSES but champion by --force."""
    client = MlflowClient()
    lines = [
        "## gates (validation split: model vs its strongest baseline)",
        "",
        "| model | version | metric | model value | baseline | baseline value | verdict |",
        "|---|---|---|---:|---|---:|---|",
    ]
    for name in names:
        champion = champion_version(name)
        try:
            version = champion or latest_version(name)
        except RegistryError:
            lines.append(f"| {name} | - | | | | | not trained |")
            continue
        tags = client.get_model_version(name, version).tags or {}
        gate = gate_from_tags(tags)
        label = f"v{version}" + (f" ({CHAMPION})" if champion else " (no champion)")
        if gate is None:
            lines.append(f"| {name} | {label} | | | | | no gate recorded |")
            continue
        verdict = "wins" if gate.passed else "LOSES"
        if tags.get(FORCED_TAG) == "true":
            verdict += " (champion by --force)"
        lines.append(
            f"| {name} | {label} | {gate.metric} | {gate.model:.4f} | {gate.baseline} | "
            f"{gate.baseline_value:.4f} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def champions_report() -> str:
    """Markdown: the gates table (:func:`gates_table`), then one section per model with a
    champion, holding the quality table its training run logged, headed by version, run and
    training-set fingerprint."""
    client = MlflowClient()
    names = registered_names()
    sections = ["# journey-nba model quality (champions)", "", gates_table(names)]
    missing = []
    for name in names:
        version = champion_version(name)
        if version is None:
            missing.append(name)
            continue
        mv = client.get_model_version(name, version)
        run = client.get_run(str(mv.run_id))
        table = mlflow.artifacts.load_text(f"runs:/{mv.run_id}/{REPORT_ARTIFACT}")
        primary = run.data.tags.get("nba.primary_metric", "")
        fingerprint = run.data.params.get("training_set_fingerprint", "")[:12]
        sections += [
            f"## {name} v{version} ({CHAMPION})",
            "",
            f"run `{mv.run_id}`, training set `{fingerprint}`, "
            f"feature pipeline {run.data.params.get('feature_pipeline_version', '?')}, "
            f"primary metric `{primary}` = {run.data.metrics.get(primary, float('nan')):.4f}",
            "",
            table.strip(),
            "",
        ]
    if missing:
        sections += [f"No champion yet for: {', '.join(missing)} (run `nba train`).", ""]
    return "\n".join(sections)
