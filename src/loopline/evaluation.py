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
an error, and so is a gate where no rule could be applied.

The baseline rule is on by default: the challenger must be no worse than a logistic regression
fitted on the training split (`loopline.baseline`) on `metric` (default `roc_auc`), by at most
`tolerance` (default 0.005). `"baseline": false` turns it off; on its own it does not count as
a configured threshold.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.baseline import NAME as BASELINE_NAME
from loopline.data import DatasetSpec
from loopline.decision import classify, stored_threshold
from loopline.errors import DataError, GateConfigError, ModelError, one_line

log = logging.getLogger(__name__)

# The metrics a log line or a summary shows first.
HEADLINE_METRICS = ("accuracy", "roc_auc", "average_precision", "decision_threshold", "log_loss", "brier", "f1_macro",
                    "latency_single_p95_ms")

ROC_POINTS = 101
LATENCY_METRICS = ("latency_single_p50_ms", "latency_single_p95_ms", "latency_batch_p50_ms", "latency_batch_p95_ms")
FAIRNESS_METRICS = ("demographic_parity_difference", "slice_auc_gap")
# Metrics where lower is better; everything else is higher-is-better.
LOWER_IS_BETTER = {"log_loss", "brier", "model_size_bytes", *LATENCY_METRICS, *FAIRNESS_METRICS}
MAX_SLICES = 50
MISSING_SLICE = "(missing)"

SECTIONS = ("absolute", "relative", "latency", "fairness", "allow_champion_load_failure", "baseline")
BASELINE_KEYS = ("metric", "tolerance")
DEFAULT_BASELINE_METRIC = "roc_auc"
DEFAULT_BASELINE_TOLERANCE = 0.005
RELATIVE_KEYS = ("primary", "min_improvement", "min_improvement_relative", "max_regression", "max_regression_relative")
LATENCY_KEYS = {"max_single_row_p95_ms": "latency_single_p95_ms", "max_batch_p95_ms": "latency_batch_p95_ms"}
FAIRNESS_KEYS = {
    "max_demographic_parity_difference": "demographic_parity_difference",
    "max_auc_gap": "slice_auc_gap",
}
DEFAULT_MIN_SLICE_ROWS = 20


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass
class SliceReport:
    """Per-slice metrics for one slice column."""

    column: str
    min_rows: int
    slices: list[dict[str, Any]]  # {"slice", "rows", "accuracy", "roc_auc" (or None), "predicted_rate": {class: share}}


@dataclass
class Evaluation:
    metrics: dict[str, float]
    classes: list[str]
    confusion_matrix: list[list[int]]
    roc: dict[str, list[float]] | None  # fpr, tpr, thresholds (binary: positive class = classes[1])
    rows: int
    slices: SliceReport | None = None
    notes: dict[str, str] = field(default_factory=dict)  # metric -> why it could not be computed


