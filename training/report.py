"""Quality reports: per model, the verdict against its strongest baseline and the quality
table of the champion (or, when none, the newest version) beside its baselines and the
simulator's oracle; and one binary outcome model's figures beside its peer, with 95 %
intervals."""

from __future__ import annotations

import math
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.errors import InvalidInputError
from models.contract import CHAMPION, OUTCOME_KIND, OUTCOME_KIND_TAG
from training.registry import RegistryError, latest_version
from training.result import MODEL_NAMES, REGISTERED_NAMES, registered_name
from training.tracking import FORCED_TAG, REPORT_ARTIFACT, champion_version, gate_from_tags


def registered_names() -> list[str]:
    """The registered models a report covers: the three of ``training.result`` and every
    binary outcome model (versions tagged ``nba.kind=outcome``), in that order."""
    names = [REGISTERED_NAMES[m] for m in MODEL_NAMES]
    try:
        tagged = set(outcome_model_names())
    except MlflowException:  # a store that cannot filter on tags lists no outcome models
        tagged = set()
    return names + sorted(tagged - set(names))


def gates_table(names: list[str]) -> str:
    """Markdown: per registered model, the champion (or newest) version's gate on the
    validation split and the verdict: wins, LOSES, or LOSES but champion by --force."""
    client = MlflowClient()
    lines = [
        "## gates (validation split: model vs its strongest baseline, 95 % intervals)",
        "",
        "| model | version | metric | model value | baseline | baseline value "
        "| difference, paired | verdict |",
        "|---|---|---|---:|---|---:|---:|---|",
    ]
    for name in names:
        champion = champion_version(name)
        try:
            version = champion or latest_version(name)
        except RegistryError:
            lines.append(f"| {name} | - | | | | | | not trained |")
            continue
        tags = client.get_model_version(name, version).tags or {}
        gate = gate_from_tags(tags)
        label = f"v{version}" + (f" ({CHAMPION})" if champion else " (no champion)")
        if gate is None:
            lines.append(f"| {name} | {label} | | | | | | no gate recorded |")
            continue
        verdict = gate.verdict
        if tags.get(FORCED_TAG) == "true":
            verdict += " (champion by --force)"
        lines.append(
            f"| {name} | {label} | {gate.metric} | {_with_interval(gate.model, gate.model_ci)} | "
            f"{gate.baseline} | {_with_interval(gate.baseline_value, gate.baseline_ci)} | "
            f"{gate.difference_text or '-'} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def _with_interval(value: float, interval: tuple[float, float]) -> str:
    """``value [low, high]``, or the value alone for a gate stored without an interval."""
    low, high = interval
    if math.isfinite(low) and math.isfinite(high):
        return f"{value:.4f} [{low:.4f}, {high:.4f}]"
    return f"{value:.4f}"


def verdict_line(name: str, version: str, *, champion: bool) -> str:
    """One sentence: does the version beat its strongest baseline on the validation split
    (its gate), and is it served."""
    tags = MlflowClient().get_model_version(name, version).tags or {}
    gate = gate_from_tags(tags)
    served = (
        "served (champion by --force)"
        if champion and tags.get(FORCED_TAG) == "true"
        else "served (champion)"
        if champion
        else f"not served (no champion; `nba promote {name.removeprefix('nba-')} --data DIR "
        "--force` serves it anyway)"
    )
    if gate is None:
        return f"**Verdict:** no gate recorded; {served}."
    verb = "beats" if gate.passed else "ties, so LOSES to" if gate.tied else "LOSES to"
    difference = f", difference {gate.difference_text}" if gate.paired else ""
    return (
        f"**Verdict:** {verb} its strongest baseline, {gate.baseline}, on the validation "
        f"split ({gate.metric} {gate.model:.4f} vs {gate.baseline_value:.4f}{difference}); "
        f"{served}."
    )


def champions_report() -> str:
    """Markdown: the gates table (:func:`gates_table`), then one section per trained model
    (its champion, else its newest version) with its verdict (:func:`verdict_line`) and the
    quality table its training run logged, headed by version, run and training-set
    fingerprint. Columns named ``reference`` are the simulator's truth, for orientation: a
    model may score above them on a finite test split; only an ``oracle`` is an upper bound."""
    client = MlflowClient()
    names = registered_names()
    sections = ["# journey-nba model quality", "", gates_table(names)]
    untrained = []
    for name in names:
        champion = champion_version(name)
        try:
            version = champion or latest_version(name)
        except RegistryError:
            untrained.append(name)
            continue
        mv = client.get_model_version(name, version)
        run = client.get_run(str(mv.run_id))
        table = mlflow.artifacts.load_text(f"runs:/{mv.run_id}/{REPORT_ARTIFACT}")
        primary = run.data.tags.get("nba.primary_metric", "")
        fingerprint = run.data.params.get("training_set_fingerprint", "")[:12]
        sections += [
            f"## {name} v{version} ({CHAMPION if champion else 'not champion'})",
            "",
            verdict_line(name, version, champion=champion is not None),
            "",
            f"run `{mv.run_id}`, training set `{fingerprint}`, "
            f"feature pipeline {run.data.params.get('feature_pipeline_version', '?')}, "
            f"primary metric `{primary}` = {run.data.metrics.get(primary, float('nan')):.4f}",
            "",
            table.strip(),
            "",
        ]
    if untrained:
        sections += [f"Not trained: {', '.join(untrained)} (run `nba train`).", ""]
    return "\n".join(sections)


def outcome_model_names() -> list[str]:
    """Registered names of the binary outcome models (versions tagged ``nba.kind=outcome``)."""
    found = MlflowClient().search_model_versions(f"tags.`{OUTCOME_KIND_TAG}` = '{OUTCOME_KIND}'")
    return sorted({str(v.name) for v in found})


# The metrics an outcome report shows side by side (model vs peer, 95 % intervals).
OUTCOME_REPORT_METRICS = ("roc_auc", "pr_auc")


def outcome_report(outcome: str, *, version: str | None = None) -> dict[str, Any]:
    """The test-split figures of a binary outcome model (``nba-<outcome>``; ``version``
    defaults to the newest) beside its peer, with 95 % bootstrap intervals, the split, the
    gate on validation and a verdict per metric (from the interval of the paired
    difference: ``model ahead``, ``peer ahead`` or ``no clear difference``).

    Raises ``InvalidInputError`` when no such model was trained."""
    client = MlflowClient()
    name = registered_name(outcome)
    try:
        versions = list(client.search_model_versions(f"name='{name}'"))
    except MlflowException:
        versions = []
    if not versions:
        raise InvalidInputError(
            f"no model {name!r} in the registry; expected `nba train outcome:{outcome}` first"
        )
    chosen = (
        max(versions, key=lambda v: int(v.version))
        if version is None
        else next((v for v in versions if str(v.version) == version), None)
    )
    if chosen is None:
        raise InvalidInputError(
            f"model {name!r} has no version {version}; expected one of "
            f"{sorted(int(v.version) for v in versions)}"
        )
    run = client.get_run(str(chosen.run_id))
    m, params, tags = run.data.metrics, run.data.params, run.data.tags
    # the outcome's declared peer (the difference intervals are the model's against it);
    # the gate's bar is the strongest baseline on validation, named in "gate"
    peer = params.get("peer") or params.get("gate_baseline", "baseline_rfm_logistic")
    metrics = {}
    for metric in OUTCOME_REPORT_METRICS:
        low = m.get(f"model_minus_peer.{metric}_ci_low", float("nan"))
        high = m.get(f"model_minus_peer.{metric}_ci_high", float("nan"))
        verdict = "model ahead" if low > 0 else "peer ahead" if high < 0 else "no clear difference"
        metrics[metric] = {
            "model": _round(m.get(f"model.{metric}")),
            "peer": _round(m.get(f"{peer}.{metric}")),
            "model_ci": [
                _round(m.get(f"model.{metric}_ci_low")),
                _round(m.get(f"model.{metric}_ci_high")),
            ],
            "peer_ci": [
                _round(m.get(f"{peer}.{metric}_ci_low")),
                _round(m.get(f"{peer}.{metric}_ci_high")),
            ],
            "difference_ci": [_round(low), _round(high)],
            "verdict": verdict,
        }
    gate_model = float(params.get("gate_model_valid_roc_auc", "nan"))
    gate_peer = float(params.get("gate_baseline_valid_roc_auc", "nan"))
    # the version's own gate (its tags) decides, as it did for the alias; the run's params
    # are the fallback for a version logged without one
    gate = gate_from_tags(client.get_model_version(name, str(chosen.version)).tags or {})
    return {
        "outcome": outcome,
        "model": f"{name} v{chosen.version}",
        "score_at": params.get("score_at", ""),
        "peer": peer,
        "split": _split_summary(tags, params),
        "metrics": metrics,
        "gate": {
            "metric": "valid roc_auc",
            "baseline": params.get("gate_baseline", peer),
            "model": _round(gate_model),
            "peer": _round(gate_peer),
            "difference_ci": (
                [_round(v) for v in gate.difference_ci]
                if gate is not None and gate.paired
                else None
            ),
            "passed": gate.passed if gate is not None else bool(gate_model > gate_peer),
        },
        "verdict": "; ".join(f"{k}: {v['verdict']}" for k, v in metrics.items()),
    }


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 4)


def _split_summary(tags: dict[str, str], params: dict[str, str]) -> dict[str, Any]:
    """Per split: the first and last as-of date, how many distinct dates and rows."""
    out: dict[str, Any] = {"horizon_days": int(params.get("horizon_days", "0") or 0)}
    for part, rows in (
        ("train", "n_train_rows"),
        ("valid", "n_valid_rows"),
        ("test", "n_test_rows"),
    ):
        tag = tags.get(f"nba.as_of.{part}", "")
        dates = [d for d in tag.replace("..", ",").split(",") if d]
        count = tags.get(f"nba.as_of.{part}.count")  # set when the dates were summarised
        out[part] = {
            "as_of": [dates[0][:10], dates[-1][:10]] if dates else [],
            "dates": int(count) if count else len(dates),
            "rows": int(params.get(rows, "0") or 0),
        }
    return out
