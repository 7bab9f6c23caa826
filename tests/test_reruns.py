"""Drift-triggered retraining: escalation, cooldown and dedupe with the state in a real MLflow
(SQLite) registry, runs submitted by the real clients to the KFP and Vertex AI stand-ins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kfp import dsl

from loopline import components, registry
from loopline.cli.compile import _normalise
from loopline.core import logs
from loopline.core.errors import LooplineError
from loopline.ops import params, reruns, submit

from .conftest import ROOT

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ARGUMENTS = {"data_uri": "s3://data/current.csv", "target": "is_fraud", "thresholds": {"roc_auc": 0.8},
             "deploy_target": "kserve", "storage_uri": "s3://models/fraud"}


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    """One real MLflow store (SQLite) for the module; each test has a registered model of its own."""
    logs.quiet_libraries()
    return registry.local_tracking_uri(tmp_path_factory.mktemp("home"))


@pytest.fixture()
def model(request) -> str:
    return request.node.name.removeprefix("test_")[:80]


@pytest.fixture(scope="module")
def training():
    return params.read_pipeline(ROOT / "compiled" / "training.yaml")


def _retrain(target, training, tracking_uri, model, now, monitor_run="monitor-1", **options):
    return reruns.retrain(tracking_uri=tracking_uri, model_name=model, target=target, pipeline=training,
                          arguments={**ARGUMENTS, "tracking_uri": tracking_uri}, now=now, monitor_run=monitor_run,
                          settings=reruns.RetrainSettings(**options))


def _tags(tracking_uri, model) -> dict[str, str]:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri).get_registered_model(model).tags


def test_two_detections_inside_the_cooldown_start_one_run_and_one_after_it_starts_another(kfp_api, training, tracking_uri, model):
    target = submit.KfpTarget(host=kfp_api.url)
    first = _retrain(target, training, tracking_uri, model, T0, monitor_run="monitor-1")
    assert first.triggered and first.run_id and "the first drift-triggered run" in first.reason
    assert _tags(tracking_uri, model)[reruns.TAG_RUN] == first.run_id
    assert _tags(tracking_uri, model)[reruns.TAG_STARTED] == T0.isoformat()

    kfp_api.set_run_state(first.run_id, "SUCCEEDED")
    second = _retrain(target, training, tracking_uri, model, T0 + timedelta(hours=5), monitor_run="monitor-2")
    assert not second.triggered
    assert second.reason == (f"cooldown: the last drift-triggered training run {first.run_id} started 2026-03-02 08:00 UTC, "
                             "5.0 h ago; the cooldown is 24 h, so the next one can start from 2026-03-03 08:00 UTC")
    assert len(kfp_api.created_runs()) == 1

    third = _retrain(target, training, tracking_uri, model, T0 + timedelta(hours=25), monitor_run="monitor-3")
    assert third.triggered and third.run_id != first.run_id
    assert f"the last one ({first.run_id}) started 25.0 h ago" in third.reason
    runs = kfp_api.created_runs()
    assert len(runs) == 2
    assert runs[1]["runtime_config"]["parameters"] == {**ARGUMENTS, "tracking_uri": tracking_uri}
    assert runs[1]["display_name"] == "loopline-training-drift-20260303-090000"


def test_no_new_run_while_the_last_one_is_still_running_even_after_the_cooldown(kfp_api, training, tracking_uri, model):
    target = submit.KfpTarget(host=kfp_api.url)
    first = _retrain(target, training, tracking_uri, model, T0)
    kfp_api.set_run_state(first.run_id, "RUNNING")
    later = _retrain(target, training, tracking_uri, model, T0 + timedelta(hours=30), monitor_run="monitor-2")
    assert not later.triggered
    assert later.reason == f"the drift-triggered training run {first.run_id} is still RUNNING; not starting another"
    assert len(kfp_api.created_runs()) == 1
    kfp_api.set_run_state(first.run_id, "FAILED")
    assert _retrain(target, training, tracking_uri, model, T0 + timedelta(hours=31), monitor_run="monitor-3").triggered


def test_a_retried_step_of_the_same_monitor_run_submits_once(kfp_api, training, tracking_uri, model):
    target = submit.KfpTarget(host=kfp_api.url)
    first = _retrain(target, training, tracking_uri, model, T0, monitor_run="monitor-7")
    again = _retrain(target, training, tracking_uri, model, T0 + timedelta(minutes=2), monitor_run="monitor-7")
    assert again.triggered and again.run_id == first.run_id and "the step was retried" in again.reason
    assert len(kfp_api.created_runs()) == 1


def test_a_failed_submission_leaves_no_claim_behind(kfp_api, training, tracking_uri, model):
    with pytest.raises(submit.SubmitError, match="cannot reach KFP at http://127.0.0.1:9"):
        _retrain(submit.KfpTarget(host="http://127.0.0.1:9"), training, tracking_uri, model, T0)
    assert reruns.TAG_RUN not in _tags(tracking_uri, model)
    # the next detection is not held back by a run that never started
    assert _retrain(submit.KfpTarget(host=kfp_api.url), training, tracking_uri, model, T0 + timedelta(minutes=5)).triggered


def test_bad_arguments_are_refused_before_anything_is_sent(kfp_api, training, tracking_uri, model):
    with pytest.raises(params.ParameterError, match="parameter 'n_trials' of loopline-training expects an integer"):
        reruns.retrain(tracking_uri=tracking_uri, model_name=model, target=submit.KfpTarget(host=kfp_api.url),
                       pipeline=training, arguments={**ARGUMENTS, "tracking_uri": tracking_uri, "n_trials": "four"},
                       settings=reruns.RetrainSettings())
    assert kfp_api.requests == []


def test_vertex_two_detections_start_one_pipeline_job(vertex_api, training, tracking_uri, model):
    from google.auth.credentials import AnonymousCredentials

    target = submit.VertexTarget(project="loopline-test", location="europe-west4", api_endpoint=vertex_api.url,
                                 credentials=AnonymousCredentials())
    first = _retrain(target, training, tracking_uri, model, T0, pipeline_root="gs://bucket/root")
    second = _retrain(target, training, tracking_uri, model, T0 + timedelta(hours=1), monitor_run="monitor-2",
                      pipeline_root="gs://bucket/root")
    assert first.triggered and not second.triggered
    assert second.reason == f"the drift-triggered training run {first.run_id} is still PIPELINE_STATE_PENDING; not starting another"
    assert len(vertex_api.find("POST", "/pipelineJobs")) == 1 and vertex_api.storage_requests() == []


def test_trigger_training_component_submits_the_compiled_training_pipeline(kfp_api, tracking_uri, model, tmp_path):
    """Through the component: the YAML it uploads is compiled/training.yaml; the decision, its
    reason and the run are outputs; a second detection starts nothing."""
    outputs = []
    for attempt in ("monitor-run-a", "monitor-run-b"):
        summary = dsl.Markdown(name="summary", uri=str(tmp_path / attempt / "summary"), metadata={})
        reason, run = tmp_path / attempt / "reason", tmp_path / attempt / "run"
        triggered = components.trigger_training.python_func(
            data_uri="s3://data/current.csv", target="is_fraud", tracking_uri=tracking_uri, thresholds={"roc_auc": 0.8},
            summary=summary, reason=str(reason), run=str(run), model_name=model, feature_kinds={}, ignore_columns=[],
            n_trials=4, max_epochs=15, timeout_seconds=0.0, seed=42, deploy_target="kserve", namespace="ml",
            storage_uri="s3://models/fraud", rerun_target="kfp", kfp_host=kfp_api.url, vertex_project="",
            vertex_location="", pipeline_root="s3://artifacts", service_account="pipeline-runner", cooldown_hours=24.0,
            monitor_run=attempt, image_registry="", kubernetes_settings={},
        )
        outputs.append((triggered, reason.read_text(), run.read_text(), Path(summary.path).read_text()))
    (first, second) = outputs
    assert first[0] is True and first[2] == "run-5" and "started training run" in first[1]
    assert "## Drift-triggered training: started" in first[3] and "run-5" in first[3]
    assert second[0] is False and second[2] == "" and "is still PENDING" in second[1]
    assert len(kfp_api.created_runs()) == 1
    (version,) = kfp_api.find("POST", "/pipelines/upload_version")
    assert _normalise(version.body["uploadfile"]) == _normalise((ROOT / "compiled" / "training.yaml").read_text())
    run = kfp_api.created_runs()[0]
    assert run["service_account"] == "pipeline-runner" and run["runtime_config"]["pipeline_root"] == "s3://artifacts"


def test_targets_of_a_drift_triggered_run(monkeypatch):
    assert reruns.target_for("kfp").key == "kfp:in-cluster"
    monkeypatch.setenv("CLOUD_ML_PROJECT_ID", "from-env")
    monkeypatch.setenv("CLOUD_ML_REGION", "europe-west4")
    assert reruns.target_for("vertex").key == "vertex:from-env/europe-west4"
    with pytest.raises(LooplineError, match="rerun_target must be 'kfp' or 'vertex', got 'k8s'"):
        reruns.target_for("k8s")


# ------------------------------------------------------------------------------------- escalation


def _metrics(tmp_path, share: float):
    return dsl.Metrics(name="metrics", uri=str(tmp_path / "metrics"), metadata={
        "share_drifted": share, "drifted": 1.0, "drift_amount": 0.98, "drift_hour": 0.5, "drift_channel": 0.33,
        "drift_distance_km": 3.14})


def test_drift_above_the_escalation_threshold_fails_with_a_clear_message(tmp_path):
    with pytest.raises(reruns.DriftEscalated) as info:
        components.check_drift_escalation.python_func(metrics=_metrics(tmp_path, 1.0), drift_share=0.5,
                                                      escalation_threshold=0.8, rerun_mode="submit")
    message = str(info.value)
    assert message.startswith("drift needs a person: 100% of features drifted, above the escalation threshold 80%")
    assert "feature drift scores: amount 0.98, hour 0.5, channel 0.33, distance_km 3.14;" in message
    assert "not retraining automatically: look at the drift report" in message and "\n" not in message


def test_drift_within_the_range_retrains(tmp_path):
    assert components.check_drift_escalation.python_func(
        metrics=_metrics(tmp_path, 0.6), drift_share=0.5, escalation_threshold=0.8, rerun_mode="nested") is True
    # the default threshold (1.0) never escalates
    assert components.check_drift_escalation.python_func(
        metrics=_metrics(tmp_path, 1.0), drift_share=0.5, escalation_threshold=1.0, rerun_mode="nested") is True


@pytest.mark.parametrize(
    "threshold, mode, message",
    [
        (0.4, "nested", r"escalation_threshold \(0.4\) must be above drift_share \(0.5\)"),
        (1.5, "nested", r"escalation_threshold must be in \(0, 1\], got 1.5"),
        (0.9, "sumbit", "rerun_mode must be one of 'nested', 'submit', got 'sumbit'"),
    ],
)
def test_escalation_settings_are_checked(tmp_path, threshold, mode, message):
    with pytest.raises(LooplineError, match=message):
        components.check_drift_escalation.python_func(metrics=_metrics(tmp_path, 0.6), drift_share=0.5,
                                                      escalation_threshold=threshold, rerun_mode=mode)


@pytest.mark.slow
def test_drift_monitor_in_submit_mode_starts_one_training_run_for_two_detections(kfp_api, tmp_path):
    """kfp.local: the drift monitor twice on a drifted window, rerun_mode=submit, against the
    KFP stand-in and a real MLflow store: one training run; the second monitor says why not."""
    import json

    from kfp import local

    from loopline.data.demo import demo_transactions
    from loopline.ops.cluster import ClusterSettings
    from loopline.pipelines.drift_monitor import build_drift_monitor

    reference, current = tmp_path / "reference.csv", tmp_path / "current.csv"
    demo_transactions(800, seed=1).to_csv(reference, index=False)
    demo_transactions(800, shift=1.0, seed=2).to_csv(current, index=False)
    tracking_uri = registry.local_tracking_uri(tmp_path / "home")
    root = tmp_path / "root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    drift_monitor = build_drift_monitor(ClusterSettings(retries=0))  # a failure shows at once
    for _ in range(2):
        drift_monitor(
            reference_data_uri=str(reference), current_data_uri=str(current), target="is_fraud", tracking_uri=tracking_uri,
            ignore_columns=["transaction_id"], rerun_mode="submit", rerun_target="kfp", kfp_host=kfp_api.url,
            deploy_target="kserve", storage_uri="s3://models/loopline",
        )
    decisions = []
    for run_dir in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime):
        ran = {p.parent.name for p in run_dir.glob("*/executor_output.json")}
        # nothing trained in the monitor (batch-predict scores nothing before a champion exists)
        assert ran == {"detect-drift", "check-drift-escalation", "trigger-training", "batch-predict"}
        task = run_dir / "trigger-training"
        output = json.loads((task / "executor_output.json").read_text())["parameterValues"]
        decisions.append((output["Output"], (task / "reason").read_text()))
    assert [d[0] for d in decisions] == [True, False]
    assert "is still PENDING; not starting another" in decisions[1][1]
    (run,) = kfp_api.created_runs()
    assert run["runtime_config"]["parameters"]["data_uri"] == str(current)
    assert run["runtime_config"]["parameters"]["deploy_target"] == "kserve"