def _metric_key(label: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", str(label))


def evaluate_predictions(labels: np.ndarray, proba: np.ndarray, classes: list[str], *,
                         threshold: float | None = None) -> Evaluation:
    """Holdout metrics from integer labels and class probabilities. Classes are predicted with
    the model's decision threshold when it has one (binary), else by arg-max (`decision.classify`)."""
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        brier_score_loss,
        confusion_matrix,
        f1_score,
        log_loss,
        precision_recall_fscore_support,
        precision_score,
        recall_score,
        roc_auc_score,
        roc_curve,
    )

    n_classes = len(classes)
    predicted = classify(proba, threshold)
    all_labels = list(range(n_classes))
    metrics: dict[str, float] = {
        "accuracy": accuracy_score(labels, predicted),
        "precision_macro": precision_score(labels, predicted, average="macro", labels=all_labels, zero_division=0),
        "recall_macro": recall_score(labels, predicted, average="macro", labels=all_labels, zero_division=0),
        "f1_macro": f1_score(labels, predicted, average="macro", labels=all_labels, zero_division=0),
        "log_loss": log_loss(labels, proba, labels=all_labels),
    }
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, labels=all_labels, average=None, zero_division=0
    )
    for i, label in enumerate(classes):
        key = _metric_key(label)
        metrics[f"precision_{key}"] = precision[i]
        metrics[f"recall_{key}"] = recall[i]
        metrics[f"f1_{key}"] = f1[i]
    roc = None
    if n_classes == 2:
        metrics["roc_auc"] = roc_auc_score(labels, proba[:, 1])
        metrics["average_precision"] = average_precision_score(labels, proba[:, 1])
        metrics["decision_threshold"] = 0.5 if threshold is None else threshold
        metrics["brier"] = brier_score_loss(labels, proba[:, 1])
        fpr, tpr, thr = roc_curve(labels, proba[:, 1])
        # thin the curve to a bounded number of points for the KFP UI
        keep = np.unique(np.linspace(0, len(fpr) - 1, min(ROC_POINTS, len(fpr))).round().astype(int))
        thr = np.where(np.isfinite(thr), thr, 1.0)
        roc = {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(), "thresholds": thr[keep].tolist()}
    else:
        metrics["roc_auc"] = roc_auc_score(labels, proba, multi_class="ovr", average="macro", labels=all_labels)
        onehot = np.eye(n_classes)[labels]
        present = [i for i in all_labels if onehot[:, i].any()]  # AP is undefined for a class with no row
        metrics["average_precision"] = float(np.mean([average_precision_score(onehot[:, i], proba[:, i])
                                                      for i in present]))
        metrics["brier"] = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    cm = confusion_matrix(labels, predicted, labels=all_labels).tolist()
    return Evaluation(
        metrics={k: float(v) for k, v in metrics.items()},
        classes=list(classes),
        confusion_matrix=cm,
        roc=roc,
        rows=len(labels),
    )


def slice_values(frame: pd.DataFrame, column: str) -> pd.Series:
    """The slice of every row as text (missing values form their own slice)."""
    if column not in frame.columns:
        raise DataError(f"slice column '{column}' is not in the holdout split (columns: {', '.join(map(str, frame.columns))})")
    values = frame[column]
    distinct = values.nunique(dropna=True)
    if distinct > MAX_SLICES:
        raise DataError(
            f"slice column '{column}' has {distinct} distinct values; slices need a column with at most "
            f"{MAX_SLICES} (a categorical column, or a binned one)"
        )
    return values.where(values.isna(), values.astype(str)).fillna(MISSING_SLICE).astype(str)


def evaluate_slices(
    labels: np.ndarray, proba: np.ndarray, classes: list[str], slices: pd.Series, *, column: str,
    min_rows: int = DEFAULT_MIN_SLICE_ROWS, threshold: float | None = None,
) -> tuple[SliceReport, dict[str, float], dict[str, str]]:
    """Per-slice accuracy, ROC AUC and predicted-class rates; the demographic-parity difference
    (largest gap between slices in the rate of predicting any one class) and the per-slice AUC
    gap, over slices with at least `min_rows` rows. Returns the report, the fairness metrics
    that could be computed and, for the others, why not."""
    from sklearn.metrics import roc_auc_score

    n_classes = len(classes)
    predicted = classify(proba, threshold)
    values = np.asarray(slices)
    rows: list[dict[str, Any]] = []
    for name in sorted(set(values)):
        mask = values == name
        y, p = labels[mask], proba[mask]
        auc = None
        if len(np.unique(y)) == n_classes:
            if n_classes == 2:
                auc = float(roc_auc_score(y, p[:, 1]))
            else:
                auc = float(roc_auc_score(y, p, multi_class="ovr", average="macro", labels=list(range(n_classes))))
        rows.append(
            {
                "slice": str(name),
                "rows": int(mask.sum()),
                "accuracy": float(np.mean(predicted[mask] == y)),
                "roc_auc": auc,
                "predicted_rate": {c: float(np.mean(predicted[mask] == i)) for i, c in enumerate(classes)},
            }
        )
    metrics: dict[str, float] = {}
    notes: dict[str, str] = {}
    large = [r for r in rows if r["rows"] >= min_rows]
    if len(large) >= 2:
        metrics["demographic_parity_difference"] = max(
            max(r["predicted_rate"][c] for r in large) - min(r["predicted_rate"][c] for r in large) for c in classes
        )
    else:
        notes["demographic_parity_difference"] = f"fewer than 2 slices of '{column}' have at least {min_rows} rows"
    with_auc = [r for r in large if r["roc_auc"] is not None]
    if len(with_auc) >= 2:
        metrics["slice_auc_gap"] = max(r["roc_auc"] for r in with_auc) - min(r["roc_auc"] for r in with_auc)
    else:
        notes["slice_auc_gap"] = (
            f"fewer than 2 slices of '{column}' have at least {min_rows} rows and every class"
        )
    return SliceReport(column=column, min_rows=min_rows, slices=rows), metrics, notes


