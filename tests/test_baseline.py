"""The logistic-regression baseline and the gate rule that compares the challenger with it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopline.core.errors import DataError, GateConfigError
from loopline.data.spec import DatasetSpec
from loopline.evaluation.baseline import fit_baseline
from loopline.evaluation.evaluate import gate, gate_report_markdown, gate_table_markdown
from loopline.evaluation.gate import parse_gate_config
from loopline.evaluation.metrics import Evaluation, evaluate_predictions

SPEC = DatasetSpec(target="y", features={"amount": "numeric", "channel": "categorical"}, classes=["no", "yes"])


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.normal(size=n)
    channel = rng.choice(["web", "shop", "phone"], size=n)
    logit = 2.0 * amount + np.where(channel == "web", 1.5, -0.5)
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame = pd.DataFrame({"amount": amount, "channel": channel, "y": y})
    frame.loc[::17, "amount"] = np.nan
    frame.loc[::13, "channel"] = None
    return frame


def _evaluation(metrics: dict[str, float]) -> Evaluation:
    return Evaluation(metrics=metrics, classes=["no", "yes"], confusion_matrix=[[1, 0], [0, 1]], roc=None, rows=2)


def test_the_baseline_learns_from_numbers_and_categories_with_missing_values():
    train, holdout = _frame(3000, 1), _frame(1000, 2)
    baseline = fit_baseline(train, SPEC)
    proba = baseline.predict_proba(holdout)
    assert proba.shape == (1000, 2) and np.allclose(proba.sum(axis=1), 1.0)
    labels = (holdout["y"] == "yes").to_numpy(dtype=int)
    auc = evaluate_predictions(labels, proba, SPEC.classes).metrics["roc_auc"]
    assert auc > 0.8  # the signal is linear in amount and channel: the regression finds it
    # an unseen category and a missing value are scored (the all-zeros code), not an error
    odd = pd.DataFrame({"amount": [np.nan, 0.5], "channel": ["fax", None], "y": ["no", "yes"]})
    assert np.isfinite(baseline.predict_proba(odd)).all()


def test_the_baseline_keeps_the_class_order_of_the_spec_and_samples_large_splits():
    train = _frame(500, 3)
    spec = DatasetSpec(target="y", features=SPEC.features, classes=["yes", "no"])  # reversed order
    proba = fit_baseline(train, spec).predict_proba(train)
    straight = fit_baseline(train, SPEC).predict_proba(train)
    assert np.allclose(proba[:, 0], straight[:, 1])
    assert fit_baseline(train, SPEC, max_rows=200).rows == 200


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["channel"]), "lacks feature column(s) the baseline needs: channel"),
        (lambda f: f.assign(y="no"), "a single class of 'y'"),
        (lambda f: f.assign(y="maybe"), "classes the dataset spec does not list"),
        (lambda f: f.drop(columns=["y"]), "lacks the target column 'y'"),
    ],
)
def test_unusable_training_splits_are_one_line_errors(change, message):
    with pytest.raises(DataError) as excinfo:
        fit_baseline(change(_frame(200, 4)), SPEC)
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_the_baseline_rule_is_on_by_default_and_can_be_set_or_turned_off():
    assert parse_gate_config({"roc_auc": 0.5}).baseline.metric == "roc_auc"
    assert parse_gate_config({"roc_auc": 0.5}).baseline.tolerance == 0.005
    custom = parse_gate_config({"absolute": {"roc_auc": 0.5}, "baseline": {"metric": "log_loss", "tolerance": 0.1}})
    assert (custom.baseline.metric, custom.baseline.tolerance) == ("log_loss", 0.1)
    assert parse_gate_config({"absolute": {"roc_auc": 0.5}, "baseline": False}).baseline is None
    # written out, the baseline rule is a configured rule; by default alone, it is not
    assert parse_gate_config({"baseline": {"tolerance": 0.0}}).baseline.tolerance == 0.0
    with pytest.raises(GateConfigError, match="no gate thresholds configured"):
        parse_gate_config({"baseline": True})


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"tolerance": -0.1}, "baseline.tolerance must not be negative"),
        ({"tolerance": "0.01"}, "baseline.tolerance must be a finite number"),
        ({"metric": ""}, "baseline.metric must be a metric name"),
        ({"primary": "roc_auc"}, "baseline: unknown key(s) primary"),
        ("on", "baseline must be a mapping"),
    ],
)
def test_bad_baseline_sections_are_one_line_errors(section, message):
    with pytest.raises(GateConfigError) as excinfo:
        parse_gate_config({"absolute": {"roc_auc": 0.5}, "baseline": section})
    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    ("challenger", "passed"),
    [(0.80, True), (0.796, True), (0.7949, False), (0.60, False)],
)
def test_the_challenger_may_trail_the_baseline_by_the_tolerance_only(challenger, passed):
    decision = gate({"roc_auc": challenger}, {"roc_auc": 0.5}, baseline=_evaluation({"roc_auc": 0.80}))
    check = decision.checks[-1]
    assert decision.passed is passed and check.kind == "baseline" and check.baseline == 0.80
    assert ("within" if passed else "exceeds") in check.reason and "logistic regression baseline" in check.reason


def test_lower_is_better_metrics_compare_the_other_way():
    config = {"absolute": {"roc_auc": 0.5}, "baseline": {"metric": "log_loss", "tolerance": 0.01}}
    baseline = _evaluation({"roc_auc": 0.8, "log_loss": 0.40})
    assert gate({"roc_auc": 0.8, "log_loss": 0.405}, config, baseline=baseline).passed is True
    assert gate({"roc_auc": 0.8, "log_loss": 0.42}, config, baseline=baseline).passed is False


def test_the_rule_fails_closed_without_a_baseline_or_a_finite_value():
    missing = gate({"roc_auc": 0.9}, {"roc_auc": 0.5})
    assert missing.passed is False and "the baseline was not evaluated" in missing.reason
    nan = gate({"roc_auc": 0.9}, {"roc_auc": 0.5}, baseline=_evaluation({"roc_auc": float("nan")}))
    assert nan.passed is False and "no finite value for the baseline" in nan.reason


def test_the_gate_table_and_the_report_show_the_baseline():
    labels = np.array([0, 1, 0, 1])
    challenger = evaluate_predictions(labels, np.array([[0.8, 0.2], [0.1, 0.9], [0.7, 0.3], [0.4, 0.6]]), ["no", "yes"])
    baseline = evaluate_predictions(labels, np.array([[0.6, 0.4], [0.5, 0.5], [0.4, 0.6], [0.3, 0.7]]), ["no", "yes"])
    decision = gate(challenger.metrics, {"accuracy": 0.5}, baseline=baseline)
    table = gate_table_markdown(decision, rows=4).splitlines()
    assert "Baseline: logistic regression baseline fitted on the training split, evaluated on the same holdout" in table
    row = next(line for line in table if line.startswith("| baseline |"))
    assert row.startswith("| baseline | roc_auc | 1.0000 | — | 0.7500 | worse by ≤ 0.005 | pass |")
    assert "| absolute | accuracy | 1.0000 | — | 0.5000 | >= 0.5 | pass |" in " ".join(table)
    report = gate_report_markdown(challenger, decision).splitlines()
    assert "| metric | challenger | baseline |" in report
    assert f"| roc_auc | 1.0000 | {baseline.metrics['roc_auc']:.4f} |" in report
