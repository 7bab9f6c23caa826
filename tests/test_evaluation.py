"""Evaluation: holdout metrics with known answers, threshold parsing and the fail-closed gate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loopline.core.errors import GateConfigError
from loopline.evaluation.evaluate import gate_report_markdown, judge
from loopline.evaluation.gate import parse_gate_config, parse_thresholds
from loopline.evaluation.metrics import ROC_POINTS, evaluate_predictions

BINARY = ["0", "1"]


def gate(metrics, thresholds, **kwargs):
    """The gate with its baseline rule off: the rules tested here are the others (the baseline
    rule has its own tests in test_baseline.py)."""
    config = parse_gate_config(thresholds)
    config.baseline = None
    return judge(metrics, config, **kwargs)


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


def test_metric_not_computed_fails_closed():  # a class the holdout lacks: its recall is not computed
    decision = gate(METRICS, {"roc_auc": 0.5, "recall_7": 0.1})
    assert decision.passed is False
    failed = [c for c in decision.checks if not c.passed]
    assert [c.metric for c in failed] == ["recall_7"]
    assert failed[0].value is None
    assert "recall_7" in decision.reason and "not computed" in decision.reason


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
    assert "| gate | metric | challenger | champion | baseline | threshold | verdict | reason |" in lines
    auc = evaluation.metrics["roc_auc"]
    assert f"| absolute | roc_auc | {auc:.4f} | — | — | >= 0.6 | pass | roc_auc {auc:.4f} meets >= 0.6 |" in lines
    assert "| absolute | accuracy | 0.4000 | — | — | >= 0.5 | FAIL | accuracy 0.4000 misses >= 0.5 |" in lines
    ll = evaluation.metrics["log_loss"]
    assert f"| absolute | log_loss | {ll:.4f} | — | — | <= 2 | pass | log_loss {ll:.4f} meets <= 2 |" in lines
    # confusion matrix: header with class names, rows = actual, columns = predicted
    assert "rows: actual, columns: predicted" in text
    assert "| | legit | fraud |" in lines
    assert "| **legit** | 1 | 2 |" in lines
    assert "| **fraud** | 1 | 1 |" in lines
    for metric, value in evaluation.metrics.items():
        assert f"| {metric} | {value:.4f} |" in lines


def test_gate_report_markdown_passed_and_not_computed():
    evaluation = evaluate_predictions(np.array([0, 1]), _binary([0.2, 0.9]), BINARY)
    decision = gate(evaluation.metrics, {"roc_auc": 0.9, "recall_7": 0.5})
    text = gate_report_markdown(evaluation, decision)
    assert text.startswith("## Evaluation gate: FAILED")
    rows = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| absolute |")}
    assert rows["recall_7"].startswith("| absolute | recall_7 | — | — | — | >= 0.5 | FAIL | recall_7: not computed")
    assert rows["roc_auc"] == "| absolute | roc_auc | 1.0000 | — | — | >= 0.9 | pass | roc_auc 1.0000 meets >= 0.9 |"
    assert "Model judged" not in text

    passed = gate(evaluation.metrics, {"roc_auc": 0.9})
    assert gate_report_markdown(evaluation, passed).startswith("## Evaluation gate: PASSED")


# ---------------------------------------------------------------------------------------------
# per-class metrics, slices, latency


def test_per_class_precision_recall_f1():
    labels = np.array([0, 0, 0, 1, 1])
    result = evaluate_predictions(labels, _binary([0.1, 0.7, 0.8, 0.3, 0.9]), ["legit", "fraud"])
    m = result.metrics
    # predicted 0 1 1 0 1: legit precision 1/2 recall 1/3; fraud precision 1/3 recall 1/2
    assert (m["precision_legit"], m["recall_legit"]) == pytest.approx((1 / 2, 1 / 3))
    assert (m["precision_fraud"], m["recall_fraud"]) == pytest.approx((1 / 3, 1 / 2))
    assert m["f1_legit"] == pytest.approx(2 * (1 / 2 * 1 / 3) / (1 / 2 + 1 / 3))
    assert m["f1_macro"] == pytest.approx((m["f1_legit"] + m["f1_fraud"]) / 2)


def test_slices_give_demographic_parity_difference_and_auc_gap():
    import pandas as pd

    from loopline.evaluation.metrics import evaluate_slices, slice_values

    # slice a: 4 rows, predicts the positive class for 2 (rate 0.5), ranks perfectly (AUC 1)
    # slice b: 4 rows, predicts positive for 2 (rate 0.5), ranks 3 of 4 pairs right (AUC 0.75)
    # slices c and (missing): one row each, below min_rows: reported, not used for fairness
    labels = np.array([0, 0, 1, 1, 0, 1, 0, 1, 0, 1])
    p = np.array([0.1, 0.2, 0.8, 0.9, 0.3, 0.4, 0.6, 0.7, 0.9, 0.95])
    frame = pd.DataFrame({"group": ["a"] * 4 + ["b"] * 4 + ["c", None]})
    values = slice_values(frame, "group")
    assert list(values[-2:]) == ["c", "(missing)"]
    report, metrics, notes = evaluate_slices(labels, _binary(p), BINARY, values, column="group", min_rows=3)
    by_name = {s["slice"]: s for s in report.slices}
    assert set(by_name) == {"a", "b", "c", "(missing)"}
    assert by_name["a"]["predicted_rate"]["1"] == 0.5 and by_name["b"]["predicted_rate"]["1"] == 0.5
    assert by_name["a"]["roc_auc"] == 1.0 and by_name["b"]["roc_auc"] == pytest.approx(0.75)
    assert by_name["c"]["roc_auc"] is None  # a single class: AUC undefined
    assert metrics["demographic_parity_difference"] == pytest.approx(0.0)
    assert metrics["slice_auc_gap"] == pytest.approx(0.25)
    assert notes == {}

    shifted = p.copy()
    shifted[4:8] = [0.6, 0.7, 0.8, 0.9]  # slice b: every row predicted positive
    _, metrics, _ = evaluate_slices(labels, _binary(shifted), BINARY, values, column="group", min_rows=3)
    assert metrics["demographic_parity_difference"] == pytest.approx(0.5)

    _, metrics, notes = evaluate_slices(labels, _binary(p), BINARY, values, column="group", min_rows=5)
    assert metrics == {}
    assert "fewer than 2 slices of 'group' have at least 5 rows" in notes["demographic_parity_difference"]
    assert "slice_auc_gap" in notes


def test_slice_column_must_exist_and_be_few_valued():
    import pandas as pd

    from loopline.core.errors import DataError
    from loopline.evaluation.metrics import slice_values

    frame = pd.DataFrame({"id": range(500), "channel": ["a", "b"] * 250})
    with pytest.raises(DataError, match="slice column 'region' is not in the holdout split"):
        slice_values(frame, "region")
    with pytest.raises(DataError, match="slice column 'id' has 500 distinct values"):
        slice_values(frame, "id")


def test_measure_latency_times_single_rows_and_batches():
    import pandas as pd

    from loopline.evaluation.metrics import LATENCY_METRICS, measure_latency

    sizes = []
    frame = pd.DataFrame({"x": range(40)})
    result = measure_latency(lambda part: sizes.append(len(part)), frame, single_rows=10, batches=4,
                             batch_size=16, warmup=2)
    assert set(result) == set(LATENCY_METRICS)
    # warm-up calls, then the timed calls: single rows, then batches
    assert sizes == [1] * 12 + [16] * 6
    assert 0 <= result["latency_single_p50_ms"] <= result["latency_single_p95_ms"]
    assert 0 <= result["latency_batch_p50_ms"] <= result["latency_batch_p95_ms"]


# ---------------------------------------------------------------------------------------------
# gate configuration


def test_legacy_form_and_sections_parse_to_the_same_rules():
    from loopline.evaluation.gate import parse_gate_config

    legacy = parse_gate_config({"roc_auc": 0.8, "log_loss": {"max": 0.4}})
    sectioned = parse_gate_config({"absolute": {"roc_auc": 0.8, "log_loss": {"max": 0.4}}})
    assert legacy == sectioned
    assert [(r.kind, r.metric, r.op, r.threshold) for r in legacy.rules] == [
        ("absolute", "roc_auc", ">=", 0.8), ("absolute", "log_loss", "<=", 0.4)]
    assert not legacy.needs_champion

    full = parse_gate_config({
        "relative": {"primary": "f1_macro", "min_improvement": 0.0, "min_improvement_relative": 0.01,
                     "max_regression": {"log_loss": 0.02}, "max_regression_relative": {"accuracy": 0.05}},
        "latency": {"max_single_row_p95_ms": 50, "max_batch_p95_ms": 400},
        "fairness": {"slice_column": "channel", "max_demographic_parity_difference": 0.1, "max_auc_gap": 0.2,
                     "min_slice_rows": 30},
        "allow_champion_load_failure": True,
    })
    assert full.needs_champion and full.allow_champion_load_failure
    assert full.slice_column == "channel" and full.min_slice_rows == 30
    assert [(r.kind, r.metric, r.threshold) for r in full.rules] == [
        ("latency", "latency_single_p95_ms", 50.0), ("latency", "latency_batch_p95_ms", 400.0),
        ("fairness", "demographic_parity_difference", 0.1), ("fairness", "slice_auc_gap", 0.2)]
    assert [(r.metric, r.mode, r.threshold, r.relative) for r in full.relative] == [
        ("f1_macro", "improvement", 0.0, False), ("f1_macro", "improvement", 0.01, True),
        ("log_loss", "regression", 0.02, False), ("accuracy", "regression", 0.05, True)]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param({"absolute": {}}, "no gate thresholds configured", id="empty-section"),
        pytest.param({"fairness": {"slice_column": "channel"}}, "no gate thresholds configured", id="slices-only"),
        pytest.param({"roc_auc": 0.8, "latency": {"max_single_row_p95_ms": 5}}, "mixes sections and other keys: roc_auc",
                     id="mixed"),
        pytest.param({"relative": {"primary": "roc_auc"}}, "relative: give min_improvement", id="relative-no-rule"),
        pytest.param({"relative": {"min_improvment": 0.01}}, "relative: unknown key(s) min_improvment", id="typo"),
        pytest.param({"relative": {"max_regression": {"log_loss": -0.1}}}, "must not be negative", id="negative"),
        pytest.param({"relative": {"min_improvement": "1%"}}, "relative.min_improvement must be a finite number",
                     id="text"),
        pytest.param({"latency": {"p95": 5}}, "latency: unknown key(s) p95", id="latency-key"),
        pytest.param({"fairness": {"max_auc_gap": 0.1}}, "fairness.slice_column must name a column", id="no-slice"),
        pytest.param({"fairness": {"slice_column": "c", "max_auc_gap": 0.1, "min_slice_rows": 0}},
                     "min_slice_rows must be a positive integer", id="min-rows"),
        pytest.param({"absolute": {"roc_auc": 0.8}, "allow_champion_load_failure": "yes"}, "must be true or false",
                     id="allow"),
        pytest.param({"absolute": [0.8]}, "absolute must be a mapping", id="not-mapping"),
    ],
)
def test_bad_gate_configurations_are_one_line_errors(config, message):
    from loopline.evaluation.gate import parse_gate_config

    with pytest.raises(GateConfigError) as excinfo:
        parse_gate_config(config)
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value)


# ---------------------------------------------------------------------------------------------
# relative, latency and fairness gates; the champion's states


def _champion(metrics, version="3"):
    from loopline.evaluation.evaluate import Champion, Evaluation

    evaluation = Evaluation(metrics=metrics, classes=BINARY, confusion_matrix=[[1, 0], [0, 1]], roc=None, rows=2)
    return Champion(status="loaded", version=version, model_uri=f"models:/fraud/{version}", evaluation=evaluation)


CHAMPION_METRICS = {"roc_auc": 0.80, "accuracy": 0.90, "log_loss": 0.40}


@pytest.mark.parametrize(
    ("relative", "challenger", "passed"),
    [
        pytest.param({"min_improvement": 0.01}, {"roc_auc": 0.815}, True, id="abs-improvement-met"),
        pytest.param({"min_improvement": 0.01}, {"roc_auc": 0.805}, False, id="abs-improvement-missed"),
        pytest.param({"min_improvement_relative": 0.01}, {"roc_auc": 0.8081}, True, id="rel-improvement-met"),
        pytest.param({"min_improvement_relative": 0.01}, {"roc_auc": 0.8079}, False, id="rel-improvement-missed"),
        pytest.param({"min_improvement": -0.01}, {"roc_auc": 0.795}, True, id="small-loss-tolerated"),
        pytest.param({"primary": "log_loss", "min_improvement": 0.05}, {"log_loss": 0.34}, True, id="lower-better-met"),
        pytest.param({"primary": "log_loss", "min_improvement": 0.05}, {"log_loss": 0.36}, False,
                     id="lower-better-missed"),
        pytest.param({"max_regression": {"accuracy": 0.02}}, {"accuracy": 0.885}, True, id="regression-within"),
        pytest.param({"max_regression": {"accuracy": 0.02}}, {"accuracy": 0.875}, False, id="regression-exceeds"),
        pytest.param({"max_regression": {"log_loss": 0.02}}, {"log_loss": 0.45}, False, id="regression-lower-better"),
        pytest.param({"max_regression": {"log_loss": 0.02}}, {"log_loss": 0.30}, True, id="improvement-is-no-regression"),
        pytest.param({"max_regression_relative": {"log_loss": 0.10}}, {"log_loss": 0.439}, True, id="rel-regression-within"),
        pytest.param({"max_regression_relative": {"log_loss": 0.10}}, {"log_loss": 0.441}, False,
                     id="rel-regression-exceeds"),
    ],
)
def test_relative_gates_pass_and_fail(relative, challenger, passed):
    metrics = {**CHAMPION_METRICS, **challenger}
    decision = gate(metrics, {"relative": relative}, champion=_champion(CHAMPION_METRICS))
    assert decision.passed is passed, decision.reason
    (check,) = decision.checks
    assert check.kind == "relative" and check.status == ("pass" if passed else "FAIL")
    assert check.champion == CHAMPION_METRICS[check.metric] and check.value == metrics[check.metric]
    assert "champion" in check.reason


def test_regression_reasons_say_which_way_the_metric_moved():
    config = {"relative": {"max_regression": {"log_loss": 0.05}}}
    better = gate({"log_loss": 0.30}, config, champion=_champion(CHAMPION_METRICS))
    assert better.checks[0].reason == (
        "log_loss is better than the champion by 0.1000 (0.3000 vs 0.4000); within worse by ≤ 0.05")
    worse = gate({"log_loss": 0.47}, config, champion=_champion(CHAMPION_METRICS))
    assert worse.checks[0].reason == (
        "log_loss is worse than the champion by 0.0700 (0.4700 vs 0.4000); exceeds worse by ≤ 0.05")


def test_relative_gate_with_a_metric_the_champion_lacks_fails():
    decision = gate({"roc_auc": 0.9, "f1_macro": 0.7}, {"relative": {"primary": "f1_macro", "min_improvement": 0.0}},
                    champion=_champion({"roc_auc": 0.8}))
    assert not decision.passed and "no finite value for the champion" in decision.reason


def test_first_model_skips_relative_gates_and_says_so():
    config = {"absolute": {"roc_auc": 0.7}, "relative": {"min_improvement": 0.05, "max_regression": {"log_loss": 0.0}}}
    decision = gate({"roc_auc": 0.75, "log_loss": 0.5}, config)
    assert decision.passed is True
    assert [(c.kind, c.status) for c in decision.checks] == [("absolute", "pass"), ("relative", "skipped"),
                                                             ("relative", "skipped")]
    assert all("no champion yet (first model)" in c.reason for c in decision.checks[1:])
    table = gate_table(decision)
    assert "Champion: none yet (first model); relative gates are skipped" in table


def gate_table(decision):
    from loopline.evaluation.evaluate import gate_table_markdown

    return gate_table_markdown(decision, model_uri="gs://b/m", rows=10)


def test_first_model_with_only_relative_gates_fails_rather_than_pass_on_nothing():
    decision = gate({"roc_auc": 0.99}, {"relative": {"min_improvement": 0.0}})
    assert decision.passed is False
    assert "no gate could be applied" in decision.reason


def test_a_champion_that_cannot_be_loaded_fails_unless_allowed():
    from loopline.evaluation.evaluate import Champion

    broken = Champion(status="failed", version="2", model_uri="models:/fraud/2", error="cannot load the champion: bad pb")
    config = {"absolute": {"roc_auc": 0.7}, "relative": {"min_improvement": 0.0}}
    decision = gate({"roc_auc": 0.8}, config, champion=broken)
    assert decision.passed is False
    assert decision.reason == "champion version 2 could not be loaded: cannot load the champion: bad pb"
    assert [c.status for c in decision.checks] == ["pass", "FAIL", "skipped"]

    allowed = gate({"roc_auc": 0.8}, {**config, "allow_champion_load_failure": True}, champion=broken)
    assert allowed.passed is True
    assert [c.status for c in allowed.checks] == ["pass", "allowed", "skipped"]
    assert "allowed by allow_champion_load_failure" in allowed.checks[1].reason
    # a lookup that failed before any version was known says so too
    unknown = gate({"roc_auc": 0.8}, config, champion=Champion(status="failed", error="registry unavailable"))
    assert unknown.reason == "champion could not be loaded: registry unavailable"


@pytest.mark.parametrize(("limit", "passed"), [(25.0, True), (10.0, False)])
def test_latency_sla(limit, passed):
    decision = gate({"latency_single_p95_ms": 12.5, "roc_auc": 0.9}, {"latency": {"max_single_row_p95_ms": limit}})
    assert decision.passed is passed
    assert decision.checks[0].kind == "latency" and decision.checks[0].rule == f"<= {limit:g}"


@pytest.mark.parametrize(
    ("fairness", "passed"),
    [
        ({"max_demographic_parity_difference": 0.1, "max_auc_gap": 0.1}, True),
        ({"max_demographic_parity_difference": 0.05, "max_auc_gap": 0.1}, False),
        ({"max_demographic_parity_difference": 0.1, "max_auc_gap": 0.02}, False),
    ],
)
def test_fairness_gates(fairness, passed):
    metrics = {"demographic_parity_difference": 0.08, "slice_auc_gap": 0.05}
    decision = gate(metrics, {"fairness": {"slice_column": "channel", **fairness}})
    assert decision.passed is passed
    assert {c.kind for c in decision.checks} == {"fairness"}


def test_a_fairness_metric_that_cannot_be_computed_fails_with_the_reason():
    why = "fewer than 2 slices of 'channel' have at least 20 rows and every class"
    decision = gate({"demographic_parity_difference": 0.0}, {"fairness": {"slice_column": "channel", "max_auc_gap": 0.1}},
                    notes={"slice_auc_gap": why})
    assert decision.passed is False and decision.reason == f"slice_auc_gap: {why}"


def test_report_compares_challenger_and_champion():
    evaluation = evaluate_predictions(np.array([0, 1, 0, 1]), _binary([0.2, 0.9, 0.3, 0.6]), BINARY)
    champion = _champion({**evaluation.metrics, "roc_auc": 0.9, "log_loss": 0.5})
    decision = gate(evaluation.metrics, {"relative": {"min_improvement": 0.05}}, champion=champion)
    text = gate_report_markdown(evaluation, decision, model_uri="gs://b/m", holdout_sha256="ab" * 32)
    lines = text.splitlines()
    assert "Champion: version 3 (`models:/fraud/3`), evaluated on the same holdout" in lines
    assert "Holdout rows: 4 (SHA-256 `abababababababab…`)" in lines
    row = next(line for line in lines if line.startswith("| relative | roc_auc |"))
    assert row.startswith("| relative | roc_auc | 1.0000 | 0.9000 | — | Δ ≥ +0.05 | pass | roc_auc improves by +0.1000")
    assert "| metric | challenger | champion | Δ |" in lines
    assert "| roc_auc | 1.0000 | 0.9000 | +0.1000 |" in lines
