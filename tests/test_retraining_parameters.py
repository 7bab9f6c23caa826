"""Every parameter of the training pipeline reaches a drift-triggered retraining, nested or
submitted: the drift monitor takes each one (same type, same default) and hands it unchanged to the
training pipeline it runs and to the trigger_training step that submits one. Read from the compiled
YAML that users submit (`make check-compiled` keeps it equal to a fresh compile)."""

from __future__ import annotations

import pytest
import yaml

from loopline.ops import reruns
from tests.conftest import ROOT

COMPILED = ROOT / "compiled"
RETRAINING_DATA = ("data_uri", "current_data_uri")  # the retraining learns from the monitor's current window


def _spec(name: str) -> dict:
    return next(yaml.safe_load_all((COMPILED / name).read_text()))


def _inputs(component: dict) -> dict:
    return component.get("inputDefinitions", {}).get("parameters", {})


def _callers(spec: dict) -> dict[str, tuple[str, dict]]:
    """component name -> (the DAG that calls it, the calling task)."""
    dags = {"root": spec["root"], **{n: c for n, c in spec["components"].items() if "dag" in c}}
    return {task["componentRef"]["name"]: (dag, task) for dag, body in dags.items()
            for task in body["dag"]["tasks"].values()}


def _source(spec: dict, dag: str, task: dict, name: str) -> str | None:
    """The root input (the monitor's own parameter) that feeds input `name` of `task` in `dag`, or None."""
    callers = _callers(spec)
    given = task["inputs"]["parameters"].get(name)
    while given is not None and "componentInputParameter" in given:
        if dag == "root":
            return given["componentInputParameter"]
        dag, parent = callers[dag]
        given = parent["inputs"]["parameters"].get(given["componentInputParameter"])
    return None


def _task(spec: dict, task_name: str) -> tuple[str, dict]:
    for dag, body in spec["components"].items():
        if "dag" in body and task_name in body["dag"]["tasks"]:
            return dag, body["dag"]["tasks"][task_name]
    raise AssertionError(f"no task {task_name}")


def test_the_monitor_takes_every_training_parameter_with_its_type_and_default():
    training, monitor = _inputs(_spec("training.yaml")["root"]), _inputs(_spec("drift_monitor.yaml")["root"])
    assert len(training) == 36
    missing = [name for name in training if name not in monitor and name != "data_uri"]
    assert missing == []
    differ = [name for name in training if name in monitor and training[name] != monitor[name]]
    assert differ == []


@pytest.mark.parametrize("task", ["loopline-training", "trigger-training"], ids=["nested", "submitted"])
def test_every_training_parameter_reaches_the_retraining_unchanged(task):
    spec = _spec("drift_monitor.yaml")
    training = _inputs(_spec("training.yaml")["root"])
    dag, called = _task(spec, task)
    sources = {name: _source(spec, dag, called, name) for name in training}
    expected = {name: ("current_data_uri" if name == "data_uri" else name) for name in training}
    assert sources == expected


def test_trigger_training_declares_every_training_parameter_and_hands_on_exactly_those():
    component = _spec("components/trigger_training.yaml")
    own = _inputs(component["root"])
    training = _inputs(_spec("training.yaml")["root"])
    assert [name for name in training if name not in own] == []
    types = {name: own[name]["parameterType"] for name in training}
    assert types == {name: spec["parameterType"] for name, spec in training.items()}
    # for another team's pipeline: the component's defaults are the training pipeline's, except where a
    # submitted run differs on purpose (a cluster run deploys to KServe; the gate rules must be given)
    differ = {name for name in training if own[name].get("defaultValue") != training[name].get("defaultValue")}
    assert differ == {"deploy_target", "thresholds"}
    values = {name: spec.get("defaultValue") for name, spec in own.items()} | {"summary": object(), "run": "/tmp/x"}
    assert set(reruns.training_arguments(values)) == set(training)
