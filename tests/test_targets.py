"""Choice lists declared once: the deployment targets come from one registry (the deploy step, the
command line, the submissions' checks), and the gate accepts exactly the metrics the evaluation
computes."""

from __future__ import annotations

import numpy as np
import pytest

from loopline.cli import app
from loopline.core.errors import DeploymentError, GateConfigError
from loopline.evaluation import gate, metrics
from loopline.ops import domains, submit
from loopline.serving import targets


def test_every_list_of_deployment_targets_is_the_registry():
    names = tuple(targets.TARGETS)
    assert names == ("local", "kserve", "vertex")
    assert submit.ALLOWED_VALUES["deploy_target"] == names
    run = app.build_parser()._subparsers._group_actions[0].choices["run"]
    choice = next(a for a in run._actions if "--deploy-target" in a.option_strings)
    assert tuple(choice.choices) == names
    for name in names:
        assert targets.target(name).name == name
        targets.DeploySettings(target=name)
    with pytest.raises(DeploymentError, match="deploy target must be one of 'local', 'kserve', 'vertex', got 'vertexx'"):
        targets.target("vertexx")
    with pytest.raises(DeploymentError, match="target must be one of"):
        targets.DeploySettings(target="ec2")
    with pytest.raises(DeploymentError):
        domains.check({"deploy_target": "ec2"})


def test_a_cluster_target_refuses_a_model_uri_its_servers_cannot_read(tmp_path):
    with pytest.raises(DeploymentError, match="KServe cannot read"):
        targets.target("kserve").check_model_uri(str(tmp_path / "model"), "3")
    targets.target("kserve").check_model_uri("s3://models/fraud/v3", "3")
    targets.target("local").check_model_uri(str(tmp_path / "model"), "3")  # a local server reads local files


@pytest.mark.parametrize("n_classes", [2, 3])
def test_the_gate_metrics_are_exactly_what_the_evaluation_computes(n_classes):
    rng = np.random.default_rng(0)
    labels = np.arange(60) % n_classes
    proba = rng.dirichlet(np.ones(n_classes), size=60)
    computed = metrics.evaluate_predictions(labels, proba, [f"c{i}" for i in range(n_classes)]).metrics
    per_class = {f"{p}c{i}" for p in metrics.PER_CLASS_PREFIXES for i in range(n_classes)}
    assert per_class <= set(computed)
    headline = set(computed) - per_class
    expected = set(metrics.QUALITY_METRICS) - ({"decision_threshold"} if n_classes > 2 else set())
    assert headline == expected
    assert set(metrics.QUALITY_METRICS) <= set(gate.GATE_METRICS)


def test_average_precision_is_a_gate_metric_and_a_misspelt_metric_is_refused():
    config = gate.parse_gate_config({"absolute": {"average_precision": 0.3}})
    assert [(r.kind, r.metric) for r in config.rules] == [("absolute", "average_precision")]
    with pytest.raises(GateConfigError, match="did you mean 'average_precision'"):
        gate.parse_gate_config({"absolute": {"average_precission": 0.3}})
