"""Every rule on a parameter lives in its settings object and is checked once, before any work:
the settings object refuses the value, and `loopline submit --dry-run`, `loopline run` and the
step itself refuse it with the same one line; a run that cannot succeed never trains."""

from __future__ import annotations

import json
import math

import pytest

from loopline.cli.app import main
from loopline.core import rules
from loopline.core.errors import LooplineError
from loopline.data import tables as data
from loopline.data.demo import demo_transactions
from loopline.drift.settings import DriftSettings
from loopline.evaluation import gate as gate_config
from loopline.ops import cluster, reruns
from loopline.ops.submit import options as submit_options
from loopline.serving import targets
from loopline.tuning import study as tuning

from .conftest import ROOT, art

NAN = float("nan")

# (settings object, its arguments, the line it refuses them with)
SETTINGS_CASES = [
    (targets.DeploySettings, {"runtime": "tensorflow"}, "runtime 'tensorflow' (TensorFlow Serving) is refused"),
    (targets.DeploySettings, {"canary_percent": 150}, "canary_percent must be in [1, 99], got 150"),
    (targets.DeploySettings, {"canary_percent": 0}, "canary_percent must be in [1, 99], got 0"),
    (targets.DeploySettings, {"min_replicas": -1}, "min_replicas must be in [0, ∞), got -1"),
    (targets.DeploySettings, {"max_replicas": 0}, "max_replicas must be in [1, ∞), got 0"),
    (targets.DeploySettings, {"min_replicas": 3, "max_replicas": 2}, "min_replicas (3) is above max_replicas (2)"),
    (targets.DeploySettings, {"cpu": "-1"}, "cpu must be a Kubernetes quantity such as '500m'"),
    (targets.DeploySettings, {"cpu": "two"}, "cpu must be a Kubernetes quantity"),
    (targets.DeploySettings, {"memory": "2GB"}, "memory must be a Kubernetes quantity"),
    (targets.DeploySettings, {"namespace": "Models_Prod"}, "namespace 'Models_Prod' is not a Kubernetes namespace name"),
    (targets.DeploySettings, {"namespace": "a" * 64}, "is not a Kubernetes namespace name"),
    (targets.DeploySettings, {"storage_uri": "models/fraud"}, "storage_uri 'models/fraud' has no scheme"),
    (targets.DeploySettings, {"target": "kserve", "storage_uri": "file:///models"}, "is not one KServe can read"),
    (targets.DeploySettings, {"max_p95_ms": NAN}, "max_p95_ms must be a finite number, got nan"),
    (targets.DeploySettings, {"smoke_rows": 0}, "smoke_rows must be in [1, ∞), got 0"),
    (gate_config.GateSettings, {"thresholds": {"roc_auc": NAN}}, "threshold for 'roc_auc' must be a finite number, got nan"),
    (gate_config.GateSettings, {"thresholds": {"log_loss": {"max": NAN}}}, "threshold 'max' for 'log_loss' must be a finite"),
    (gate_config.GateSettings, {"thresholds": {"latency": {"max_single_row_p95_ms": -5}}},
     "latency.max_single_row_p95_ms must be above 0, got -5"),
    (gate_config.GateSettings, {"thresholds": {"absolute": {"roc_auc": 0.7}, "baseline": {"metric": "auc"}}},
     "baseline.metric: 'auc' is not a metric Loopline computes"),
    (gate_config.GateSettings, {"thresholds": {"fairness": {"slice_column": "channel", "max_auc_gap": -0.1}}},
     "fairness.max_auc_gap must not be negative, got -0.1"),
    (gate_config.GateSettings, {"thresholds": {"roc_auc": 0.7}, "model_name": "team/fraud"},
     "model_name 'team/fraud' is not a registered model name"),
    (data.SplitSettings, {"feature_kinds": {"amount": "float"}}, "feature_kinds: column 'amount' has the unknown kind 'float'"),
    (data.SplitSettings, {"ignore_columns": {"transaction_id": 1}}, "ignore_columns must be a list of names, got dict"),
    (data.SplitSettings, {"seed": -1}, "seed must be in [0, ∞), got -1"),
    (data.SplitSettings, {"holdout_fraction": NAN}, "holdout_fraction must be a finite number, got nan"),
    (DriftSettings, {"feature_kinds": {"amount": "text"}}, "feature_kinds: column 'amount' has the unknown kind 'text'"),
    (DriftSettings, {"drift_share": NAN}, "drift_share must be a finite number, got nan"),
    (DriftSettings, {"critical_features": "amount"}, "critical_features must be a list of names, got str"),
    (tuning.TuningSettings, {"n_trials": NAN}, "n_trials must be a whole number of at least 1, got nan"),
    (tuning.TuningSettings, {"max_epochs": math.inf}, "max_epochs must be a whole number, got inf"),
    (tuning.TuningSettings, {"timeout_seconds": NAN}, "timeout_seconds must be a finite number, got nan"),
    (reruns.RetrainSettings, {"cooldown_hours": NAN}, "cooldown_hours must be a finite number, got nan"),
    (reruns.RetrainSettings, {"rerun_target": "aws"}, "rerun_target must be one of 'kfp', 'vertex', got 'aws'"),
    (reruns.RetrainSettings, {"image_registry": "my registry/loopline"}, "image_registry 'my registry/loopline' is not an image"),
    (reruns.RetrainSettings, {"rerun_target": "vertex", "pipeline_root": "s3://bucket/root"},
     "training_pipeline_root: Vertex AI needs a gs:// pipeline root"),
    (reruns.EscalationSettings, {"escalation_threshold": NAN}, "escalation_threshold must be a finite number, got nan"),
    (cluster.TrainResources, {"cpu_request": "1 core"}, "train_cpu_request must be a Kubernetes quantity"),
    (cluster.TrainResources, {"memory_request": "16Gi", "memory_limit": "8G"},
     "train_memory_request (16Gi) is above train_memory_limit (8G)"),
    (cluster.TrainResources, {"accelerator_count": -1}, "train_accelerator_count must be in [0, ∞), got -1"),
    (submit_options.SubmitOptions, {"target": "vertex", "pipeline_root": "s3://bucket/root"},
     "Vertex AI needs a gs:// pipeline root (--pipeline-root), got 's3://bucket/root'"),
    (submit_options.SubmitOptions, {"target": "vertex", "pipeline_root": "gs://b/r", "labels": {"Team": "risk"}},
     "--label 'Team=risk': a Vertex AI label key starts with a lowercase letter"),
    (submit_options.SubmitOptions, {"max_concurrency": 0}, "max_concurrency must be in [1, ∞), got 0"),
]


