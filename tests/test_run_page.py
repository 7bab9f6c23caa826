"""The run page's parts: the graph drawn from the compiled pipelines, the pictures of the
evaluation. (The page of a whole run, in a browser: tests/test_local_loop.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from loopline.local import records as localruns
from loopline.local import runpage, runpage_svg

ROOT = Path(__file__).resolve().parents[1]


def spec(name: str) -> dict:
    return yaml.safe_load((ROOT / "compiled" / f"{name}.yaml").read_text())


def test_the_training_graph_follows_the_pipeline():
    order, waits, groups = runpage_svg.pipeline_graph(spec("training"))
    assert set(order) == {
        "load-data", "validate-data", "tune-model", "train-model", "evaluate-model", "register-model", "deploy-model"}
    assert waits["validate-data"] == {"load-data"}
    assert waits["tune-model"] == {"validate-data"}
    assert waits["train-model"] == {"tune-model"}  # and through it, after validate-data
    assert waits["register-model"] == {"evaluate-model"} and waits["deploy-model"] == {"register-model"}
    assert groups["register-model"].startswith("if evaluate-model-Output == true")
    assert groups["tune-model"] == "for each tuning worker"


def test_the_drift_monitor_graph_nests_the_training_under_its_conditions():
    order, waits, groups = runpage_svg.pipeline_graph(spec("drift_monitor"))
    assert waits["detect-drift"] == set()
    assert waits["check-drift-escalation"] == {"detect-drift"}
    assert waits["load-data"] == {"check-drift-escalation"}
    assert waits["trigger-training"] == {"check-drift-escalation"}
    assert waits["deploy-model"] == {"register-model"}
    assert "rerun_mode == 'nested'" in groups["load-data"] and "rerun_mode == 'submit'" in groups["trigger-training"]


def test_the_graph_shows_each_step_s_status_and_links_to_it():
    steps = {
        "load-data": localruns.StepRecord(pipeline="p", task="load-data", started=0.0, ended=2.5, status="SUCCESS"),
        "validate-data": localruns.StepRecord(pipeline="p", task="validate-data", started=2.5, ended=4.0, status="FAILURE"),
    }
    svg = runpage_svg.graph_svg(spec("training"), steps, lambda task: f"step-{task}")
    assert '<a href="#step-load-data"><g class="node" data-task="load-data" data-status="SUCCESS">' in svg
    assert 'data-task="validate-data" data-status="FAILURE"' in svg and "failed after 1.5s" in svg
    assert 'data-task="deploy-model" data-status="NOT RUN"' in svg and 'href="#step-deploy-model"' not in svg


def test_the_roc_curve_and_its_area():
    points = [{"falsePositiveRate": 0.0, "recall": 0.0}, {"falsePositiveRate": 0.0, "recall": 0.5},
              {"falsePositiveRate": 0.5, "recall": 1.0}, {"falsePositiveRate": 1.0, "recall": 1.0}]
    svg = runpage_svg.roc_svg(points)
    assert "AUC 0.875" in svg
    (polyline,) = re.findall(r'<polyline points="([^"]+)"', svg)
    assert len(polyline.split()) == 4
    assert runpage_svg.roc_svg(points[:1]) == ""


def test_the_confusion_matrix_shows_every_count():
    matrix = {"annotationSpecs": [{"displayName": "0"}, {"displayName": "1"}], "rows": [{"row": [857, 5]}, {"row": [36, 2]}]}
    svg = runpage_svg.confusion_matrix_svg(matrix)
    assert [int(n.replace(",", "")) for n in re.findall(r">([\d,]+)</text>", svg)][-4:] == [857, 5, 36, 2]
    assert ">predicted</text>" in svg and ">actual</text>" in svg


@pytest.mark.parametrize("text, expected", [
    ("| gate | verdict |\n|---|---|\n| absolute | pass |\n", "<th>gate</th>"),
    ("<script>alert(1)</script>", "&lt;script&gt;"),
])
def test_markdown_is_rendered_and_html_in_it_is_not(text, expected):
    assert expected in runpage.markdown_html(text)
