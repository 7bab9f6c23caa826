"""Deploy target `vertex` against the Vertex AI API stand-in with the real google-cloud-aiplatform
client: Model Registry versions with Loopline's serving image, one Endpoint per model, a canary by
traffic split, and predict forwarded to a real Loopline model server that fetched its model from
the Cloud Storage stand-in through AIP_STORAGE_URI, as Vertex starts the serving container."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from loopline.core.errors import DeploymentError
from loopline.data.tables import read_split
from loopline.model.contract import ServingModel
from loopline.serving import rollout, targets, vertex_target

LIMITS = rollout.SmokeLimits(rows=6, tolerance=1e-5, max_p95_ms=5000)
BUCKET = "loopline-vertex"
ENDPOINT = "projects/loopline-test/locations/us-central1/endpoints/fraud"


@pytest.fixture(scope="module")
def probe(splits, trained_model):
    holdout, spec = read_split(splits["holdout"])
    sample = holdout[list(spec.features)].head(LIMITS.rows)
    rows = sample.astype(object).where(sample.notna(), None).to_dict(orient="records")
    return rows, ServingModel(trained_model).predict_rows(rows)


@pytest.fixture()
def vertex(monkeypatch, tmp_path, trained_model):
    """The Vertex AI stand-in (its deployed models are real model servers) and the Cloud Storage
    stand-in holding versions 1 and 2 of the model."""
    import gcsfs

    from .standins.gcs_api import GcsApiStandIn
    from .standins.vertex_api import VertexApiStandIn
    from .standins.vertex_serving import start_container

    with GcsApiStandIn(buckets=(BUCKET,)) as gcs, VertexApiStandIn() as api:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
        gcsfs.GCSFileSystem.clear_instance_cache()
        for version in ("1", "2"):
            for path in Path(trained_model).rglob("*"):
                if path.is_file():
                    gcs.put(BUCKET, f"fraud/v{version}/{path.relative_to(trained_model).as_posix()}", path.read_bytes())
        api.launch = lambda version: start_container(version, tmp_path)  # as Vertex starts the serving container
        api.gcs = gcs
        try:
            yield api
        finally:
            api.stop_servers()
    gcsfs.GCSFileSystem.clear_instance_cache()


def settings(api, **overrides) -> vertex_target.VertexSettings:
    from google.auth.credentials import AnonymousCredentials

    values = {"project": "loopline-test", "location": "us-central1", "serving_image": "registry.test/loopline-serving:1",
              "api_endpoint": api.url, "credentials": AnonymousCredentials(), **overrides}
    return vertex_target.VertexSettings(**values)


def deploy(api, version: str, probe, *, expected=None, ready_timeout: float = 180.0, **overrides):
    rows, want = probe
    return vertex_target.roll_out(settings(api, **overrides), model_name="fraud", version=version,
                                  model_uri=f"gs://{BUCKET}/fraud/v{version}", rows=rows,
                                  expected=want if expected is None else expected, limits=LIMITS, canary_percent=25,
                                  ready_timeout=ready_timeout)


def serving_split(api) -> dict[str, tuple[str, int]]:
    """deployed model display name -> (id, traffic %)."""
    endpoint = api.endpoint("fraud")
    return {d["displayName"]: (d["id"], endpoint["trafficSplit"].get(d["id"], 0)) for d in endpoint["deployedModels"]}


def calls(api) -> list[str]:
    return [f"{r.method} {r.path.rsplit('/', 1)[-1]}" for r in api.requests
            if r.method != "GET" and "/operations/" not in r.path]


def test_first_deployment_uploads_creates_the_endpoint_and_serves(vertex, probe):
    result = deploy(vertex, "1", probe)
    assert result.action == rollout.CREATED and result.smoke.passed and result.endpoint == ENDPOINT
    (upload,) = vertex.find("POST", "models:upload")
    model = upload.body["model"]
    assert upload.body["modelId"] == "fraud" and "parentModel" not in upload.body
    assert model["artifactUri"] == f"gs://{BUCKET}/fraud/v1"
    assert model["containerSpec"]["imageUri"] == "registry.test/loopline-serving:1"
    assert model["containerSpec"]["predictRoute"] == "/v1/models/fraud:predict"
    (deploy_call,) = vertex.find("POST", "fraud:deployModel")
    assert deploy_call.body["trafficSplit"] == {"0": 100}
    assert deploy_call.body["deployedModel"]["dedicatedResources"]["machineSpec"]["machineType"] == "n1-standard-2"
    assert serving_split(vertex) == {"fraud-v1": (serving_split(vertex)["fraud-v1"][0], 100)}
    assert vertex.aliases("fraud") == {"1": ["mlflow-v1", "default", "champion"]}
    assert vertex_target.serving_version(settings(vertex), "fraud") == "1"
    # the predictions came from the model server, which fetched the model from gs:// (AIP_STORAGE_URI)
    assert any(r.path.endswith("fraud:predict") for r in vertex.requests)
    assert any(unquote(r.path).endswith("/o/fraud/v1/1/saved_model.pb") for r in vertex.gcs.requests)
    again = deploy(vertex, "1", probe)
    assert again.action == rollout.NOOP


def test_a_canary_is_promoted_and_the_champion_alias_moves(vertex, probe):
    deploy(vertex, "1", probe)
    old_id = serving_split(vertex)["fraud-v1"][0]
    result = deploy(vertex, "2", probe, machine_type="n1-standard-4", min_replicas=1, max_replicas=3,
                    service_account="serving@loopline-test.iam.gserviceaccount.com")
    assert result.action == rollout.PROMOTED and result.previous_version == "1" and result.smoke.passed
    uploads = vertex.find("POST", "models:upload")
    assert uploads[1].body["parentModel"] == "projects/loopline-test/locations/us-central1/models/fraud"
    canary = vertex.find("POST", "fraud:deployModel")[1].body
    assert canary["trafficSplit"] == {"0": 25, old_id: 75}
    assert canary["deployedModel"]["serviceAccount"] == "serving@loopline-test.iam.gserviceaccount.com"
    assert canary["deployedModel"]["dedicatedResources"]["maxReplicaCount"] == 3
    split = serving_split(vertex)
    assert list(split) == ["fraud-v2"] and split["fraud-v2"][1] == 100  # v1 undeployed
    assert vertex.aliases("fraud") == {"1": ["mlflow-v1", "default"], "2": ["mlflow-v2", "champion"]}  # moved
    # each smoke-test row was answered by the canary, whatever the split sent elsewhere
    predicts = [r for r in vertex.requests if r.path.endswith("fraud:predict")]
    assert len(predicts) >= LIMITS.rows * 2


def test_a_canary_that_disagrees_is_rolled_back_and_aliases_stay(vertex, probe):
    deploy(vertex, "1", probe)
    old_id = serving_split(vertex)["fraud-v1"][0]
    wrong = probe[1][:, ::-1].copy()
    result = deploy(vertex, "2", probe, expected=wrong)
    assert result.action == rollout.ROLLED_BACK and "disagree" in result.reason
    assert serving_split(vertex) == {"fraud-v1": (old_id, 100)}
    assert vertex.aliases("fraud") == {"1": ["mlflow-v1", "default", "champion"], "2": ["mlflow-v2"]}
    undeploy = vertex.find("POST", "fraud:undeployModel")[-1].body
    assert undeploy["trafficSplit"] == {old_id: 100}
    # deploying the same MLflow version again reuses its Vertex version
    deploy(vertex, "2", probe)
    assert len(vertex.find("POST", "models:upload")) == 2


def test_a_model_that_fails_to_deploy_half_way_leaves_nothing_behind(vertex, probe):
    deploy(vertex, "1", probe)
    old_id = serving_split(vertex)["fraud-v1"][0]
    vertex.fail_deploy = "Model server never became ready: container exited with code 1"
    result = deploy(vertex, "2", probe)
    assert result.action == rollout.ROLLED_BACK and "never became ready" in result.reason
    assert "fraud-v2" in result.reason and ENDPOINT in result.reason
    assert serving_split(vertex) == {"fraud-v1": (old_id, 100)}
    assert "champion" in vertex.aliases("fraud")["1"]


def test_a_first_deployment_that_fails_removes_the_endpoint_it_created(vertex, probe):
    vertex.fail_deploy = "Model server never became ready"
    with pytest.raises(DeploymentError, match="version 1 could not be deployed: Vertex AI deployment of fraud-v1"):
        deploy(vertex, "1", probe)
    assert vertex.endpoint("fraud") is None
    assert "champion" not in vertex.aliases("fraud")["1"]


def test_a_deployment_that_never_gets_ready_is_cancelled_and_undeployed(vertex, probe):
    deploy(vertex, "1", probe)
    old_id = serving_split(vertex)["fraud-v1"][0]
    vertex.hang_deploy = True
    result = deploy(vertex, "2", probe, ready_timeout=3)
    assert result.action == rollout.ROLLED_BACK and "not ready after 3s" in result.reason
    assert any(r.path.endswith(":cancel") for r in vertex.requests)
    assert serving_split(vertex) == {"fraud-v1": (old_id, 100)}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"project": "nowhere"}, r"^Vertex AI project nowhere, location us-central1 \(404\): project nowhere not found$"),
    ({"location": "europe-west4"}, r"^Vertex AI project loopline-test, location europe-west4 \(404\): location europe-west4"),
    ({"location": "mars-north1"}, r"^Vertex AI location 'mars-north1' is not a Vertex AI region \(project loopline-test\)$"),
    ({"endpoint": "shared"}, r"^Vertex AI endpoint projects/loopline-test/locations/us-central1/endpoints/shared not found$"),
])
def test_a_project_location_or_endpoint_that_does_not_exist_is_one_line(vertex, probe, overrides, message):
    with pytest.raises(DeploymentError, match=message):
        deploy(vertex, "1", probe, **overrides)
    assert vertex.find("POST", "models:upload") == [] and vertex.servers == {}


def test_permission_denied_is_one_line_and_nothing_is_deployed(vertex, probe):
    vertex.denied.add("projects/loopline-test/locations/us-central1/models")
    with pytest.raises(DeploymentError, match=r"models/fraud \(403\): Permission denied on projects/loopline-test"):
        deploy(vertex, "1", probe)
    assert vertex.endpoints == {} and vertex.servers == {}


def test_a_model_uri_not_on_gcs_is_refused_before_upload(vertex, probe, tmp_path):
    rows, expected = probe
    with pytest.raises(DeploymentError, match="Vertex AI cannot read .*artifact_uri must be on gs://"):
        vertex_target.roll_out(settings(vertex), model_name="fraud", version="1", model_uri="s3://models/fraud/v1",
                               rows=rows, expected=expected, limits=LIMITS, canary_percent=25, ready_timeout=5)
    with pytest.raises(DeploymentError, match="Vertex AI cannot read"):
        targets.target("vertex").check_model_uri(str(tmp_path), "1")
    assert vertex.requests == []


def test_the_target_reads_its_settings_from_the_deploy_settings():
    s = targets.DeploySettings(target="vertex", vertex_project="p", vertex_location="europe-west4",
                               machine_type="e2-standard-4", network="projects/1/global/networks/ml",
                               service_account="sa@p.iam.gserviceaccount.com", max_replicas=4)
    vs = targets.target("vertex").vertex_settings(s)
    assert (vs.project, vs.location, vs.machine_type, vs.network, vs.service_account, vs.max_replicas) == (
        "p", "europe-west4", "e2-standard-4", "projects/1/global/networks/ml", "sa@p.iam.gserviceaccount.com", 4)
    assert vs.serving_image.split("/")[-1].startswith("loopline-serving:")
    with pytest.raises(DeploymentError, match="needs vertex_project and vertex_location"):
        vertex_target.roll_out(targets.target("vertex").vertex_settings(targets.DeploySettings(target="vertex")),
                               model_name="fraud", version="1", model_uri="gs://b/fraud/v1", rows=[],
                               expected=np.zeros((0, 2)), limits=LIMITS, canary_percent=10, ready_timeout=5)


def test_the_deploy_step_moves_mlflows_champion_with_vertex(vertex, trained_model, loaded, tmp_path, monkeypatch):
    """The deploy_model component with target "vertex": the version published to its own gs:// URI,
    uploaded, deployed and promoted; MLflow's champion moves with Vertex's."""
    import functools

    from google.auth.credentials import AnonymousCredentials
    from kfp import dsl

    from loopline import components, registry

    from .conftest import art, evaluate_step, register_step

    # the pod's application default credentials: none here; the target gets anonymous ones for the stand-in
    monkeypatch.setitem(targets.TARGETS, "vertex", functools.partial(targets.VertexTarget, credentials=AnonymousCredentials()))
    home = tmp_path / "home"
    tracking_uri = registry.local_tracking_uri(home)
    vertex_settings = {"target": "vertex", "storage_uri": "gs://loopline-vertex/registry", "vertex_project": "loopline-test",
                       "vertex_location": "us-central1", "vertex_api_endpoint": vertex.url, "smoke_rows": 4,
                       "canary_percent": 50, "machine_type": "e2-standard-4", "local_home": str(home)}
    actions = []
    for expected_version in ("1", "2"):  # each judged by the gate against the champion of its time
        _, outs = evaluate_step(trained_model, loaded, tmp_path / f"gate{expected_version}", {"roc_auc": 0.6},
                                tracking_uri=tracking_uri, model_name="fraud")
        version = register_step(trained_model, loaded, tmp_path, tracking_uri, outs["blessing"],
                                pipeline_run=f"run-{expected_version}")
        assert version == expected_version
        manifest, report = art(dsl.Artifact, tmp_path, f"manifest{version}"), art(dsl.Markdown, tmp_path, f"report{version}")
        actions.append(components.deploy_model.python_func(
            model_name="fraud", model_version=version, tracking_uri=tracking_uri, holdout=loaded["holdout"],
            manifest=manifest, report=report, pipeline_run=f"run-{version}", **vertex_settings))
        assert registry.aliases(tracking_uri, "fraud")["champion"] == version
        assert report.metadata["endpoint"] == ENDPOINT
    assert actions == ["created", "promoted"]
    uploads = [r.body["model"]["artifactUri"] for r in vertex.find("POST", "models:upload")]
    assert uploads == ["gs://loopline-vertex/registry/fraud/v1", "gs://loopline-vertex/registry/fraud/v2"]
    assert vertex.aliases("fraud") == {"1": ["mlflow-v1", "default"], "2": ["mlflow-v2", "champion"]}
    assert list(serving_split(vertex)) == ["fraud-v2"]


def test_the_compiled_training_pipeline_with_deploy_target_vertex_builds_a_pipeline_job():
    """compiled/training.yaml as Vertex AI Pipelines takes it, offline: the deploy settings reach
    the deploy step."""
    import yaml
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    from .conftest import ROOT

    values = {"data_uri": "gs://data/transactions.parquet", "target": "is_fraud", "tracking_uri": "https://mlflow.example",
              "model_name": "fraud", "deploy_target": "vertex", "storage_uri": "gs://models/registry",
              "deploy_vertex_project": "ml-prod", "deploy_vertex_location": "europe-west4",
              "deploy_machine_type": "n1-standard-4", "deploy_network": "projects/123/global/networks/ml",
              "deploy_service_account": "serving@ml-prod.iam.gserviceaccount.com", "deploy_max_replicas": 3}
    job = aiplatform.PipelineJob(display_name="training", template_path=str(ROOT / "compiled" / "training.yaml"),
                                 pipeline_root="gs://runs/root", parameter_values=values, project="ml-prod",
                                 location="europe-west4", credentials=AnonymousCredentials())
    body = job.to_dict()
    assert body["runtimeConfig"]["parameterValues"] == values
    spec = body["pipelineSpec"]
    deploy = next(c for c in spec["components"].values() if "dag" in c and "deploy-model" in c["dag"]["tasks"])
    inputs = deploy["dag"]["tasks"]["deploy-model"]["inputs"]["parameters"]
    wired = {name: given.get("componentInputParameter") for name, given in inputs.items()}
    assert {k: wired[k] for k in ("target", "vertex_project", "vertex_location", "machine_type", "network")} == {
        "target": "pipelinechannel--deploy_target", "vertex_project": "pipelinechannel--deploy_vertex_project",
        "vertex_location": "pipelinechannel--deploy_vertex_location",
        "machine_type": "pipelinechannel--deploy_machine_type", "network": "pipelinechannel--deploy_network"}
    root = yaml.safe_load((ROOT / "compiled" / "training.yaml").read_text())["root"]["inputDefinitions"]["parameters"]
    assert set(values) <= set(root)