def measure_latency(
    predict: Callable[[pd.DataFrame], Any], frame: pd.DataFrame, *, single_rows: int = 100, batches: int = 20,
    batch_size: int = 256, warmup: int = 3,
) -> dict[str, float]:
    """p50/p95 wall time in milliseconds of `predict` on single rows and on batches."""
    frame = frame.reset_index(drop=True)
    n = len(frame)
    if n == 0:
        raise DataError("the holdout split has no rows to time predictions on")

    def timed(parts: list[pd.DataFrame]) -> np.ndarray:
        for part in parts[:warmup]:
            predict(part)
        out = []
        for part in parts:
            started = time.perf_counter()
            predict(part)
            out.append((time.perf_counter() - started) * 1000.0)
        return np.asarray(out)

    single = timed([frame.iloc[[i % n]] for i in range(single_rows)])
    size = min(batch_size, n)
    batch = timed([frame.iloc[[(i * size + j) % n for j in range(size)]] for i in range(batches)])
    return {
        "latency_single_p50_ms": float(np.percentile(single, 50)),
        "latency_single_p95_ms": float(np.percentile(single, 95)),
        "latency_batch_p50_ms": float(np.percentile(batch, 50)),
        "latency_batch_p95_ms": float(np.percentile(batch, 95)),
    }


def directory_size(path: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def load_model(model_dir: str | Path, *, what: str = "model"):
    """A Loopline SavedModel, or a one-line ModelError naming what could not be loaded."""
    from loopline.model_contract import ServingModel

    try:
        return ServingModel(model_dir)
    except DataError as exc:
        raise ModelError(f"cannot load the {what}: {exc}") from None
    except Exception as exc:  # TensorFlow raises many kinds for a damaged SavedModel
        raise ModelError(f"cannot load the {what} in {model_dir}: {type(exc).__name__}: {one_line(exc)}") from None


def evaluate_model_dir(
    model_dir: str | Path,
    holdout: pd.DataFrame,
    spec: DatasetSpec,
    *,
    slice_column: str = "",
    min_slice_rows: int = DEFAULT_MIN_SLICE_ROWS,
    latency: bool = True,
    what: str = "model",
) -> Evaluation:
    """Load a Loopline SavedModel and evaluate it on the holdout split: quality metrics, slices,
    latency and size."""
    from loopline.model_contract import encode_labels

    slices = slice_values(holdout, slice_column) if slice_column else None
    model = load_model(model_dir, what=what)
    if model.classes != spec.classes:
        raise ModelError(f"the {what}'s classes {model.classes} differ from the holdout's {spec.classes}")
    missing = [c for c in model.features if c not in holdout.columns]
    if missing:
        raise DataError(f"the holdout split lacks column(s) the {what} needs: {', '.join(missing)}")
    if spec.target not in holdout.columns:
        raise DataError(f"the holdout split lacks the target column '{spec.target}'")
    labels = encode_labels(holdout, spec)
    proba = model.predict_frame(holdout)
    threshold = stored_threshold(model.metadata)
    result = evaluate_predictions(labels, proba, spec.classes, threshold=threshold)
    if slices is not None:
        result.slices, fairness, result.notes = evaluate_slices(
            labels, proba, spec.classes, slices, column=slice_column, min_rows=min_slice_rows, threshold=threshold
        )
        result.metrics.update(fairness)
    if latency:
        result.metrics.update(measure_latency(model.predict_frame, holdout[list(model.features)]))
    result.metrics["model_size_bytes"] = float(directory_size(model_dir))
    log.info(
        "%s on the holdout (%d rows): %s", what, result.rows,
        ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.metrics.items()) if k in HEADLINE_METRICS),
    )
    return result


