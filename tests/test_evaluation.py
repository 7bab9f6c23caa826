"""Evaluation: holdout metrics with known answers, threshold parsing and the fail-closed gate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loopline.errors import GateConfigError
from loopline.evaluation import (
    ROC_POINTS,
    evaluate_predictions,
    gate,
    gate_report_markdown,
    parse_thresholds,
)

BINARY = ["0", "1"]


def _binary(p_positive) -> np.ndarray:
    p = np.asarray(p_positive, dtype=float)
    return np.column_stack([1 - p, p])


# ---------------------------------------------------------------------------------------------
# evaluate_predictions: binary


def test_binary_metrics_with_known_answers():
    labels = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.7, 0.8, 0.3, 0.9])
    result = evaluate_predictions(labels, _binary(p), BINARY)
    m = result.metrics

    assert result.rows == 5
    assert result.classes == BINARY
    # predicted: 0 1 1 0 1 -> two right out of five
    assert m["accuracy"] == pytest.approx(0.4)
    # rows = actual, columns = predicted: actual 0 -> one 0, two 1; actual 1 -> one 0, one 1
    assert result.confusion_matrix == [[1, 2], [1, 1]]
    # positives 0.3, 0.9 vs negatives 0.1, 0.7, 0.8: 4 of 6 pairs ranked right
    assert m["roc_auc"] == pytest.approx(4 / 6)
    expected_log_loss = -np.mean(np.log([0.9, 0.3, 0.2, 0.3, 0.9]))
    assert m["log_loss"] == pytest.approx(expected_log_loss, rel=1e-6)
    assert m["brier"] == pytest.approx(np.mean((p - labels) ** 2))
    # precision: class 0 1/2, class 1 1/3; recall: class 0 1/3, class 1 1/2
    assert m["precision_macro"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert m["recall_macro"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert all(isinstance(v, float) for v in m.values())


def test_perfect_and_reversed_ranking():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.05, 0.2, 0.4, 0.6, 0.8, 0.95])

    perfect = evaluate_predictions(labels, _binary(scores), BINARY)
    assert perfect.metrics["roc_auc"] == pytest.approx(1.0)
    assert perfect.metrics["accuracy"] == pytest.approx(1.0)
    assert perfect.confusion_matrix == [[3, 0], [0, 3]]

    reversed_ = evaluate_predictions(labels, _binary(scores[::-1]), BINARY)
    assert reversed_.metrics["roc_auc"] == pytest.approx(0.0)
    assert reversed_.metrics["accuracy"] == pytest.approx(0.0)
    assert reversed_.confusion_matrix == [[0, 3], [3, 0]]
    assert reversed_.metrics["log_loss"] > perfect.metrics["log_loss"]


def test_log_loss_is_finite_for_hard_zero_one_predictions():
    labels = np.array([0, 1, 1, 0])
    certain_and_wrong = _binary([1.0, 0.0, 1.0, 0.0])  # two confidently wrong
    result = evaluate_predictions(labels, certain_and_wrong, BINARY)
    assert math.isfinite(result.metrics["log_loss"])
    assert result.metrics["log_loss"] > 5  # -log(1e-7)/2 ~ 8
    certain_and_right = evaluate_predictions(labels, _binary([0.0, 1.0, 1.0, 0.0]), BINARY)
    assert math.isfinite(certain_and_right.metrics["log_loss"])
    assert certain_and_right.metrics["log_loss"] < 1e-5


def test_roc_curve_is_monotone_bounded_and_spans_the_square():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=3000)
    scores = np.clip(0.3 * labels + rng.normal(0.35, 0.2, size=labels.size), 0, 1)
    result = evaluate_predictions(labels, _binary(scores), BINARY)
    roc = result.roc
    assert roc is not None
    fpr, tpr, thr = (np.array(roc[k]) for k in ("fpr", "tpr", "thresholds"))
    assert 2 <= len(fpr) <= ROC_POINTS == 101
    assert len(fpr) == len(tpr) == len(thr)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.all(np.diff(thr) <= 0)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.all(np.isfinite(thr))
    # the thinned curve still integrates to about the exact AUC
    assert np.trapezoid(tpr, fpr) == pytest.approx(result.metrics["roc_auc"], abs=0.01)


def test_short_roc_curve_is_kept_whole():
    result = evaluate_predictions(np.array([0, 0, 1, 1]), _binary([0.1, 0.4, 0.35, 0.8]), BINARY)
    assert result.roc["fpr"] == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert result.roc["tpr"] == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert result.metrics["roc_auc"] == pytest.approx(0.75)


# ---------------------------------------------------------------------------------------------
# evaluate_predictions: multiclass


def test_multiclass_macro_ovr_auc_and_no_roc_curve():
    labels = np.array([0, 0, 1, 1, 2, 2])
    proba = np.array(
        [
            [0.6, 0.3, 0.1],
            [0.3, 0.4, 0.3],
            [0.5, 0.4, 0.1],
            [0.2, 0.6, 0.2],
            [0.1, 0.2, 0.7],
            [0.2, 0.3, 0.5],
        ]
    )
    result = evaluate_predictions(labels, proba, ["a", "b", "c"])
    # one-vs-rest AUCs: a 7/8, b 7.5/8 (one tie), c 8/8
    assert result.metrics["roc_auc"] == pytest.approx((0.875 + 0.9375 + 1.0) / 3)
    assert result.roc is None
    assert result.metrics["accuracy"] == pytest.approx(4 / 6)
    assert result.confusion_matrix == [[1, 1, 0], [1, 1, 0], [0, 0, 2]]
    onehot = np.eye(3)[labels]
    assert result.metrics["brier"] == pytest.approx(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    expected_log_loss = -np.mean(np.log(proba[np.arange(6), labels]))
    assert result.metrics["log_loss"] == pytest.approx(expected_log_loss, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# parse_thresholds


def test_empty_thresholds_fail_closed():
    for empty in ({}, None):
        with pytest.raises(GateConfigError) as excinfo:
            parse_thresholds(empty)
        assert "no gate thresholds" in str(excinfo.value)
    with pytest.raises(GateConfigError):
        gate({"roc_auc": 0.99}, {})


def test_bare_number_is_floor_or_ceiling_by_metric():
    checks = parse_thresholds({"roc_auc": 0.8, "accuracy": 1, "log_loss": 0.4, "brier": 0.2})
    assert checks == [
        ("roc_auc", ">=", 0.8),
        ("accuracy", ">=", 1.0),
        ("log_loss", "<=", 0.4),
        ("brier", "<=", 0.2),
    ]
    assert all(isinstance(t, float) for _, _, t in checks)


def test_min_max_dict_gives_two_checks():
    assert parse_thresholds({"accuracy": {"min": 0.7, "max": 0.99}}) == [
        ("accuracy", ">=", 0.7),
        ("accuracy", "<=", 0.99),
    ]
    # an explicit rule overrides the metric's default direction
    assert parse_thresholds({"log_loss": {"min": 0.01}}) == [("log_loss", ">=", 0.01)]
    assert parse_thresholds({"roc_auc": {"max": 0.999}}) == [("roc_auc", "<=", 0.999)]


@pytest.mark.parametrize(
    "thresholds",
    [
        pytest.param({"roc_auc": "0.8"}, id="string"),
        pytest.param({"roc_auc": True}, id="bool"),
        pytest.param({"roc_auc": None}, id="none"),
        pytest.param({"roc_auc": [0.8]}, id="list"),
        pytest.param({"roc_auc": {"minimum": 0.8}}, id="unknown-key"),
        pytest.param({"roc_auc": {"min": 0.8, "floor": 0.7}}, id="unknown-key-beside-min"),
        pytest.param({"roc_auc": {}}, id="empty-rule"),
    ],
)
def test_bad_threshold_values_raise(thresholds):
    with pytest.raises(GateConfigError) as excinfo:
        parse_thresholds(thresholds)
    message = str(excinfo.value)
    assert "roc_auc" in message and "\n" not in message


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param({"min": "abc"}, id="text"),
        pytest.param({"min": "0.8"}, id="numeric-string"),
        pytest.param({"min": True}, id="bool"),
        pytest.param({"max": None}, id="none"),
    ],
)
def test_bad_values_inside_min_max_raise_gate_config_error(rule):
    with pytest.raises(GateConfigError) as excinfo:
        parse_thresholds({"roc_auc": rule})
    assert "roc_auc" in str(excinfo.value)


# ---------------------------------------------------------------------------------------------
# gate


METRICS = {"roc_auc": 0.86, "accuracy": 0.93, "log_loss": 0.31, "brier": 0.08}


def test_gate_passes_when_all_thresholds_met():
    decision = gate(METRICS, {"roc_auc": 0.8, "log_loss": 0.4, "accuracy": {"min": 0.9, "max": 0.99}})
    assert decision.passed is True
    assert len(decision.checks) == 4
    assert all(c.passed for c in decision.checks)
    assert decision.reason == "all gates passed"


def test_gate_boundaries_are_inclusive():
    decision = gate(METRICS, {"roc_auc": 0.86, "log_loss": 0.31})
    assert decision.passed is True


@pytest.mark.parametrize(
    ("thresholds", "missed"),
    [
        ({"roc_auc": 0.9, "log_loss": 0.4}, "roc_auc"),
        ({"roc_auc": 0.8, "log_loss": 0.3}, "log_loss"),
        ({"roc_auc": 0.8, "brier": {"max": 0.05}}, "brier"),
        ({"roc_auc": 0.8, "accuracy": {"min": 0.5, "max": 0.9}}, "accuracy"),
    ],
)
def test_gate_fails_when_one_threshold_missed(thresholds, missed):
    decision = gate(METRICS, thresholds)
    assert decision.passed is False
    failed = [c for c in decision.checks if not c.passed]
    assert [c.metric for c in failed] == [missed]
    assert decision.reason.startswith(missed)
    assert "misses" in decision.reason
    others = {c.metric for c in decision.checks if c.passed}
    assert all(metric not in decision.reason for metric in others - {missed})


def test_gate_reason_has_value_and_rule():
    decision = gate(METRICS, {"roc_auc": 0.9})
    assert decision.reason == "roc_auc 0.8600 misses >= 0.9"
    check = decision.checks[0]
    assert (check.metric, check.value, check.op, check.threshold, check.passed) == ("roc_auc", 0.86, ">=", 0.9, False)


def test_metric_not_computed_fails_closed():
    decision = gate(METRICS, {"roc_auc": 0.5, "pr_auc": 0.1})
    assert decision.passed is False
    failed = [c for c in decision.checks if not c.passed]
    assert [c.metric for c in failed] == ["pr_auc"]
    assert failed[0].value is None
    assert "pr_auc" in decision.reason and "not computed" in decision.reason


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_metric_fails(bad):
    # whichever direction the rule points, a non-finite value never passes
    for thresholds in ({"roc_auc": 0.5}, {"roc_auc": {"max": 1.0}}, {"log_loss": 0.5}):
        metric = next(iter(thresholds))
        decision = gate({**METRICS, metric: bad}, thresholds)
        assert decision.passed is False, (bad, thresholds)
        assert metric in decision.reason


# ---------------------------------------------------------------------------------------------
# gate_report_markdown


def test_gate_report_markdown_has_checks_and_confusion_matrix():
    labels = np.array([0, 0, 0, 1, 1])
    evaluation = evaluate_predictions(labels, _binary([0.1, 0.7, 0.8, 0.3, 0.9]), ["legit", "fraud"])
    decision = gate(evaluation.metrics, {"roc_auc": 0.6, "accuracy": 0.5, "log_loss": {"max": 2.0}})
    assert [c.passed for c in decision.checks] == [True, False, True]

    text = gate_report_markdown(evaluation, decision, model_uri="gs://bucket/models/7")
    lines = text.splitlines()
    assert lines[0] == "## Evaluation gate: FAILED"
    assert "Model judged: `gs://bucket/models/7`" in text
    assert "Holdout rows: 5" in text
    assert "Champion: none yet (first model)" in lines
    assert "| gate | metric | challenger | champion | threshold | verdict | reason |" in lines
    auc = evaluation.metrics["roc_auc"]
    assert f"| absolute | roc_auc | {auc:.4f} | — | >= 0.6 | pass | roc_auc {auc:.4f} meets >= 0.6 |" in lines
    assert "| absolute | accuracy | 0.4000 | — | >= 0.5 | FAIL | accuracy 0.4000 misses >= 0.5 |" in lines
    ll = evaluation.metrics["log_loss"]
    assert f"| absolute | log_loss | {ll:.4f} | — | <= 2 | pass | log_loss {ll:.4f} meets <= 2 |" in lines
    # confusion matrix: header with class names, rows = actual, columns = predicted
    assert "rows: actual, columns: predicted" in text
    assert "| | legit | fraud |" in lines
    assert "| **legit** | 1 | 2 |" in lines
    assert "| **fraud** | 1 | 1 |" in lines
    for metric, value in evaluation.metrics.items():
        assert f"| {metric} | {value:.4f} |" in lines


def test_gate_report_markdown_passed_and_not_computed():
    evaluation = evaluate_predictions(np.array([0, 1]), _binary([0.2, 0.9]), BINARY)
    decision = gate(evaluation.metrics, {"roc_auc": 0.9, "pr_auc": 0.5})
    text = gate_report_markdown(evaluation, decision)
    assert text.startswith("## Evaluation gate: FAILED")
    rows = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| absolute |")}
    assert rows["pr_auc"].startswith("| absolute | pr_auc | — | — | >= 0.5 | FAIL | pr_auc: not computed")
    assert rows["roc_auc"] == "| absolute | roc_auc | 1.0000 | — | >= 0.9 | pass | roc_auc 1.0000 meets >= 0.9 |"
    assert "Model judged" not in text

    passed = gate(evaluation.metrics, {"roc_auc": 0.9})
    assert gate_report_markdown(evaluation, passed).startswith("## Evaluation gate: PASSED")