@pytest.mark.parametrize(("settings_class", "arguments", "message"), SETTINGS_CASES,
                         ids=[f"{c[0].__name__}-{c[2][:40]}" for c in SETTINGS_CASES])
def test_the_settings_object_refuses_with_one_line(settings_class, arguments, message):
    with pytest.raises(LooplineError) as info:
        settings_class(**arguments)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_defaults_and_ordinary_values_pass():
    for settings_class in (targets.DeploySettings, data.SplitSettings, DriftSettings, tuning.TuningSettings,
                           reruns.RetrainSettings, reruns.EscalationSettings, cluster.TrainResources,
                           submit_options.SubmitOptions):
        settings_class()
    targets.DeploySettings(target="kserve", namespace="models-prod", storage_uri="s3://models", canary_percent=99,
                           min_replicas=0, max_replicas=4, cpu="500m", memory="1.5Gi")
    cluster.TrainResources(cpu_request="500m", cpu_limit="2", memory_request="512Mi", memory_limit="8G",
                           accelerator_count=1)
    submit_options.SubmitOptions(target="vertex", pipeline_root="gs://bucket/loopline", labels={"team": "risk-1"})
    assert rules.quantity_value("500m") == 0.5 and rules.quantity_value("2Gi") == 2 * 2**30
    assert rules.quantity_value("1e3") == 1000


# ------------------------------------------------------------------------------------------------
# loopline submit --dry-run: the compiled pipeline's parameters, its defaults included

TRAINING = ["--param", "data_uri=s3://data/train.csv", "--param", "target=is_fraud", "--param",
            "tracking_uri=http://mlflow.example:5000"]
