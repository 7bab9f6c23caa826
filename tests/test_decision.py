"""Decision thresholds, class weights, average precision and the classes Loopline reports."""

from __future__ import annotations

import numpy as np
import pytest

from loopline.core.errors import DataError
from loopline.evaluation.metrics import evaluate_predictions, evaluate_slices
from loopline.model.decision import (
    THRESHOLD_KEY,
    choose_threshold,
    class_weights,
    classify,
    stored_threshold,
    threshold_record,
    unweight,
)


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
    assert record["positive_class"] == "fraud" and record["chosen_on"] == "validation split" and "best trial" in record["chosen_with"]
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


def test_unweighting_restores_calibration_and_keeps_the_ranking():
    """A model fitted with balanced class weights overstates the rare class; dividing by the
    weights (logit - log(w1/w0)) brings log loss and Brier back to an unweighted fit's."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    rng = np.random.default_rng(0)
    x = rng.normal(size=(6000, 2))
    y = (rng.random(6000) < 1 / (1 + np.exp(-(2 * x[:, 0] - x[:, 1] - 4)))).astype(int)
    assert 0.02 < y.mean() < 0.1
    fit, test = slice(0, 4000), slice(4000, None)
    weights = class_weights(y[fit], 2)
    assert weights is not None and weights[1] > 5
    weighted = LogisticRegression(class_weight=weights).fit(x[fit], y[fit]).predict_proba(x[test])
    plain = LogisticRegression().fit(x[fit], y[fit]).predict_proba(x[test])
    corrected = unweight(weighted, weights)
    assert log_loss(y[test], weighted) > 2 * log_loss(y[test], plain)
    assert log_loss(y[test], corrected) < 1.05 * log_loss(y[test], plain)
    assert brier_score_loss(y[test], corrected[:, 1]) < 1.05 * brier_score_loss(y[test], plain[:, 1])
    assert roc_auc_score(y[test], corrected[:, 1]) == roc_auc_score(y[test], weighted[:, 1])
    np.testing.assert_allclose(corrected.sum(axis=1), 1.0)
    logit = np.log(corrected[:, 1] / corrected[:, 0])
    np.testing.assert_allclose(logit, np.log(weighted[:, 1] / weighted[:, 0]) - np.log(weights[1] / weights[0]))
    assert unweight(weighted, None) is not None and np.array_equal(unweight(weighted, None), weighted)
    with pytest.raises(DataError, match="class weight 3"):
        unweight(weighted, {3: 1.0})


def test_the_exported_model_serves_probabilities_without_the_weights_prior_shift(tmp_path):
    """The SavedModel applies the correction itself: every consumer (holdout metrics,
    batch_predict, the model server, the MLflow pyfunc) reads corrected probabilities."""
    from loopline.data.spec import DatasetSpec
    from loopline.model.classifier import as_model_inputs, build_model, export_saved_model
    from loopline.model.contract import ServingModel

    spec = DatasetSpec(target="y", features={"a": "numeric", "c": "categorical"}, classes=["no", "yes"])
    features = {"a": np.array([0.0, 1.0, 2.0, np.nan], dtype=np.float32), "c": np.array(["x", "y", "x", "z"], dtype=object)}
    model = build_model(spec, features, {"learning_rate": 1e-3, "hidden_layers": 1, "units": 4, "dropout": 0.0,
                                         "batch_size": 64})
    raw = np.asarray(model(as_model_inputs(features), training=False))
    weights = {0: 0.5, 1: 8.0}
    export_saved_model(model, spec, tmp_path / "weighted", params={}, decision={"class_weight": weights})
    export_saved_model(model, spec, tmp_path / "plain", params={}, decision={"class_weight": None})
    import pandas as pd

    frame = pd.DataFrame({"a": features["a"], "c": ["x", "y", "x", "z"]})
    served = ServingModel(tmp_path / "weighted").predict_frame(frame)
    np.testing.assert_allclose(served, unweight(raw, weights), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ServingModel(tmp_path / "plain").predict_frame(frame), raw, rtol=1e-4, atol=1e-6)