# ---------------------------------------------------------------------------------------------
# Gate configuration


@dataclass
class Rule:
    """One threshold on one metric: `metric op threshold`."""

    kind: str  # absolute | latency | fairness
    metric: str
    op: str  # ">=" or "<="
    threshold: float


@dataclass
class RelativeRule:
    """A comparison with the champion. `mode`: improvement (at least) or regression (at most);
    `relative`: the threshold is a share of the champion's value rather than an absolute delta."""

    metric: str
    mode: str  # "improvement" | "regression"
    threshold: float
    relative: bool


@dataclass
class BaselineRule:
    """The challenger is no worse than the baseline on `metric` by more than `tolerance`."""

    metric: str = DEFAULT_BASELINE_METRIC
    tolerance: float = DEFAULT_BASELINE_TOLERANCE


@dataclass
class GateConfig:
    rules: list[Rule] = field(default_factory=list)
    relative: list[RelativeRule] = field(default_factory=list)
    slice_column: str = ""
    min_slice_rows: int = DEFAULT_MIN_SLICE_ROWS
    allow_champion_load_failure: bool = False
    baseline: BaselineRule | None = field(default_factory=BaselineRule)  # None: the rule is off

    @property
    def needs_champion(self) -> bool:
        return bool(self.relative)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GateConfigError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GateConfigError(f"{where} must be a mapping, got {value!r}")
    return value


def _unknown(given: dict[str, Any], known, where: str) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise GateConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")


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


def _parse_relative(section: dict[str, Any]) -> list[RelativeRule]:
    _unknown(section, RELATIVE_KEYS, "relative")
    primary = section.get("primary", "roc_auc")
    if not isinstance(primary, str) or not primary:
        raise GateConfigError(f"relative.primary must be a metric name, got {primary!r}")
    rules = []
    for key, relative in (("min_improvement", False), ("min_improvement_relative", True)):
        if key in section:
            rules.append(RelativeRule(primary, "improvement", _number(section[key], f"relative.{key}"), relative))
    for key, relative in (("max_regression", False), ("max_regression_relative", True)):
        for metric, value in _mapping(section.get(key, {}), f"relative.{key}").items():
            limit = _number(value, f"relative.{key}['{metric}']")
            if limit < 0:
                raise GateConfigError(f"relative.{key}['{metric}'] must not be negative, got {value!r}")
            rules.append(RelativeRule(metric, "regression", limit, relative))
    if not rules:
        raise GateConfigError(
            "relative: give min_improvement, min_improvement_relative, max_regression or max_regression_relative"
        )
    return rules


def _parse_baseline(section: Any) -> BaselineRule | None:
    if section is False:
        return None
    if section is True:
        return BaselineRule()
    _unknown(_mapping(section, "baseline"), BASELINE_KEYS, "baseline")
    metric = section.get("metric", DEFAULT_BASELINE_METRIC)
    if not isinstance(metric, str) or not metric:
        raise GateConfigError(f"baseline.metric must be a metric name, got {metric!r}")
    tolerance = _number(section.get("tolerance", DEFAULT_BASELINE_TOLERANCE), "baseline.tolerance")
    if tolerance < 0:
        raise GateConfigError(f"baseline.tolerance must not be negative, got {tolerance!r}")
    return BaselineRule(metric, tolerance)


