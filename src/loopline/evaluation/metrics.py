"""Holdout metrics of a model: accuracy, precision, recall, F1, ROC AUC, log loss, Brier score,
latency, size, and per-slice metrics with the fairness gaps."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.core.errors import DataError, ModelError, one_line
from loopline.data.spec import DatasetSpec
from loopline.model.decision import classify, stored_threshold

log = logging.getLogger(__name__)

HEADLINE_METRICS = ("accuracy", "roc_auc", "average_precision", "decision_threshold", "log_loss", "brier", "f1_macro",
                    "latency_single_p95_ms")

ROC_POINTS = 101

LATENCY_METRICS = ("latency_single_p50_ms", "latency_single_p95_ms", "latency_batch_p50_ms", "latency_batch_p95_ms")

FAIRNESS_METRICS = ("demographic_parity_difference", "slice_auc_gap")

# What `evaluate_predictions` computes from labels and probabilities (decision_threshold: binary only);
# per-class precision, recall and F1 are `<metric>_<class>` besides.
QUALITY_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "log_loss", "roc_auc",
                   "average_precision", "brier", "decision_threshold")
PER_CLASS_PREFIXES = ("precision_", "recall_", "f1_")
# Every metric a holdout evaluation reports, and so every metric a gate rule can name.
COMPUTED_METRICS = (*QUALITY_METRICS, "model_size_bytes", *LATENCY_METRICS, *FAIRNESS_METRICS)

LOWER_IS_BETTER = {"log_loss", "brier", "model_size_bytes", *LATENCY_METRICS, *FAIRNESS_METRICS}

MAX_SLICES = 50

MISSING_SLICE = "(missing)"


DEFAULT_MIN_SLICE_ROWS = 20

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
    from loopline.model.contract import ServingModel

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
    from loopline.model.contract import encode_labels

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
