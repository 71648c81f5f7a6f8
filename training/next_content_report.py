"""The next-content model's quality report (Markdown): response metrics, each policy's
true value and off-policy estimates with their 95 % intervals, and which test decisions the
policy values rest on."""

from __future__ import annotations

import numpy as np

from training.policy import POLICY_DECISIONS_PARAM


def quality_report(metrics: dict[str, float]) -> str:
    """A Markdown quality table: response metrics, then each policy's true value (when
    known) and off-policy estimates, each with its 95 % interval, then the model against the
    random-to-oracle gain and the hand rule, and the doubly robust estimate against the true
    value."""

    def fmt(key: str) -> str:
        v = metrics.get(key)
        if v is None or np.isnan(v):
            return ""
        low, high = metrics.get(key + "_ci_low"), metrics.get(key + "_ci_high")
        if low is None or high is None:
            return f"{v:.4f}"
        return f"{v:.4f} [{low:.4f}, {high:.4f}]"

    lines = [
        "## Next content",
        "",
        f"ROC-AUC of response (test exposures): {fmt('model.roc_auc')} (true probabilities: "
        f"{fmt('oracle.roc_auc')}); PR-AUC "
        f"{fmt('model.pr_auc')}; Brier {fmt('model.brier')}; response rate "
        f"{fmt('test.response_rate')} over {int(metrics.get('test.exposures', 0))} exposures.",
        "",
        _judged_decisions(metrics),
        "",
        "| policy | true value | IPS | SNIPS | doubly robust |",
        "|---|---|---|---|---|",
    ]
    for who, label in (
        ("model", "model top-1"),
        ("baseline_random", "random"),
        ("baseline_popular", "most popular per phase"),
        ("baseline_hand_rule", "hand rule (role fit + topic share)"),
        ("baseline_logging", "logging policy"),
        ("oracle", "oracle (true best item)"),
    ):
        observed = fmt(who + ".observed_value")
        lines.append(
            f"| {label} | {fmt(who + '.true_value')} | {fmt(who + '.ips_value') or observed} | "
            f"{fmt(who + '.snips_value') or observed} | {fmt(who + '.dr_value') or observed} |"
        )
    if "model.share_of_oracle_gain" in metrics:
        covers = "covers" if metrics.get("model.dr_covers_truth") == 1.0 else "does NOT cover"
        lines += [
            "",
            f"Model: {fmt('model.lift_over_logging')} x the logging policy's true value; "
            f"{fmt('model.share_of_oracle_gain')} of the way from random to the oracle (hand "
            f"rule {fmt('baseline_hand_rule.share_of_oracle_gain')}); its gain over random is "
            f"{fmt('model.gain_over_hand_rule')} x the hand rule's. Doubly robust minus true "
            f"value {fmt('model.dr_error')} ({fmt('model.dr_relative_error')} relative); its "
            f"interval {covers} the true value.",
        ]
    return "\n".join(lines) + "\n"


def _judged_decisions(metrics: dict[str, float]) -> str:
    """The sentence saying which test decisions the policy values rest on."""
    n = int(metrics.get("decisions", 0))
    share = metrics.get("policy.decision_share", 1.0)
    if share >= 1.0:
        return f"Policy values on every test decision ({n:,})."
    return (
        f"Policy values on {n:,} test decisions, a seeded sample of whole accounts "
        f"({share:.1%} of the test decisions; `--param next-content.{POLICY_DECISIONS_PARAM}=0` "
        "judges every one)."
    )
