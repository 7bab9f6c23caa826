"""Evaluation and registration against a real `mlflow server` on loopback (SQLite backend)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from loopline import registry
from loopline.core import logs
from loopline.core.errors import BlessingError, RegistryError
from loopline.data.tables import file_sha256, read_split

from .conftest import MlflowServer
from .conftest import evaluate_step as evaluate
from .conftest import register_step as register

COMMIT = "0123456789abcdef0123456789abcdef01234567"
IMAGES = {"base": "mirror.example/loopline-base:0.1.0", "trainer": "mirror.example/loopline-trainer:0.1.0",
          "deployer": "mirror.example/loopline-deployer:0.1.0"}
BEAT_THE_CHAMPION = {"absolute": {"roc_auc": 0.6}, "relative": {"min_improvement": 0.0, "max_regression": {"log_loss": 0.0}}}


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    logs.quiet_libraries()
    monkeypatch.setenv(registry.GIT_COMMIT_ENV, COMMIT)


def _first_version(trained_model, loaded, tmp_path, uri, name):
    """Judge and register the model as version 1 of `name`, then deploy-style move `champion` to it."""
    passed, outs = evaluate(trained_model, loaded, tmp_path / "first", BEAT_THE_CHAMPION, tracking_uri=uri,
                            model_name=name)
    assert passed is True
    version = register(trained_model, loaded, tmp_path, uri, outs["blessing"], model_name=name, pipeline_run="run-1")
    registry.set_alias(uri, name, registry.CHAMPION, version)
    return version, outs


def test_registration_with_signature_input_example_lineage_and_idempotency(trained_model, loaded, tmp_path,
                                                                           mlflow_server, demo_csv):
    from mlflow.models import Model

    uri, name = mlflow_server.uri, "lineage"
    passed, outs = evaluate(trained_model, loaded, tmp_path / "eval", BEAT_THE_CHAMPION, tracking_uri=uri,
                            model_name=name)
    assert passed is True
    report = Path(outs["report"].path).read_text()
    assert "Champion: none yet (first model); relative gates are skipped" in report

    version = register(trained_model, loaded, tmp_path, uri, outs["blessing"], model_name=name,
                       pipeline_run="run-1", pipeline_name="loopline-training", pipeline_run_id="uuid-1",
                       image_refs=IMAGES)
    assert version == "1"
    assert registry.aliases(uri, name) == {"challenger": "1"}

    tags = registry.version_tags(uri, name, "1")
    holdout, spec = read_split(loaded["holdout"].path)
    assert tags[registry.TAG_DATA_URI] == str(demo_csv)
    assert tags[registry.TAG_DATA_SHA256] == file_sha256(str(demo_csv))
    assert tags[registry.TAG_HOLDOUT_SHA256] == file_sha256(loaded["holdout"].path)
    assert (tags[registry.TAG_PIPELINE_NAME], tags[registry.TAG_PIPELINE_RUN], tags[registry.TAG_PIPELINE_RUN_ID]) == (
        "loopline-training", "run-1", "uuid-1")
    assert {role: tags[f"loopline.image.{role}"] for role in IMAGES} == IMAGES
    assert tags[registry.TAG_GIT_COMMIT] == COMMIT
    exported = json.loads((trained_model / "loopline_model.json").read_text())["params"]
    assert json.loads(tags[registry.TAG_HYPERPARAMETERS]) == exported
    assert isinstance(exported["hidden_layers"], int)  # as training chose them, not as floats
    metrics = json.loads(tags[registry.TAG_METRICS])
    assert metrics["roc_auc"] == pytest.approx(outs["metrics"].metadata["roc_auc"], abs=1e-6)
    assert tags[registry.TAG_GATE_REPORT].startswith("## Evaluation gate: PASSED")
    assert "| absolute | roc_auc |" in tags[registry.TAG_GATE_REPORT]
    assert tags[registry.TAG_GATE_CHAMPION] == "none"

    # a real MLflow signature and input example
    logged = Model.load(f"models:/{name}/1")
    assert logged.signature.inputs.input_names() == list(spec.features)
    assert logged.signature.outputs.input_names() == spec.classes
    assert logged.saved_input_example_info["type"] == "dataframe"
    example = logged.load_input_example(registry.saved_model_dir(uri, name, "1", tmp_path / "dl").parents[1])
    assert list(example.columns) == list(spec.features) and len(example) == 3

    # the same pipeline run again: the same version, nothing new
    again = register(trained_model, loaded, tmp_path, uri, outs["blessing"], model_name=name, pipeline_run="run-1")
    assert again == "1"
    # a deployment moves champion; the next registration moves only challenger
    registry.set_alias(uri, name, registry.CHAMPION, "1")
    assert register(trained_model, loaded, tmp_path, uri, outs["blessing"], model_name=name, pipeline_run="run-2") == "2"
    assert registry.aliases(uri, name) == {"champion": "1", "challenger": "2"}
    assert [v["version"] for v in registry.versions(uri, name)] == ["1", "2"]


def test_registration_saves_the_input_example_without_importing_tensorflow(trained_model, splits, tmp_path):
    code = f"""
import sys
from loopline import registry
from loopline.core import logs
from loopline.data.tables import read_split
logs.quiet_libraries()
holdout, spec = read_split({str(splits['holdout'])!r})
version = registry.register({str(trained_model)!r}, tracking_uri=registry.local_tracking_uri({str(tmp_path)!r}),
    model_name="no-tf", pipeline_run="r", tags={{}}, params={{}}, metrics={{}},
    input_example=holdout[list(spec.features)].head(2))
print(version.version, "tensorflow" in sys.modules, "keras" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-3:] == ["1", "False", "False"]


