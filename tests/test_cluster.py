"""Cluster settings compiled in with kfp-kubernetes; nothing secret in compiled YAML."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from loopline.cli import app as cli
from loopline.cli.compile import compile_all
from loopline.ops import cluster, params, submit
from loopline.ops.cluster import ClusterConfigError

from .conftest import ROOT

# What a secret looks like in text: key material and tokens, credentials in URLs, and a value
# next to a password/token/key setting that is not a name (of a variable, key or object).
SECRET_SHAPES = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "GitHub or Slack token": re.compile(r"\b(ghp|gho|ghs|github_pat)_[A-Za-z0-9_]{20,}|\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "JSON web token": re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\."),
    "credentials in a URL": re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:[^/\s@'\"]+@"),
}
SECRET_SETTING = re.compile(r"^\s*-?\s*[\"']?([\w.-]*(password|passwd|secret|token|api_?key|access_?key|private_?key)[\w.-]*)[\"']?\s*:\s*(.+?)\s*$", re.I)
A_NAME = re.compile(r"^([A-Z_][A-Z0-9_]*|[a-z0-9]([-a-z0-9._]*[a-z0-9])?|\{\}|''|\"\")$")


def find_secrets(text: str) -> list[str]:
    found = [f"{kind}: line {text[:m.start()].count(chr(10)) + 1}" for kind, rx in SECRET_SHAPES.items() for m in rx.finditer(text)]
    for number, line in enumerate(text.splitlines(), 1):
        match = SECRET_SETTING.match(line)
        if match and not A_NAME.match(match.group(3).strip("'\"")):
            found.append(f"value of {match.group(1)}: line {number}")
    return found


def readme_cluster_config() -> dict:
    text = (ROOT / "docs" / "clusters.md").read_text()  # the cluster settings the docs show
    section = text.split("## Cluster settings (kfp-kubernetes)", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, flags=re.S).group(1)
    return yaml.safe_load(block)


@pytest.fixture(scope="module")
def cluster_compiled(tmp_path_factory) -> Path:
    """Both pipelines compiled with the cluster settings of docs/clusters.md."""
    out = tmp_path_factory.mktemp("compiled-cluster")
    settings = cluster.ClusterSettings.from_dict(readme_cluster_config(), source="README")
    compile_all(out, kubernetes=settings)
    return out


def _executors(path: Path) -> dict[str, dict]:
    documents = list(yaml.safe_load_all(path.read_text()))
    return documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_secrets_become_environment_variables_of_the_steps_that_need_them(cluster_compiled):
    executors = _executors(cluster_compiled / "training.yaml")
    def secrets(executor):
        return {s["secretName"]: {e["secretKey"]: e["envVar"] for e in s["keyToEnv"]} for s in executors[executor].get("secretAsEnv", [])}
    assert secrets("exec-register-model") == {
        "loopline-mlflow": {"username": "MLFLOW_TRACKING_USERNAME", "password": "MLFLOW_TRACKING_PASSWORD"},
        "loopline-storage": {"access_key_id": "AWS_ACCESS_KEY_ID", "secret_access_key": "AWS_SECRET_ACCESS_KEY"},
    }
    assert set(secrets("exec-load-data")) == {"loopline-storage"}  # MLflow credentials only where MLflow is used
    monitor = _executors(cluster_compiled / "drift_monitor.yaml")
    assert {s["secretName"] for s in monitor["exec-trigger-training"]["secretAsEnv"]} == {"loopline-mlflow", "loopline-storage"}


def test_training_placement_pvc_pull_secrets_and_timeouts(cluster_compiled):
    for name in ("training.yaml", "drift_monitor.yaml"):  # the nested training too
        executors = _executors(cluster_compiled / name)
        training_steps = ("exec-tune-model", "exec-train-model")  # the tuning workers and the final training
        for step in training_steps:
            train = executors[step]
            assert train["nodeSelector"] == {"labels": {"cloud.google.com/gke-nodepool": "training"}}, step
            assert train["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "training", "effect": "NoSchedule"}]
            assert [(m["constant"], m["mountPath"]) for m in train["pvcMount"]] == [("loopline-optuna", "/mnt/optuna")]
        assert executors["exec-train-model"]["activeDeadlineSeconds"] == "21600"
        for executor_name, executor in executors.items():
            assert [s["secretName"] for s in executor["imagePullSecret"]] == ["loopline-registry"], executor_name
            if executor_name != "exec-train-model":
                assert executor["activeDeadlineSeconds"] == "3600", executor_name
            if executor_name not in training_steps:
                assert "nodeSelector" not in executor, executor_name
                assert "pvcMount" not in executor and "tolerations" not in executor, executor_name


def test_service_steps_are_retried_on_every_target():
    spec = yaml.safe_load((ROOT / "compiled" / "training.yaml").read_text())
    dag = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():  # the tasks inside conditions and loops
        dag |= component.get("dag", {}).get("tasks", {})
    retried = {name for name, task in dag.items() if "retryPolicy" in task}
    assert retried == {"load-data", "register-model", "deploy-model"}
    assert dag["register-model"]["retryPolicy"] == {"backoffDuration": "30s", "backoffFactor": 2.0,
                                                   "backoffMaxDuration": "3600s", "maxRetryCount": 3}


def test_compiled_yaml_without_settings_is_one_document_for_vertex():
    for path in (ROOT / "compiled").glob("*.yaml"):
        assert params.read_pipeline(path).platform is None and "platforms:" not in path.read_text(), path.name


@pytest.mark.parametrize("where", ["compiled", "cluster"])
def test_no_secret_in_compiled_yaml(where, cluster_compiled):
    folder = ROOT / "compiled" if where == "compiled" else cluster_compiled
    paths = sorted(folder.rglob("*.yaml"))
    assert paths
    for path in paths:
        assert find_secrets(path.read_text()) == [], path


def test_the_secret_scan_finds_secrets():
    planted = (
        "tracking_uri:\n  defaultValue: http://loopline:hunter2@mlflow:5000\n"
        "password: hunter2!\n"
        "env:\n  AWS_ACCESS_KEY_ID: AKIAIOSFODNN7EXAMPLE\n"
        "key: |\n  -----BEGIN RSA PRIVATE KEY-----\n"
        "secretKey: password\nenvVar: MLFLOW_TRACKING_PASSWORD\nsecretName: loopline-mlflow\n"
    )
    assert [f.split(":")[0] for f in find_secrets(planted)] == [
        "private key", "AWS access key id", "credentials in a URL", "value of password"]


def test_kfp_receives_the_settings_and_vertex_does_not(cluster_compiled, kfp_api, vertex_api):
    from google.auth.credentials import AnonymousCredentials

    pipeline = params.read_pipeline(cluster_compiled / "training.yaml")
    values = {"data_uri": "s3://d/a.csv", "target": "y", "tracking_uri": "http://mlflow:5000"}
    submit.submit_kfp(pipeline, submit.KfpTarget(host=kfp_api.url), params=values)
    (version,) = kfp_api.find("POST", "/pipelines/upload_version")
    assert "secretAsEnv" in version.body["uploadfile"]
    target = submit.VertexTarget(project="p", location="us-central1", api_endpoint=vertex_api.url, credentials=AnonymousCredentials())
    submit.submit_vertex(pipeline, target, params=values, pipeline_root="gs://b/root")
    (job,) = vertex_api.find("POST", "/pipelineJobs")
    assert "platforms" not in job.body["pipelineSpec"] and "loopline-mlflow" not in job.raw.decode()


@pytest.mark.parametrize(
    "config, message",
    [
        ({"secrets": [{"name": "loopline-mlflow", "env": {"password": "s3cr3t-Value!"}}]},
         "secrets[0].env: the value of key 'password' is not an environment variable name"),
        ({"secrets": [{"name": "loopline-mlflow", "env": "s3cr3t-Value!"}]}, "secrets[0].env: expected a mapping, got text"),
        ({"secrets": [{"name": "loopline-mlflow", "env": {"s3cr3t Value!": "PASSWORD"}}]},
         "secrets[0].env: a key is not a secret key name"),
        ({"secret": []}, "unknown setting 'secret' (known: image_pull_secrets, optuna_storage"),
        ({"timeouts": {"train": 60}}, "timeouts: 'train' is not a Loopline step"),
        ({"timeouts": {"train_model": -1}}, "timeouts.train_model must be a positive number of seconds"),
        ({"training": {"tolerations": [{"key": "a", "colour": "red"}]}}, "unknown setting 'colour'"),
        ({"image_pull_secrets": ["Not_A_Name"]}, "'Not_A_Name' is not a Kubernetes object name"),
        ({"retries": {"backoff": "30"}}, "retries.backoff must be seconds like '30s'"),
    ],
)
def test_bad_settings_are_one_line_errors(config, message):
    with pytest.raises(ClusterConfigError) as info:
        cluster.ClusterSettings.from_dict(config, source="cluster.yaml")
    assert message in str(info.value) and str(info.value).startswith("cluster.yaml: ")
    assert "s3cr3t" not in str(info.value)  # a value in the wrong place may be the secret itself


def test_settings_survive_the_round_trip_through_a_pipeline_parameter():
    settings = cluster.ClusterSettings.from_dict(readme_cluster_config())
    as_struct = yaml.safe_load(yaml.safe_dump(settings.to_dict()).replace("21600", "21600.0").replace("3600", "3600.0"))
    assert cluster.ClusterSettings.from_dict(as_struct) == settings


def test_compile_command_takes_the_settings_file(tmp_path, capsys):
    config = tmp_path / "cluster.yaml"
    config.write_text(yaml.safe_dump({"image_pull_secrets": ["regcred"]}))
    assert cli.main(["compile", "--out", str(tmp_path / "out"), "--kubernetes-config", str(config)]) == 0
    assert "imagePullSecret" in (tmp_path / "out" / "training.yaml").read_text()
    config.write_text("timeouts: [1, 2]\n")
    assert cli.main(["compile", "--out", str(tmp_path / "out2"), "--kubernetes-config", str(config)]) == 2
    assert capsys.readouterr().err.strip() == f"loopline: error: {config}: timeouts: expected a mapping, got a list"
