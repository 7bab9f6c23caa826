"""The DockerRunner plumbing that needs no container engine: which image runs each task, what a
step can see, and a step whose container failed although kfp.local logged it as SUCCESS."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopline.core.images import image
from loopline.local import container_runner
from loopline.ops.cluster import ClusterSettings


def test_every_task_runs_on_the_image_its_component_names():
    from loopline.pipelines.drift_monitor import build_drift_monitor

    images = container_runner.step_images(build_drift_monitor(ClusterSettings(retries=0)))
    assert images["detect-drift"] == image("base") and images["load-data"] == image("base")
    assert images["train-model"] == image("trainer") and images["evaluate-model"] == image("trainer")
    assert images["deploy-model"] == image("deployer")  # tasks inside the retraining condition too


def test_local_data_is_copied_under_the_pipeline_root(tmp_path):
    data = tmp_path / "elsewhere" / "d.csv"
    data.parent.mkdir()
    data.write_text("a,b\n1,2\n")
    shared = container_runner.shared_dir(tmp_path / "root")
    assert oct(shared.stat().st_mode & 0o7777) == "0o1777"
    seen = container_runner.visible(str(data), shared)
    assert seen == str(shared / "data" / "d.csv") and (shared / "data" / "d.csv").read_text() == "a,b\n1,2\n"
    assert container_runner.visible("s3://bucket/d.csv", shared) == "s3://bucket/d.csv"
    assert container_runner.visible(seen, shared) == seen


def test_a_task_without_executor_output_is_a_failed_step(tmp_path):
    (tmp_path / "load-data").mkdir()
    (tmp_path / "load-data" / "executor_output.json").write_text("{}")
    (tmp_path / "train-model").mkdir()
    with pytest.raises(container_runner.ContainerError,
                       match=rf"^step train-model failed in {image('trainer')} \(no executor output"):
        container_runner.check_tasks(tmp_path, {"load-data": image("base"), "train-model": image("trainer")})


def test_the_steps_get_credentials_and_endpoints_but_not_the_host_home(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("LOOPLINE_HOME", "/somewhere")
    env = container_runner.container_env()
    assert env["AWS_ACCESS_KEY_ID"] == "key" and env["MLFLOW_S3_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert "LOOPLINE_HOME" not in env and "PATH" not in env


def test_the_podman_socket_does_not_live_under_a_long_home(tmp_path, monkeypatch):
    """A Unix socket's path is limited to 107 bytes; a deep --home must not break the run."""
    started = {}

    def fake_popen(argv, **kwargs):
        started["url"] = argv[-1]
        raise OSError("stop here")

    monkeypatch.setattr(container_runner.subprocess, "Popen", fake_popen)
    engine = container_runner.Engine(tmp_path / ("deep" * 30) / "engine")
    with pytest.raises(OSError, match="stop here"):
        engine._start_podman()
    assert started["url"].startswith("unix://") and len(started["url"]) - len("unix://") < 100
    engine.stop()


def test_a_failed_container_is_named_when_kfp_local_raises_first(tmp_path):
    """A step's container fails without kfp.local noticing (its exit code lost); the next task asks
    for an output it never wrote, and kfp.local raises. The step and its image are named instead."""
    from loopline.local import run as local

    root = tmp_path / "pipeline_root"
    root.mkdir()

    def pipeline():
        run = root / "loopline-training-1"
        (run / "load-data").mkdir(parents=True)
        (run / "load-data" / "executor_output.json").write_text("{}")
        (run / "train-model").mkdir()
        raise ValueError("Tried to get output 'model' from task 'train-model', but task 'train-model' not found.")

    images = {"load-data": image("base"), "train-model": image("trainer")}
    with pytest.raises(container_runner.ContainerError, match=rf"^step train-model failed in {image('trainer')} "):
        local._run_pipeline(root, "training", pipeline, check=lambda run: container_runner.check_tasks(run, images))


def test_the_local_store_under_the_shared_folder_is_writable_by_the_steps(tmp_path):
    from loopline import registry

    shared = container_runner.shared_dir(tmp_path / "pipeline_root")
    uri = registry.local_tracking_uri(shared)
    registry.check_store(uri)  # creates the SQLite file, 0644 as SQLite makes it
    container_runner.share_store(uri, shared)
    assert (Path(uri[len("sqlite:///"):]).stat().st_mode & 0o777) == 0o666
