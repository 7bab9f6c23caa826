"""From probabilities to classes: the decision threshold and the class weights.

A binary model carries a decision threshold chosen on the validation split (by default the
one that maximises the F1 score of the positive class, `classes[1]`); it is stored in the
SavedModel's metadata and every class Loopline reports goes through `classify`. Multiclass
models, and models without a stored threshold, use the arg-max.

Training weighs the classes by the inverse of their frequency ("balanced") when the largest
class outnumbers the smallest by more than `IMBALANCE_RATIO`, unless told otherwise. A network
fitted with class weights w_k learns probabilities proportional to w_k * p_k, not p_k: its
output is shifted towards the rare classes. `unweight` undoes that prior shift (divide by the
weights, normalise again: for a binary model, logit - log(w_1 / w_0)), so the probabilities a
model serves are calibrated to the class frequencies of its training data while the ranking
the weights bought stays (the shift is monotone for two classes). The exported SavedModel
applies the same correction in its serving signature.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loopline.core.errors import DataError

THRESHOLD_KEY = "decision_threshold"  # in the SavedModel's metadata
THRESHOLD_OBJECTIVE = "f1"  # F1 of the positive class
IMBALANCE_RATIO = 3.0  # largest class / smallest class above which "auto" weighs the classes
CLASS_WEIGHT_MODES = ("auto", "balanced", "none")


def classify(proba: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Class indices from probabilities (rows x classes): the positive class (index 1) where its
    probability reaches `threshold` for a binary model with a threshold, else the arg-max."""
    proba = np.asarray(proba)
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise DataError(f"probabilities must be rows x classes (at least 2), got shape {proba.shape}")
    if threshold is None or proba.shape[1] != 2:
        return proba.argmax(axis=1)
    return (proba[:, 1] >= threshold).astype(int)


def unweight(proba: np.ndarray, weights: dict[int, float] | None) -> np.ndarray:
    """Probabilities (rows x classes) of a model fitted with class `weights`, corrected for the
    prior shift the weights introduced: p_k / w_k, normalised per row. Unchanged without weights."""
    proba = np.asarray(proba, dtype=float)
    if not weights:
        return proba
    w = weight_vector(weights, proba.shape[1])
    shifted = proba / w
    return shifted / shifted.sum(axis=1, keepdims=True)


def weight_vector(weights: dict[int, float], n_classes: int) -> np.ndarray:
    """The class weights as a vector of `n_classes` (a class without a weight: 1)."""
    w = np.ones(n_classes, dtype=float)
    for index, value in weights.items():
        if not 0 <= int(index) < n_classes or not float(value) > 0:
            raise DataError(f"class weight {index}: {value} does not fit a model of {n_classes} classes")
        w[int(index)] = float(value)
    return w


def choose_threshold(labels: np.ndarray, p_positive: np.ndarray, *, objective: str = THRESHOLD_OBJECTIVE) -> float:
    """The threshold on the positive class's probability that maximises `objective` (the F1
    score of the positive class) on these rows; ties go to the highest threshold. 0.5 when the
    rows hold no positive."""
    if objective != THRESHOLD_OBJECTIVE:
        raise DataError(f"threshold objective must be '{THRESHOLD_OBJECTIVE}', got '{objective}'")
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(p_positive, dtype=float)
    positives = int(labels.sum())
    if positives == 0 or len(labels) == 0:
        return 0.5
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], labels[order]
    true_pos = np.cumsum(hits)
    predicted = np.arange(1, len(ranked) + 1)
    # a threshold at a score predicts positive every row down to its last tie
    last_of_tie = np.r_[ranked[1:] != ranked[:-1], True]
    f1 = np.where(last_of_tie, 2 * true_pos / (predicted + positives), -1.0)
    best = int(np.argmax(f1))  # the first maximum: the highest threshold
    return float(ranked[best])


def threshold_record(threshold: float, positive_class: str, *, rows: int) -> dict[str, Any]:
    """What the SavedModel's metadata keeps about its threshold."""
    return {"value": float(threshold), "objective": f"{THRESHOLD_OBJECTIVE} of the positive class",
            "positive_class": positive_class, "chosen_on": "validation split", "rows": int(rows),
            # the served model is refitted on train + validation; its threshold is the one the
            # best trial's model (fitted on the training rows alone) reached on the validation rows
            "chosen_with": "the best trial's model, probabilities corrected for the class weights"}


def stored_threshold(metadata: dict[str, Any]) -> float | None:
    """The decision threshold in a model's metadata, or None (arg-max)."""
    record = metadata.get(THRESHOLD_KEY)
    if record is None:
        return None
    value = record.get("value") if isinstance(record, dict) else record
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise DataError(f"the model's {THRESHOLD_KEY} must be a probability, got {value!r}")
    return float(value)


def class_weights(labels: np.ndarray, n_classes: int, *, mode: str = "auto") -> dict[int, float] | None:
    """Keras class weights: None (unweighted), or n / (k * count) per class ("balanced";
    "auto" when the largest class outnumbers the smallest by more than IMBALANCE_RATIO)."""
    if mode not in CLASS_WEIGHT_MODES:
        raise DataError(f"class_weight must be one of {', '.join(CLASS_WEIGHT_MODES)}, got '{mode}'")
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=n_classes).astype(float)
    present = counts[counts > 0]
    if mode == "none" or len(present) < 2:
        return None
    if mode == "auto" and present.max() / present.min() <= IMBALANCE_RATIO:
        return None
    total = counts.sum()
    return {i: float(total / (len(present) * c)) if c > 0 else 1.0 for i, c in enumerate(counts)}
