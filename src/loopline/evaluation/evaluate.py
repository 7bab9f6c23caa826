"""Holdout evaluation, the champion comparison and the fail-closed gate.

The gate configuration is one mapping (a plain `dict` KFP parameter). Either the legacy form,
metric rules only:

    {"roc_auc": 0.8, "log_loss": {"max": 0.4}}

or sections (any of them; unknown keys are errors):

    {
      "absolute": {"roc_auc": 0.85, "log_loss": {"max": 0.4}},
      "relative": {"primary": "roc_auc", "min_improvement": 0.0, "min_improvement_relative": 0.01,
                   "max_regression": {"accuracy": 0.01}, "max_regression_relative": {"log_loss": 0.05}},
      "latency": {"max_single_row_p95_ms": 50, "max_batch_p95_ms": 500},
      "fairness": {"slice_column": "channel", "max_demographic_parity_difference": 0.1,
                   "max_auc_gap": 0.1, "min_slice_rows": 20},
      "allow_champion_load_failure": false,
      "baseline": {"metric": "roc_auc", "tolerance": 0.005}
    }

A bare number is a floor for higher-is-better metrics and a ceiling for lower-is-better ones
(`LOWER_IS_BETTER`). Relative rules compare with the champion evaluated on the same holdout;
with no champion yet (the first model) they are skipped and the report says so. A champion that
cannot be loaded fails the gate unless `allow_champion_load_failure` is true. No rule at all is
an error, and so is a gate where no rule could be applied. The baseline rule is on by default
(`gate_config`): the challenger must not be worse than a logistic regression fitted on the
training split by more than the tolerance.

The holdout metrics are computed in `holdout_metrics`, the rules parsed in `gate_config`; this
module judges (the gate), writes the report and evaluates the champion.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from loopline.core.errors import one_line
from loopline.core.html_safety import md, md_code
from loopline.data.spec import DatasetSpec
from loopline.evaluation.baseline import NAME as BASELINE_NAME
from loopline.evaluation.gate import BaselineRule, GateConfig, RelativeRule, Rule, parse_gate_config
from loopline.evaluation.metrics import (
    DEFAULT_MIN_SLICE_ROWS,
    LOWER_IS_BETTER,
    Evaluation,
    evaluate_model_dir,
)

log = logging.getLogger(__name__)


@dataclass
class Champion:
    """What the evaluation step found for the `champion` alias."""

    status: str  # "none" (first model), "loaded", "failed", "not_looked_up" (no registry given)
    version: str = ""
    model_uri: str = ""
    evaluation: Evaluation | None = None
    error: str = ""

    @property
    def metrics(self) -> dict[str, float]:
        return self.evaluation.metrics if self.evaluation else {}

    def describe(self) -> str:
        if self.status == "none":
            return "none yet (first model)"
        if self.status == "not_looked_up":
            return "not looked up (no tracking_uri and model_name given)"
        if self.status == "failed":
            where = f"version {self.version} " if self.version else ""
            return f"{where}could not be loaded: {self.error}"
        return f"version {self.version} (`{self.model_uri}`), evaluated on the same holdout"

@dataclass
class GateCheck:
    metric: str
    value: float | None  # the challenger's
    op: str
    threshold: float
    passed: bool
    reason: str
    kind: str = "absolute"  # absolute | relative | latency | fairness | champion | config
    champion: float | None = None
    rule: str = ""  # the threshold as shown in the report
    status: str = ""  # pass | FAIL | skipped | allowed
    baseline: float | None = None  # the baseline's value of the metric

    def __post_init__(self):
        self.rule = self.rule or f"{self.op} {self.threshold:g}"
        self.status = self.status or ("pass" if self.passed else "FAIL")

@dataclass
class GateDecision:
    passed: bool
    checks: list[GateCheck] = field(default_factory=list)
    champion: Champion | None = None
    baseline: Evaluation | None = None

    @property
    def reason(self) -> str:
        failed = [c.reason for c in self.checks if not c.passed]
        return "all gates passed" if not failed else "; ".join(failed)

def _higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER

def _absolute_check(rule: Rule, metrics: dict[str, float], notes: dict[str, str], champion: dict[str, float]) -> GateCheck:
    value = metrics.get(rule.metric)
    if value is None:
        why = notes.get(rule.metric) or f"not computed (known: {', '.join(sorted(metrics))})"
        ok, reason = False, f"{rule.metric}: {why}"
    elif not math.isfinite(value):
        ok, reason = False, f"{rule.metric}: value is {value}"
    else:
        ok = value >= rule.threshold if rule.op == ">=" else value <= rule.threshold
        reason = f"{rule.metric} {value:.4f} {'meets' if ok else 'misses'} {rule.op} {rule.threshold:g}"
    return GateCheck(rule.metric, value, rule.op, rule.threshold, ok, reason, kind=rule.kind,
                     champion=champion.get(rule.metric))

def _relative_check(rule: RelativeRule, metrics: dict[str, float], champion: dict[str, float]) -> GateCheck:
    sign = 1.0 if _higher_is_better(rule.metric) else -1.0
    value, base = metrics.get(rule.metric), champion.get(rule.metric)
    shown = f"{rule.threshold:+.2%}" if rule.relative else f"{rule.threshold:+g}"
    if rule.mode == "improvement":
        op, text = ">=", f"Δ ≥ {shown}" if not rule.relative else f"Δ ≥ {shown} of champion"
    else:
        shown = f"{rule.threshold:.2%}" if rule.relative else f"{rule.threshold:g}"
        op, text = "<=", f"worse by ≤ {shown}" + (" of champion" if rule.relative else "")

    def check(ok: bool, reason: str) -> GateCheck:
        return GateCheck(rule.metric, value, op, rule.threshold, ok, reason, kind="relative", champion=base, rule=text)

    if value is None or base is None or not (math.isfinite(value) and math.isfinite(base)):
        who = "challenger" if value is None or not math.isfinite(value) else "champion"
        return check(False, f"{rule.metric}: no finite value for the {who}")
    gain = sign * (value - base)  # > 0: the challenger is better
    if rule.relative:
        if base == 0:
            return check(False, f"{rule.metric}: the champion's value is 0, a relative change is undefined")
        gain /= abs(base)
    if rule.mode == "improvement":
        ok = gain >= rule.threshold
        delta = f"{gain:+.2%}" if rule.relative else f"{gain:+.4f}"
        verb = "improves" if gain > 0 else "changes"
        return check(ok, f"{rule.metric} {verb} by {delta} over the champion ({value:.4f} vs {base:.4f}); "
                         f"{'meets' if ok else 'misses'} {text}")
    worse = max(0.0, -gain)
    ok = worse <= rule.threshold
    amount = f"{abs(gain):.2%}" if rule.relative else f"{abs(gain):.4f}"
    direction = "worse" if gain < 0 else "better"
    return check(ok, f"{rule.metric} is {direction} than the champion by {amount} ({value:.4f} vs {base:.4f}); "
                     f"{'within' if ok else 'exceeds'} {text}")

def _baseline_check(rule: BaselineRule, metrics: dict[str, float], baseline: Evaluation | None) -> GateCheck:
    sign = 1.0 if _higher_is_better(rule.metric) else -1.0
    value = metrics.get(rule.metric)
    base = baseline.metrics.get(rule.metric) if baseline else None
    text = f"worse by ≤ {rule.tolerance:g}"

    def check(ok: bool, reason: str) -> GateCheck:
        return GateCheck(rule.metric, value, "<=", rule.tolerance, ok, reason, kind="baseline", rule=text,
                         baseline=base)

    if baseline is None:
        return check(False, "the baseline was not evaluated (the gate needs the training split to fit it)")
    if value is None or base is None or not (math.isfinite(value) and math.isfinite(base)):
        who = "challenger" if value is None or not math.isfinite(value) else "baseline"
        return check(False, f"{rule.metric}: no finite value for the {who}")
    gain = sign * (value - base)
    ok = max(0.0, -gain) <= rule.tolerance
    direction = "worse" if gain < 0 else "better"
    return check(ok, f"{rule.metric} is {direction} than the {_baseline_name()} by {abs(gain):.4f} "
                     f"({value:.4f} vs {base:.4f}); {'within' if ok else 'exceeds'} {text}")


def _baseline_name() -> str:
    return f"{BASELINE_NAME} baseline"


def judge(
    metrics: dict[str, float],
    config: GateConfig,
    *,
    champion: Champion | None = None,
    notes: dict[str, str] | None = None,
    baseline: Evaluation | None = None,
) -> GateDecision:
    """Apply every rule, fail closed. `champion=None` means there is no champion (first model);
    `baseline` is the baseline's evaluation on the same holdout (the baseline rule fails without it)."""
    champion = champion or Champion(status="none")
    notes = notes or {}
    decision = GateDecision(passed=True, champion=champion, baseline=baseline)
    for rule in config.rules:
        decision.checks.append(_absolute_check(rule, metrics, notes, champion.metrics))
    if champion.status == "failed":
        allowed = config.allow_champion_load_failure
        decision.checks.append(
            GateCheck("champion", None, "", 0.0, allowed, f"champion {champion.describe()}"
                      + ("; allowed by allow_champion_load_failure, relative gates skipped" if allowed else ""),
                      kind="champion", rule="loads", status="allowed" if allowed else "FAIL")
        )
    for rule in config.relative:
        if champion.status == "loaded":
            decision.checks.append(_relative_check(rule, metrics, champion.metrics))
        else:
            why = {"none": "no champion yet (first model)", "failed": "the champion could not be loaded"}.get(
                champion.status, "the champion was not looked up")
            check = _relative_check(rule, metrics, {})
            decision.checks.append(
                GateCheck(rule.metric, metrics.get(rule.metric), check.op, rule.threshold, True,
                          f"{why}: relative gate skipped", kind="relative", rule=check.rule, status="skipped")
            )
    if config.baseline is not None:
        decision.checks.append(_baseline_check(config.baseline, metrics, baseline))
    if baseline is not None:
        for c in decision.checks:
            c.baseline = baseline.metrics.get(c.metric)
    applied = [c for c in decision.checks if c.status in ("pass", "FAIL") and c.kind != "baseline"]
    if not applied and config.rules + config.relative:
        decision.checks.append(
            GateCheck("-", None, "", 0.0, False,
                      "no gate could be applied: the only rules are relative and there is no champion to compare "
                      "with; add an absolute, latency or fairness rule", kind="config", rule="-")
        )
    decision.passed = all(c.passed for c in decision.checks)
    log.info("gate %s: %s", "PASSED" if decision.passed else "FAILED", decision.reason)
    return decision

