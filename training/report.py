"""The quality report of the current champions: model vs baselines vs ceiling, per model."""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient

from models.contract import CHAMPION
from training.result import MODEL_NAMES, REGISTERED_NAMES
from training.tracking import REPORT_ARTIFACT, champion_version


def champions_report() -> str:
    """Markdown: one section per model with a champion, holding the quality table its
    training run logged, headed by version, run and training-set fingerprint."""
    client = MlflowClient()
    sections = ["# journey-nba model quality (champions)", ""]
    missing = []
    for model in MODEL_NAMES:
        name = REGISTERED_NAMES[model]
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
