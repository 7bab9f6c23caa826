"""The validation scores a trial is judged by: the tuning objective on a split, a Keras callback
that adds it (and the validation log loss) to every epoch's logs from the probabilities the
exported model will serve (corrected for the class weights), and the best epoch of a curve.
Nothing here imports TensorFlow at module level."""

from __future__ import annotations

import numpy as np

from loopline.model.classifier import as_model_inputs
from loopline.model.decision import unweight


def auc_score(labels: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if proba.shape[1] == 2:
        return float(roc_auc_score(labels, proba[:, 1]))
    return float(roc_auc_score(labels, proba, multi_class="ovr", average="macro", labels=list(range(proba.shape[1]))))

def as_probabilities(proba: np.ndarray) -> np.ndarray:
    """`proba` as float64. Rows that sum to 1 within float32 rounding (a float32 model's softmax)
    are normalised in float64, so that scikit-learn's float64 check sees probabilities; rows
    further off are left for it to report."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim == 2 and len(proba):
        sums = proba.sum(axis=1, keepdims=True)
        if np.all(np.abs(sums - 1.0) <= 1e-5):
            proba = proba / sums
    return proba

def objective_score(objective: str, labels: np.ndarray, proba: np.ndarray) -> float:
    """The tuning objective on a split: roc_auc and accuracy (higher is better), log_loss (lower)."""
    proba = as_probabilities(proba)
    if objective == "roc_auc":
        return auc_score(labels, proba)
    if objective == "accuracy":
        return float(np.mean(proba.argmax(axis=1) == labels))
    if objective == "log_loss":
        from sklearn.metrics import log_loss

        return float(log_loss(labels, proba, labels=list(range(proba.shape[1]))))
    raise ValueError(f"unknown objective '{objective}'")

def epoch_log(objective: str | None, val_x: dict[str, np.ndarray] | None, val_y: np.ndarray | None,
               weights: dict[int, float] | None = None):
    """A Keras callback that adds `val_loss` and `val_<objective>` (one pass over the validation
    split, the probabilities corrected for the class `weights` as the exported model serves
    them) to each epoch's logs, for early stopping and the pruning callback after it, and keeps
    every epoch's logs."""
    import keras

    inputs = as_model_inputs(val_x) if val_x is not None else None

    class EpochLog(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.curves: dict[str, list[float]] = {}

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            if objective and inputs is not None:
                proba = unweight(np.asarray(self.model(inputs, training=False)), weights)
                logs["val_loss"] = objective_score("log_loss", val_y, proba)
                logs[f"val_{objective}"] = objective_score(objective, val_y, proba)
            for key, value in logs.items():
                self.curves.setdefault(key, []).append(float(value))

        @property
        def epochs(self) -> int:
            return max((len(v) for v in self.curves.values()), default=0)

    return EpochLog()

def best_epoch(values: list[float], direction: str) -> tuple[int, float]:
    """(1-based epoch, value) of the best epoch."""
    finite = [(v, i) for i, v in enumerate(values) if np.isfinite(v)]
    if not finite:
        return 0, float("nan")
    value, index = max(finite) if direction == "maximize" else min(finite)
    if direction == "maximize":  # the first epoch reaching the best value
        index = next(i for v, i in finite if v == value)
    return index + 1, float(value)