def test_the_champion_is_evaluated_on_the_same_holdout(trained_model, loaded, tmp_path, mlflow_server):
    uri, name = mlflow_server.uri, "champion-eval"
    _first_version(trained_model, loaded, tmp_path, uri, name)

    # the same model again: no worse than the champion, so "at least as good" passes ...
    passed, outs = evaluate(trained_model, loaded, tmp_path / "same", BEAT_THE_CHAMPION, tracking_uri=uri,
                            model_name=name)
    assert passed is True
    metrics = outs["metrics"].metadata
    assert metrics["champion_roc_auc"] == pytest.approx(metrics["roc_auc"], abs=1e-6)
    report = Path(outs["report"].path).read_text()
    assert f"Champion: version 1 (`models:/{name}/1`), evaluated on the same holdout" in report
    row = next(line for line in report.splitlines() if line.startswith("| relative | roc_auc |"))
    auc = f"{metrics['roc_auc']:.4f}"
    # challenger, champion, then the baseline's value
    assert row.startswith(f"| relative | roc_auc | {auc} | {auc} | ") and "| Δ ≥ +0 | pass |" in row
    record = json.loads(Path(outs["blessing"].path).read_text())
    assert record["champion"]["version"] == "1" and record["blessed"] is True

    # ... while a required improvement of +0.01 fails, and registration refuses the model
    config = {"relative": {"min_improvement": 0.01}}
    passed, outs = evaluate(trained_model, loaded, tmp_path / "better", config, tracking_uri=uri, model_name=name)
    assert passed is False
    assert "| relative | roc_auc |" in Path(outs["report"].path).read_text()
    with pytest.raises(BlessingError, match="not blessed"):
        register(trained_model, loaded, tmp_path, uri, outs["blessing"], model_name=name, pipeline_run="run-2")
    assert registry.aliases(uri, name) == {"champion": "1", "challenger": "1"}


def test_a_corrupted_champion_artifact_fails_the_gate_unless_allowed(trained_model, loaded, tmp_path, mlflow_server):
    from mlflow import MlflowClient

    uri, name = mlflow_server.uri, "corrupt"
    _first_version(trained_model, loaded, tmp_path, uri, name)
    model_id = MlflowClient(uri).get_model_version(name, "1").source.split("/")[-1]
    (stored,) = [p for p in mlflow_server.artifacts.rglob("saved_model.pb") if model_id in str(p)]
    stored.write_bytes(b"\x00 damaged in storage")

    passed, outs = evaluate(trained_model, loaded, tmp_path / "strict", BEAT_THE_CHAMPION, tracking_uri=uri,
                            model_name=name)
    assert passed is False
    record = json.loads(Path(outs["blessing"].path).read_text())
    assert record["reason"].startswith("champion version 1 could not be loaded: cannot load the champion")
    assert "| champion | champion |" in Path(outs["report"].path).read_text()

    allowed = {**BEAT_THE_CHAMPION, "allow_champion_load_failure": True}
    passed, outs = evaluate(trained_model, loaded, tmp_path / "allowed", allowed, tracking_uri=uri, model_name=name)
    assert passed is True
    report = Path(outs["report"].path).read_text()
    assert "| allowed |" in report and "| skipped |" in report


def test_registry_stopped_mid_run_retries_then_fails_cleanly(trained_model, splits, tmp_path, monkeypatch, caplog):
    from mlflow import MlflowClient

    from loopline.evaluation.evaluate import evaluate_champion

    server = MlflowServer(tmp_path / "registry").start()
    try:
        holdout, spec = read_split(splits["holdout"])
        arguments = dict(tracking_uri=server.uri, model_name="outage", tags={}, params={}, metrics={},
                         input_example=holdout[list(spec.features)].head(2))
        registry.register(str(trained_model), pipeline_run="run-1", **arguments)
        registry.set_alias(server.uri, "outage", registry.CHAMPION, "1")

        create_version = registry.create_version

        def stop_then_create(*args, **kwargs):  # the registry goes away after the model was logged
            server.stop()
            return create_version(*args, **kwargs)

        monkeypatch.setattr(registry, "create_version", stop_then_create)
        caplog.set_level(logging.WARNING, logger="loopline.registry")
        retry = registry.RetryPolicy(attempts=3, initial_delay=0.05)
        with pytest.raises(RegistryError) as excinfo:
            registry.register(str(trained_model), pipeline_run="run-2", retry=retry, **arguments)
        message = str(excinfo.value)
        assert "\n" not in message
        assert message.startswith("registering outage from pipeline run run-2 did not complete")
        assert f"registry at {server.uri} is still unavailable after 3 attempts" in message
        assert message.endswith("the champion alias was not touched")
        retries = [r.getMessage() for r in caplog.records if "registry unavailable (attempt" in r.getMessage()]
        assert len(retries) == 2 and "attempt 1/3" in retries[0] and "attempt 2/3" in retries[1]

        # while it is down, the evaluation step cannot load the champion: that is a reason, not a crash
        champion = evaluate_champion(tracking_uri=server.uri, model_name="outage", holdout=holdout, spec=spec,
                                     workdir=tmp_path / "champion", retry=retry)
        assert champion.status == "failed" and "still unavailable" in champion.error

        monkeypatch.setattr(registry, "create_version", create_version)
        server.start()
        assert registry.aliases(server.uri, "outage") == {"champion": "1", "challenger": "1"}
        assert len(MlflowClient(server.uri).search_model_versions("name = 'outage'")) == 1
        # once it is back, the same pipeline run registers its version; champion stays
        assert registry.register(str(trained_model), pipeline_run="run-2", **arguments).version == "2"
        assert registry.aliases(server.uri, "outage") == {"champion": "1", "challenger": "2"}
    finally:
        server.stop()