def gate(metrics: dict[str, float], thresholds: dict[str, Any], *, champion: Champion | None = None,
         notes: dict[str, str] | None = None, baseline: Evaluation | None = None) -> GateDecision:
    """Parse `thresholds` and judge `metrics` (see `judge`)."""
    return judge(metrics, parse_gate_config(thresholds), champion=champion, notes=notes, baseline=baseline)

def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4f}"

def gate_table_markdown(decision: GateDecision, *, model_uri: str = "", rows: int | None = None,
                        holdout_sha256: str = "") -> str:
    """The head of the report: the verdict, what was judged, and one row per gate."""
    lines = [f"## Evaluation gate: {'PASSED' if decision.passed else 'FAILED'}", ""]
    if model_uri:
        lines.append(f"Model judged: `{model_uri}`")
    if rows is not None:
        lines.append(f"Holdout rows: {rows}" + (f" (SHA-256 `{holdout_sha256[:16]}…`)" if holdout_sha256 else ""))
    if decision.champion is not None:
        skipped = any(c.kind == "relative" and c.status == "skipped" for c in decision.checks)
        lines.append(f"Champion: {decision.champion.describe()}" + ("; relative gates are skipped" if skipped else ""))
    if decision.baseline is not None:
        lines.append(f"Baseline: {_baseline_name()} fitted on the training split, evaluated on the same holdout")
    lines += [
        "",
        "| gate | metric | challenger | champion | baseline | threshold | verdict | reason |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in decision.checks:
        reason = c.reason.replace("|", "\\|")
        lines.append(
            f"| {c.kind} | {c.metric} | {_fmt(c.value)} | {_fmt(c.champion)} | {_fmt(c.baseline)} | {c.rule} | "
            f"{c.status} | {reason} |"
        )
    return "\n".join(lines) + "\n"

def gate_report_markdown(
    evaluation: Evaluation,
    decision: GateDecision,
    *,
    model_uri: str = "",
    holdout_sha256: str = "",
) -> str:
    """The whole report: the gate table, challenger and champion metrics, slices, confusion matrix."""
    champion = decision.champion.evaluation if decision.champion else None
    lines = [gate_table_markdown(decision, model_uri=model_uri, rows=evaluation.rows, holdout_sha256=holdout_sha256)]
    lines += ["### Holdout metrics", ""]
    if decision.baseline is not None:
        others = [("champion", champion.metrics)] if champion else []
        others.append(("baseline", decision.baseline.metrics))
        lines += ["| metric | challenger | " + " | ".join(name for name, _ in others) + " |",
                  "|---|---|" + "---|" * len(others)]
        for key, value in sorted(evaluation.metrics.items()):
            lines.append(f"| {key} | {_fmt(value)} | " + " | ".join(_fmt(m.get(key)) for _, m in others) + " |")
    elif champion:
        lines += ["| metric | challenger | champion | Δ |", "|---|---|---|---|"]
        for key, value in sorted(evaluation.metrics.items()):
            base = champion.metrics.get(key)
            delta = "—" if base is None else f"{value - base:+.4f}"
            lines.append(f"| {key} | {_fmt(value)} | {_fmt(base)} | {delta} |")
    else:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(evaluation.metrics.items())]
    if evaluation.slices:
        s = evaluation.slices
        positive = evaluation.classes[-1]
        lines += [
            "",
            f"### Slices of {md_code(s.column)} (fairness metrics use slices with at least {s.min_rows} rows)",
            "",
            f"| slice | rows | accuracy | roc_auc | predicted '{md(positive)}' |",
            "|---|---|---|---|---|",
        ]
        for row in s.slices:
            lines.append(
                f"| {md(row['slice'])} | {row['rows']} | {row['accuracy']:.4f} | {_fmt(row['roc_auc'])} | "
                f"{row['predicted_rate'][positive]:.4f} |"
            )
        for metric, why in sorted(evaluation.notes.items()):
            lines.append(f"\n{metric}: not computed, {why}.")
    lines += ["", "### Confusion matrix (rows: actual, columns: predicted)", ""]
    lines.append("| | " + " | ".join(md(c) for c in evaluation.classes) + " |")
    lines.append("|---" * (len(evaluation.classes) + 1) + "|")
    for label, row in zip(evaluation.classes, evaluation.confusion_matrix, strict=True):
        lines.append(f"| **{md(label)}** | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"

def evaluate_champion(
    *,
    tracking_uri: str,
    model_name: str,
    holdout: pd.DataFrame,
    spec: DatasetSpec,
    workdir: str | Path,
    slice_column: str = "",
    min_slice_rows: int = DEFAULT_MIN_SLICE_ROWS,
    retry=None,
) -> Champion:
    """Find the `champion` alias of `model_name`, download its SavedModel and evaluate it on the
    same holdout. Every failure becomes `status="failed"` with a one-line reason."""
    from loopline import registry

    try:
        version = registry.alias_version(tracking_uri, model_name, registry.CHAMPION, retry=retry)
    except Exception as exc:
        return Champion(status="failed", error=one_line(exc))
    if version is None:
        log.info("%s has no champion yet: this is the first model", model_name)
        return Champion(status="none")
    uri = f"models:/{model_name}/{version}"
    log.info("evaluating the champion %s on the same holdout", uri)
    try:
        local = registry.saved_model_dir(tracking_uri, model_name, version, Path(workdir) / f"champion-v{version}")
        result = evaluate_model_dir(local, holdout, spec, slice_column=slice_column, min_slice_rows=min_slice_rows,
                                    what=f"champion {uri}")
    except Exception as exc:
        log.warning("the champion %s could not be evaluated: %s", uri, one_line(exc))
        return Champion(status="failed", version=version, model_uri=uri, error=one_line(exc))
    return Champion(status="loaded", version=version, model_uri=uri, evaluation=result)