DRY_RUN_CASES = [
    ("deploy_runtime=tensorflow", "deploy_runtime: runtime 'tensorflow' (TensorFlow Serving) is refused"),
    ("deploy_canary_percent=150", "deploy_canary_percent: canary_percent must be in [1, 99], got 150"),
    ("deploy_min_replicas=-1", "deploy_min_replicas: min_replicas must be in [0, ∞), got -1"),
    ("deploy_min_replicas=3", "deploy_min_replicas: min_replicas (3) is above max_replicas (1)"),
    ("deploy_cpu=-2", "deploy_cpu: cpu must be a Kubernetes quantity"),
    ("deploy_memory=2 GB", "deploy_memory: memory must be a Kubernetes quantity"),
    ("train_cpu_limit=lots", "train_cpu_limit must be a Kubernetes quantity"),
    ("train_memory_request=16G", "train_memory_request (16G) is above train_memory_limit (8G)"),
    ("train_accelerator_count=-1", "train_accelerator_count must be in [0, ∞), got -1"),
    ("namespace=Models_Prod", "namespace 'Models_Prod' is not a Kubernetes namespace name"),
    ('thresholds={"roc_auc": NaN}', "threshold for 'roc_auc' must be a finite number, got nan"),
    ('thresholds={"absolute": {"roc_auc": 0.7}, "latency": {"max_single_row_p95_ms": -1}}',
     "latency.max_single_row_p95_ms must be above 0, got -1"),
    ('thresholds={"absolute": {"roc_auc": 0.7}, "baseline": {"metric": "auc"}}', "baseline.metric: 'auc' is not a metric"),
    ('feature_kinds={"amount": "float"}', "feature_kinds: column 'amount' has the unknown kind 'float'"),
    ('ignore_columns={"transaction_id": 1}', "parameter 'ignore_columns' of loopline-training expects a list"),
    ("ignore_columns=[1, 2]", "ignore_columns must be a list of names, got the item 1"),
    ("model_name=team/fraud", "model_name 'team/fraud' is not a registered model name"),
    ("storage_uri=models/fraud", "storage_uri 'models/fraud' has no scheme"),
    ("seed=-1", "seed must be in [0, ∞), got -1"),
]


def _dry_run(args, kfp_api, capsys, command="submit", pipeline="training"):
    code = main([command, "--pipeline", pipeline, "--compiled", str(ROOT / "compiled"), "--kfp-host", kfp_api.url,
                 "--dry-run", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert not kfp_api.find("POST", "/runs") and not kfp_api.find("POST", "/recurringruns")
    return code, err


@pytest.mark.parametrize(("assignment", "message"), DRY_RUN_CASES, ids=[c[0][:40] for c in DRY_RUN_CASES])
def test_dry_run_refuses_what_the_cluster_or_the_steps_would(assignment, message, kfp_api, capsys):
    code, err = _dry_run([*TRAINING, "--param", assignment], kfp_api, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("loopline: error: ") and message in err[0], err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--pipeline-root", "s3://bucket/loopline"], "Vertex AI needs a gs:// pipeline root (--pipeline-root), got 's3://bucket/loopline'"),
        (["--pipeline-root", "gs://bucket/loopline", "--label", "team"], "--label 'team' is not KEY=VALUE"),
        (["--pipeline-root", "gs://bucket/loopline", "--label", "Team=Risk"], "a Vertex AI label key starts with a lowercase"),
    ],
)
def test_dry_run_for_vertex_refuses_its_root_and_labels(options, message, vertex_api, capsys):
    code = main(["submit", "--pipeline", "training", "--compiled", str(ROOT / "compiled"), "--vertex-project", "p",
                 "--vertex-location", "us-central1", "--vertex-api-endpoint", vertex_api.url, "--dry-run",
                 *options, *TRAINING])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1], err
    assert vertex_api.requests == []


def test_schedule_dry_run_refuses_a_label_without_a_value_separator(vertex_api, capsys):
    code = main(["schedule", "--pipeline", "training", "--compiled", str(ROOT / "compiled"), "--vertex-project", "p",
                 "--vertex-location", "us-central1", "--vertex-api-endpoint", vertex_api.url, "--dry-run",
                 "--pipeline-root", "gs://bucket/loopline", "--label", "team:risk", *TRAINING])
    assert code == 2 and "--label 'team:risk' is not KEY=VALUE" in capsys.readouterr().err


