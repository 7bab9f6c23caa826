"""Holdout evaluation and the fail-closed threshold gate."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopline.data import DatasetSpec
from loopline.errors import GateConfigError

log = logging.getLogger(__name__)

# Metrics where lower is better; everything else is higher-is-better.
LOWER_IS_BETTER = {"log_loss", "brier"}
ROC_POINTS = 101


@dataclass
class Evaluation:
    metrics: dict[str, float]
    classes: list[str]
    confusion_matrix: list[list[int]]
    roc: dict[str, list[float]] | None  # fpr, tpr, thresholds (binary: positive class = classes[1])
    rows: int


@dataclass
class GateCheck:
    metric: str
    value: float | None
    op: str
    threshold: float
    passed: bool
    reason: str


@dataclass
class GateDecision:
    passed: bool
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def reason(self) -> str:
        failed = [c.reason for c in self.checks if not c.passed]
        return "all gates passed" if not failed else "; ".join(failed)


def evaluate_predictions(labels: np.ndarray, proba: np.ndarray, classes: list[str]) -> Evaluation:
    """Holdout metrics from integer labels and class probabilities."""
    from sklearn.metrics import (
        accuracy_score,
        brier_score_loss,
        confusion_matrix,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
        roc_curve,
    )

    n_classes = len(classes)
    predicted = proba.argmax(axis=1)
    all_labels = list(range(n_classes))
    metrics: dict[str, float] = {
        "accuracy": accuracy_score(labels, predicted),
        "precision_macro": precision_score(labels, predicted, average="macro", labels=all_labels, zero_division=0),
        "recall_macro": recall_score(labels, predicted, average="macro", labels=all_labels, zero_division=0),
        "f1_macro": f1_score(labels, predicted, average="macro", labels=all_labels, zero_division=0),
        "log_loss": log_loss(labels, proba, labels=all_labels),
    }
    roc = None
    if n_classes == 2:
        metrics["roc_auc"] = roc_auc_score(labels, proba[:, 1])
        metrics["brier"] = brier_score_loss(labels, proba[:, 1])
        fpr, tpr, thr = roc_curve(labels, proba[:, 1])
        # thin the curve to a bounded number of points for the KFP UI
        keep = np.unique(np.linspace(0, len(fpr) - 1, min(ROC_POINTS, len(fpr))).round().astype(int))
        thr = np.where(np.isfinite(thr), thr, 1.0)
        roc = {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(), "thresholds": thr[keep].tolist()}
    else:
        metrics["roc_auc"] = roc_auc_score(labels, proba, multi_class="ovr", average="macro", labels=all_labels)
        onehot = np.eye(n_classes)[labels]
        metrics["brier"] = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    cm = confusion_matrix(labels, predicted, labels=all_labels).tolist()
    return Evaluation(
        metrics={k: float(v) for k, v in metrics.items()},
        classes=list(classes),
        confusion_matrix=cm,
        roc=roc,
        rows=len(labels),
    )


def evaluate_model_dir(model_dir: str, holdout: pd.DataFrame, spec: DatasetSpec) -> Evaluation:
    """Load a Loopline SavedModel and evaluate it on the holdout split."""
    from loopline.training import ServingModel, encode_labels

    model = ServingModel(model_dir)
    if model.classes != spec.classes:
        raise GateConfigError(f"the model's classes {model.classes} differ from the holdout's {spec.classes}")
    proba = model.predict_frame(holdout)
    result = evaluate_predictions(encode_labels(holdout, spec), proba, spec.classes)
    log.info(
        "holdout (%d rows): %s",
        result.rows,
        ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.metrics.items())),
    )
    return result


def parse_thresholds(thresholds: dict[str, Any]) -> list[tuple[str, str, float]]:
    """`{"roc_auc": 0.8, "log_loss": {"max": 0.4}, "accuracy": {"min": 0.9}}` -> checks.

    A bare number is a floor for higher-is-better metrics and a ceiling for lower-is-better ones.
    An empty configuration is an error: the gate never passes by default.
    """
    if not thresholds:
        raise GateConfigError(
            "no gate thresholds configured: set at least one, e.g. thresholds={'roc_auc': 0.8}"
        )
    checks = []
    for metric, rule in thresholds.items():
        if isinstance(rule, bool) or not isinstance(rule, (int, float, dict)):
            raise GateConfigError(f"threshold for '{metric}' must be a number or {{'min': x, 'max': y}}, got {rule!r}")
        if isinstance(rule, dict):
            unknown = set(rule) - {"min", "max"}
            if unknown or not rule:
                raise GateConfigError(f"threshold for '{metric}' takes 'min' and/or 'max', got {sorted(rule)}")
            for key, op in (("min", ">="), ("max", "<=")):
                if key in rule:
                    value = rule[key]
                    if isinstance(value, bool) or not isinstance(value, (int, float)):
                        raise GateConfigError(f"threshold '{key}' for '{metric}' must be a number, got {value!r}")
                    checks.append((metric, op, float(value)))
        else:
            checks.append((metric, "<=" if metric in LOWER_IS_BETTER else ">=", float(rule)))
    return checks


def gate(metrics: dict[str, float], thresholds: dict[str, Any]) -> GateDecision:
    """Absolute gate, fail closed: an unknown or non-finite metric fails its check."""
    decision = GateDecision(passed=True)
    for metric, op, threshold in parse_thresholds(thresholds):
        value = metrics.get(metric)
        if value is None:
            ok, reason = False, f"{metric}: not computed (known: {', '.join(sorted(metrics))})"
        elif not math.isfinite(value):
            ok, reason = False, f"{metric}: value is {value}"
        else:
            ok = value >= threshold if op == ">=" else value <= threshold
            reason = f"{metric} {value:.4f} {'meets' if ok else 'misses'} {op} {threshold:g}"
        decision.checks.append(GateCheck(metric, value, op, threshold, ok, reason))
        decision.passed = decision.passed and ok
    log.info("gate %s: %s", "PASSED" if decision.passed else "FAILED", decision.reason)
    return decision


def gate_report_markdown(evaluation: Evaluation, decision: GateDecision, *, model_uri: str = "") -> str:
    lines = [
        f"## Evaluation gate: {'PASSED' if decision.passed else 'FAILED'}",
        "",
        f"Model judged: `{model_uri}`" if model_uri else "",
        f"Holdout rows: {evaluation.rows}",
        "",
        "| metric | value | rule | verdict |",
        "|---|---|---|---|",
    ]
    for c in decision.checks:
        value = "n/a" if c.value is None else f"{c.value:.4f}"
        lines.append(f"| {c.metric} | {value} | {c.op} {c.threshold:g} | {'pass' if c.passed else 'FAIL'} |")
    lines += ["", "### Holdout metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in sorted(evaluation.metrics.items())]
    lines += ["", "### Confusion matrix (rows: actual, columns: predicted)", ""]
    lines.append("| | " + " | ".join(evaluation.classes) + " |")
    lines.append("|---" * (len(evaluation.classes) + 1) + "|")
    for label, row in zip(evaluation.classes, evaluation.confusion_matrix, strict=True):
        lines.append(f"| **{label}** | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(line for line in lines if line is not None) + "\n"
