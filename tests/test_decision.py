"""Decision thresholds, class weights, average precision and the classes Loopline reports."""

from __future__ import annotations

import numpy as np
import pytest

from loopline.decision import (
    THRESHOLD_KEY,
    choose_threshold,
    class_weights,
    classify,
    stored_threshold,
    threshold_record,
)
from loopline.errors import DataError
from loopline.holdout_metrics import evaluate_predictions, evaluate_slices


def _binary(p):
    p = np.asarray(p, dtype=float)
    return np.column_stack([1 - p, p])


def test_classify_uses_the_threshold_for_binary_and_argmax_otherwise():
    proba = _binary([0.1, 0.25, 0.3, 0.9])
    assert classify(proba).tolist() == [0, 0, 0, 1]
    assert classify(proba, 0.25).tolist() == [0, 1, 1, 1]  # the threshold itself predicts positive
    multi = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    assert classify(multi, 0.1).tolist() == [0, 2]  # multiclass keeps the arg-max
    with pytest.raises(DataError, match="rows x classes"):
        classify(np.array([0.2, 0.8]))


def test_the_chosen_threshold_maximises_the_f1_of_the_positive_class():
    labels = np.array([0, 0, 0, 0, 1, 0, 1, 1])
    scores = np.array([0.05, 0.1, 0.15, 0.2, 0.22, 0.3, 0.35, 0.4])
    threshold = choose_threshold(labels, scores)
    # every candidate by brute force: the chosen one is the best, and the highest of the best
    def f1(t):
        predicted = scores >= t
        tp = np.sum(predicted & (labels == 1))
        return 2 * tp / (predicted.sum() + labels.sum())
    best = max(f1(t) for t in scores)
    assert f1(threshold) == pytest.approx(best)
    assert threshold == max(t for t in scores if f1(t) == pytest.approx(best))
    assert threshold == pytest.approx(0.22)  # 3 of 3 positives for 4 predicted: F1 0.857 beats 0.8 at 0.35


def test_ties_and_degenerate_rows():
    # tied scores cannot be split: the threshold takes the whole tie
    assert choose_threshold(np.array([1, 0, 1, 0]), np.array([0.6, 0.6, 0.6, 0.1])) == pytest.approx(0.6)
    assert choose_threshold(np.array([0, 0]), np.array([0.2, 0.7])) == 0.5  # no positive: the default
    with pytest.raises(DataError, match="threshold objective must be 'f1'"):
        choose_threshold(np.array([0, 1]), np.array([0.2, 0.7]), objective="accuracy")


def test_the_threshold_lifts_f1_of_a_rare_class_and_leaves_probabilities_alone():
    rng = np.random.default_rng(0)
    labels = (rng.random(4000) < 0.05).astype(int)
    scores = np.clip(0.03 + 0.25 * labels + rng.normal(0, 0.08, size=4000), 0, 1)
    proba = _binary(scores)
    threshold = choose_threshold(labels[:2000], scores[:2000])  # chosen on one half, judged on the other
    at_half = evaluate_predictions(labels[2000:], proba[2000:], ["no", "yes"])
    tuned = evaluate_predictions(labels[2000:], proba[2000:], ["no", "yes"], threshold=threshold)
    assert threshold < 0.5 and tuned.metrics["f1_yes"] > at_half.metrics["f1_yes"] + 0.1
    assert tuned.metrics["decision_threshold"] == threshold and at_half.metrics["decision_threshold"] == 0.5
    for metric in ("roc_auc", "average_precision", "log_loss", "brier"):  # from the probabilities alone
        assert tuned.metrics[metric] == at_half.metrics[metric]
    assert sum(map(sum, tuned.confusion_matrix)) == 2000


def test_average_precision_with_known_answers():
    # ranking 1 0 1 0: precision at the two positives 1 and 2/3
    binary = evaluate_predictions(np.array([1, 0, 1, 0]), _binary([0.9, 0.8, 0.7, 0.1]), ["a", "b"])
    assert binary.metrics["average_precision"] == pytest.approx((1 + 2 / 3) / 2)
    multi = evaluate_predictions(np.array([0, 1, 2]), np.eye(3) * 0.8 + 0.2 / 3, ["a", "b", "c"])
    assert multi.metrics["average_precision"] == pytest.approx(1.0)
    assert "decision_threshold" not in multi.metrics


def test_slices_report_the_classes_the_threshold_predicts():
    import pandas as pd

    labels = np.array([0, 1, 0, 1])
    proba = _binary([0.2, 0.3, 0.1, 0.6])
    report, _, _ = evaluate_slices(labels, proba, ["no", "yes"], pd.Series(["a", "a", "b", "b"]), column="s",
                                   min_rows=1, threshold=0.25)
    assert [row["predicted_rate"]["yes"] for row in report.slices] == [0.5, 0.5]


def test_the_stored_threshold_is_read_back_and_checked():
    assert stored_threshold({}) is None
    record = threshold_record(0.31, "fraud", rows=300)
    assert stored_threshold({THRESHOLD_KEY: record}) == 0.31
    assert record["positive_class"] == "fraud" and record["chosen_on"] == "validation split"
    with pytest.raises(DataError, match="must be a probability"):
        stored_threshold({THRESHOLD_KEY: {"value": 1.5}})


def test_class_weights_balance_above_the_stated_imbalance_only():
    balanced = np.array([0] * 60 + [1] * 40)
    rare = np.array([0] * 95 + [1] * 5)
    assert class_weights(balanced, 2) is None  # 1.5 : 1 is below the ratio
    weights = class_weights(rare, 2)
    assert weights == pytest.approx({0: 100 / (2 * 95), 1: 100 / (2 * 5)})
    assert class_weights(rare, 2, mode="none") is None
    assert class_weights(balanced, 2, mode="balanced") == pytest.approx({0: 100 / 120, 1: 100 / 80})
    with pytest.raises(DataError, match="class_weight must be one of"):
        class_weights(rare, 2, mode="inverse")