def test_compile_refuses_an_image_registry_with_a_space(tmp_path, capsys):
    code = main(["compile", "--out", str(tmp_path / "out"), "--registry", "my registry/loopline"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["loopline: error: --registry 'my registry/loopline' is not an image registry prefix "
                                 "(a host such as my.registry:5000, then lowercase path parts: no spaces or capitals)"]
    assert not list((tmp_path / "out").rglob("*.yaml"))


def test_dry_run_still_accepts_the_defaults_and_ordinary_values(kfp_api, capsys):
    code, _ = _dry_run([*TRAINING, "--param", "deploy_canary_percent=25", "--param", "deploy_cpu=500m",
                        "--param", "deploy_memory=1Gi", "--param", "namespace=models", "--param",
                        "storage_uri=s3://models/fraud", "--param", "ignore_columns=transaction_id"], kfp_api, capsys)
    assert code == 0


# ------------------------------------------------------------------------------------------------
# loopline run: refused before any step runs; nothing trains, nothing is registered

RUN_CASES = [
    (["--model-name", "team/fraud"], "model_name 'team/fraud' is not a registered model name"),
    (["--storage-uri", "models/fraud"], "storage_uri 'models/fraud' has no scheme"),
    (["--thresholds", json.dumps({"absolute": {"roc_auc": 0.7}, "fairness": {"slice_column": "region",
                                                                              "max_auc_gap": 0.1}})],
     "fairness.slice_column: column 'region' is not in the features and target of"),
    (["--thresholds", json.dumps({"absolute": {"roc_auc": 0.7}, "fairness": {"slice_column": "transaction_id",
                                                                              "max_auc_gap": 0.1}})],
     "fairness.slice_column: column 'transaction_id' is not in the features and target of"),
    (["--thresholds", json.dumps({"absolute": {"roc_auc": 0.7}, "baseline": {"metric": "auc"}})],
     "baseline.metric: 'auc' is not a metric Loopline computes"),
    (["--thresholds", json.dumps({"absolute": {"roc_auc": 0.7}, "latency": {"max_single_row_p95_ms": -50}})],
     "latency.max_single_row_p95_ms must be above 0, got -50"),
    (["--thresholds", '{"roc_auc": NaN}'], "threshold for 'roc_auc' must be a finite number, got nan"),
]


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("rules") / "data.csv"
    demo_transactions(300, seed=1).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("args", "message"), RUN_CASES, ids=[c[1][:40] for c in RUN_CASES])
def test_run_refuses_before_any_step_runs(args, message, small_csv, tmp_path, capsys):
    home = tmp_path / "home"
    code = main(["run", "--home", str(home), "--data", str(small_csv), "--target", "is_fraud", "--ignore",
                 "transaction_id", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("loopline: error: ") and message in err[-1], err
    # nothing trained, nothing registered, no model written anywhere
    assert not (home / "pipeline_root").exists() and not (home / "mlflow.db").exists()
    assert not (home / "mlartifacts").exists() and not list(tmp_path.glob("models*"))


# ------------------------------------------------------------------------------------------------
# the steps: each component builds its settings and refuses with the same line


def _deploy(tmp_path, **arguments):
    from kfp import dsl

    from loopline import components

    return components.deploy_model.python_func(
        model_name="fraud", model_version="1", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        holdout=art(dsl.Dataset, tmp_path, "holdout"), manifest=art(dsl.Artifact, tmp_path, "manifest"),
        report=art(dsl.Markdown, tmp_path, "report"), **arguments)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"canary_percent": 150}, "canary_percent must be in [1, 99], got 150"),
        ({"runtime": "tensorflow"}, "runtime 'tensorflow' (TensorFlow Serving) is refused"),
        ({"min_replicas": 2, "max_replicas": 1}, "min_replicas (2) is above max_replicas (1)"),
        ({"cpu": "-1"}, "cpu must be a Kubernetes quantity"),
        ({"namespace": "Prod"}, "namespace 'Prod' is not a Kubernetes namespace name"),
        ({"storage_uri": "models"}, "storage_uri 'models' has no scheme"),
    ],
)
def test_the_deploy_step_refuses_before_touching_the_registry(arguments, message, tmp_path):
    with pytest.raises(LooplineError) as info:
        _deploy(tmp_path, **arguments)
    assert message in str(info.value)
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "manifest").exists()


def _load(tmp_path, csv, **arguments):
    from kfp import dsl

    from loopline import components

    outs = {n: art(dsl.Dataset, tmp_path, n) for n in ("train", "validation", "holdout")}
    components.load_data.python_func(data_uri=str(csv), target="is_fraud", ignore_columns=["transaction_id"],
                                     **outs, **arguments)
    return outs


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"thresholds": {"absolute": {"roc_auc": 0.7}, "fairness": {"slice_column": "region", "max_auc_gap": 0.1}}},
         "fairness.slice_column: column 'region' is not in the features and target of"),
        ({"thresholds": {"roc_auc": NAN}}, "threshold for 'roc_auc' must be a finite number, got nan"),
        ({"thresholds": {"absolute": {"roc_auc": 0.7}, "baseline": {"metric": "auc"}}}, "baseline.metric: 'auc'"),
        ({"thresholds": {"roc_auc": 0.7}, "model_name": "a/b"}, "model_name 'a/b' is not a registered model name"),
        ({"storage_uri": "models/fraud"}, "storage_uri 'models/fraud' has no scheme"),
        ({"feature_kinds": {"amount": "float"}}, "feature_kinds: column 'amount' has the unknown kind 'float'"),
    ],
)
def test_the_first_step_of_training_refuses_a_run_that_cannot_succeed(arguments, message, small_csv, tmp_path):
    with pytest.raises(LooplineError) as info:
        _load(tmp_path, small_csv, **arguments)
    assert message in str(info.value)
    assert not any((tmp_path / n).exists() for n in ("train", "validation", "holdout"))  # no split written