def parse_gate_config(config: dict[str, Any] | None) -> GateConfig:
    """Read the gate configuration (see the module docstring); fail on anything unclear."""
    if not config:
        raise GateConfigError(
            "no gate thresholds configured: set at least one, e.g. thresholds={'roc_auc': 0.8}"
        )
    if not isinstance(config, dict):
        raise GateConfigError(f"the gate configuration must be a mapping, got {config!r}")
    sectioned = [k for k in config if k in SECTIONS]
    if not sectioned:  # legacy form: metric rules only
        return GateConfig(rules=[Rule("absolute", m, op, t) for m, op, t in parse_thresholds(config)])
    stray = [k for k in config if k not in SECTIONS]
    if stray:
        raise GateConfigError(
            f"gate configuration mixes sections and other keys: {', '.join(map(str, stray))} "
            f"(sections: {', '.join(SECTIONS)}; put metric rules under 'absolute')"
        )
    out = GateConfig()
    absolute = _mapping(config.get("absolute", {}), "absolute")
    if absolute:
        out.rules += [Rule("absolute", m, op, t) for m, op, t in parse_thresholds(absolute)]
    latency = _mapping(config.get("latency", {}), "latency")
    _unknown(latency, LATENCY_KEYS, "latency")
    out.rules += [Rule("latency", LATENCY_KEYS[k], "<=", _number(v, f"latency.{k}")) for k, v in latency.items()]
    if "fairness" in config:
        fairness = _mapping(config["fairness"], "fairness")
        _unknown(fairness, ("slice_column", "min_slice_rows", *FAIRNESS_KEYS), "fairness")
        column = fairness.get("slice_column")
        if not isinstance(column, str) or not column:
            raise GateConfigError("fairness.slice_column must name a column of the holdout split")
        out.slice_column = column
        if "min_slice_rows" in fairness:
            rows = fairness["min_slice_rows"]
            if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
                raise GateConfigError(f"fairness.min_slice_rows must be a positive integer, got {rows!r}")
            out.min_slice_rows = rows
        out.rules += [
            Rule("fairness", FAIRNESS_KEYS[k], "<=", _number(fairness[k], f"fairness.{k}"))
            for k in FAIRNESS_KEYS
            if k in fairness
        ]
    if "relative" in config:
        out.relative = _parse_relative(_mapping(config["relative"], "relative"))
    allow = config.get("allow_champion_load_failure", False)
    if not isinstance(allow, bool):
        raise GateConfigError(f"allow_champion_load_failure must be true or false, got {allow!r}")
    out.allow_champion_load_failure = allow
    if "baseline" in config:
        out.baseline = _parse_baseline(config["baseline"])
    explicit_baseline = out.baseline is not None and config.get("baseline") not in (None, True)
    if not out.rules and not out.relative and not explicit_baseline:
        raise GateConfigError(
            "no gate thresholds configured: the sections given hold no rule (add an absolute, relative, "
            "latency or fairness threshold)"
        )
    return out


# ---------------------------------------------------------------------------------------------
# The gate


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


# ---------------------------------------------------------------------------------------------
# The report


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
            f"### Slices of `{s.column}` (fairness metrics use slices with at least {s.min_rows} rows)",
            "",
            f"| slice | rows | accuracy | roc_auc | predicted '{positive}' |",
            "|---|---|---|---|---|",
        ]
        for row in s.slices:
            lines.append(
                f"| {row['slice']} | {row['rows']} | {row['accuracy']:.4f} | {_fmt(row['roc_auc'])} | "
                f"{row['predicted_rate'][positive]:.4f} |"
            )
        for metric, why in sorted(evaluation.notes.items()):
            lines.append(f"\n{metric}: not computed, {why}.")
    lines += ["", "### Confusion matrix (rows: actual, columns: predicted)", ""]
    lines.append("| | " + " | ".join(evaluation.classes) + " |")
    lines.append("|---" * (len(evaluation.classes) + 1) + "|")
    for label, row in zip(evaluation.classes, evaluation.confusion_matrix, strict=True):
        lines.append(f"| **{label}** | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The champion


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