def test_the_first_step_accepts_a_slice_column_the_data_has(small_csv, tmp_path):
    outs = _load(tmp_path, small_csv, thresholds={"absolute": {"roc_auc": 0.7},
                                                  "fairness": {"slice_column": "channel", "max_auc_gap": 0.2}},
                 tracking_uri="sqlite:///x.db", model_name="fraud", storage_uri="s3://models")
    assert outs["holdout"].metadata["rows"] > 0


def test_the_evaluate_step_refuses_a_nan_threshold_before_loading_the_model(tmp_path):
    from kfp import dsl

    from loopline import components

    with pytest.raises(LooplineError, match="threshold for 'roc_auc' must be a finite number, got nan"):
        components.evaluate_model.python_func(
            model=dsl.Model(name="model", uri=str(tmp_path / "no-model")), holdout=art(dsl.Dataset, tmp_path, "h"),
            train=art(dsl.Dataset, tmp_path, "t"), thresholds={"roc_auc": NAN},
            metrics=art(dsl.Metrics, tmp_path, "m"), classification_metrics=art(dsl.ClassificationMetrics, tmp_path, "c"),
            report=art(dsl.Markdown, tmp_path, "r"), blessing=art(dsl.Artifact, tmp_path, "b"))


def test_the_drift_step_refuses_an_unknown_feature_kind(tmp_path):
    from kfp import dsl

    from loopline import components

    outs = {"report": art(dsl.HTML, tmp_path, "report"), "metrics": art(dsl.Metrics, tmp_path, "metrics"),
            "summary": art(dsl.Markdown, tmp_path, "summary"), "table": art(dsl.Artifact, tmp_path, "table")}
    with pytest.raises(LooplineError, match="feature_kinds: column 'amount' has the unknown kind 'float'"):
        components.detect_drift.python_func(current_data_uri=str(tmp_path / "c.csv"), target="is_fraud",
                                            feature_kinds={"amount": "float"}, **outs)


def test_a_drift_triggered_submission_refuses_a_deploy_setting_before_sending(kfp_api, tmp_path):
    from types import SimpleNamespace

    from loopline.executors import trigger_training

    arguments = {"data_uri": "s3://d.csv", "target": "is_fraud", "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
                 "thresholds": {"roc_auc": 0.8}, "storage_uri": "models/fraud"}
    with pytest.raises(LooplineError, match="storage_uri 'models/fraud' has no scheme"):
        trigger_training.run(arguments=arguments, settings=reruns.RetrainSettings(rerun_target="kfp", kfp_host=kfp_api.url),
                             monitor_run="monitor-1", summary=SimpleNamespace(path=str(tmp_path / "s"), metadata={}),
                             reason_path=str(tmp_path / "r"), run_path=str(tmp_path / "p"))
    assert kfp_api.requests == []


def test_another_teams_pipeline_with_the_compiled_deploy_step_fails_with_the_same_line(tmp_path, monkeypatch):
    """`compiled/components/deploy_model.yaml` reused with canary_percent=150: the step itself
    refuses it (kfp.local runs it in its own process), with the line the CLI gives."""
    from kfp import dsl, local
    from kfp.components import load_component_from_file

    from loopline.core import failures

    deploy = load_component_from_file(str(ROOT / "compiled" / "components" / "deploy_model.yaml"))
    (tmp_path / "holdout").write_bytes(b"not read: the settings are refused first")

    @dsl.pipeline(name="another-team")
    def another_team():
        holdout = dsl.importer(artifact_uri=str(tmp_path / "holdout"), artifact_class=dsl.Dataset)
        deploy(model_name="fraud", model_version="1", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
               holdout=holdout.output, canary_percent=150)

    monkeypatch.setenv(failures.ENV, str(tmp_path / "failures.jsonl"))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"), raise_on_error=True)
    with pytest.raises(RuntimeError):
        another_team()
    recorded = failures.last(tmp_path / "failures.jsonl")
    assert recorded == {"pid": recorded["pid"], "type": "DeploymentError",
                        "message": "canary_percent must be in [1, 99], got 150"}
    assert not (tmp_path / "mlflow.db").exists()
