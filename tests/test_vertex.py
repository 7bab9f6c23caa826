"""Vertex AI Model Registry upload: the real google-cloud-aiplatform client against a small
stand-in of the Vertex API on 127.0.0.1 that records every request it receives."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import pytest

from loopline import registry
from loopline.registry import vertex
from loopline.registry.vertex import VertexError

from .conftest import evaluate_step as evaluate
from .conftest import register_step as register

PROJECT, LOCATION = "loopline-test", "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


class VertexStandIn:
    """A stand-in for the Vertex AI model service (REST): models:upload (answered with a finished
    long-running operation) and models.get. Every request is recorded."""

    def __init__(self):
        self.requests: list[dict] = []
        self.models: dict[str, list[dict]] = {}  # model id -> versions
        self.fail_next_upload = False
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self, body) -> str:
                path = unquote(urlsplit(self.path).path)
                stand_in.requests.append({"method": self.command, "path": path, "body": body,
                                          "authorization": self.headers.get("Authorization", "")})
                return path

            def do_GET(self):
                path = self._record(None)
                name = path.removeprefix("/v1/")
                base, _, version = name.partition("@")
                model_id = base.rsplit("/", 1)[-1]
                if not base.startswith(f"{PARENT}/models/") or model_id not in stand_in.models:
                    return self._reply(404, {"error": {"code": 404, "message": f"{base} not found", "status": "NOT_FOUND"}})
                versions = stand_in.models[model_id]
                chosen = next((v for v in versions if v["versionId"] == version), versions[-1]) if version else versions[-1]
                return self._reply(200, {"name": base, **chosen})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                body = json.loads(raw or b"{}")
                path = self._record(body)
                if not path.endswith("/models:upload"):
                    return self._reply(404, {"error": {"code": 404, "message": path, "status": "NOT_FOUND"}})
                if stand_in.fail_next_upload:
                    stand_in.fail_next_upload = False
                    return self._reply(400, {"error": {"code": 400, "message": "artifactUri is not readable",
                                                       "status": "INVALID_ARGUMENT"}})
                if "parentModel" in body:
                    model_id = body["parentModel"].rsplit("/", 1)[-1]
                else:
                    model_id = body["modelId"]
                versions = stand_in.models.setdefault(model_id, [])
                versions.append({"versionId": str(len(versions) + 1), "displayName": body["model"]["displayName"],
                                 "versionAliases": body["model"].get("versionAliases", [])})
                return self._reply(200, {
                    "name": f"{PARENT}/operations/{len(stand_in.requests)}",
                    "done": True,
                    "response": {"@type": "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelResponse",
                                 "model": f"{PARENT}/models/{model_id}", "modelVersionId": versions[-1]["versionId"]},
                })

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def uploads(self) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"].endswith("/models:upload")]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def stand_in():
    with VertexStandIn() as server:
        yield server


def _target(stand_in, **extra):
    config = {"project": PROJECT, "location": LOCATION, "serving_container_image_uri": IMAGE,
              "api_endpoint": stand_in.endpoint, **extra}
    return config


def test_first_upload_creates_the_model_and_later_ones_add_versions(stand_in):
    from google.auth.credentials import AnonymousCredentials

    target = vertex.parse_target(_target(stand_in, artifact_uri="gs://bucket/fraud/1"), model_name="Fraud Model",
                                 model_uri="/local/model")
    first = vertex.upload(target, model_name="Fraud Model", mlflow_version="1", pipeline_run="run-1",
                          labels={"loopline-pipeline-run": "Run 1"}, credentials=AnonymousCredentials())
    second = vertex.upload(target, model_name="Fraud Model", mlflow_version="2", pipeline_run="run-2",
                           credentials=AnonymousCredentials())
    assert first == {"resource_name": f"{PARENT}/models/fraud-model", "version_id": "1"}
    assert second == {"resource_name": f"{PARENT}/models/fraud-model", "version_id": "2"}

    one, two = (u["body"] for u in stand_in.uploads())
    assert one["modelId"] == "fraud-model" and "parentModel" not in one
    assert one["model"]["displayName"] == "Fraud Model"
    assert one["model"]["artifactUri"] == "gs://bucket/fraud/1"
    assert one["model"]["containerSpec"]["imageUri"] == IMAGE
    # the first version of a Vertex model is its default one (the client marks it with "default")
    assert one["model"]["versionAliases"] == ["challenger", "mlflow-v1", "default"]
    assert one["model"]["labels"] == {"loopline-pipeline-run": "run-1"}
    assert "models:/Fraud Model/1" in one["model"]["description"]
    assert two["parentModel"] == f"{PARENT}/models/fraud-model" and "modelId" not in two
    # a later version does not become the default: the serving champion moves on deployment
    assert two["model"]["versionAliases"] == ["challenger", "mlflow-v2"]
    # each upload first asked whether the model exists
    gets = [r["path"] for r in stand_in.requests if r["method"] == "GET"]
    assert gets[0] == f"/v1/{PARENT}/models/fraud-model"


def _service_account_file(tmp_path, token_uri: str):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": PROJECT, "private_key_id": "k1", "private_key": pem,
        "client_email": f"pipelines@{PROJECT}.iam.gserviceaccount.com", "client_id": "1", "token_uri": token_uri,
    }))
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, public


def test_register_model_uploads_to_vertex_with_the_pods_credentials(trained_model, loaded, tmp_path, stand_in,
                                                                   monkeypatch):
    from google.auth import jwt as google_jwt

    account, public_pem = _service_account_file(tmp_path, f"{stand_in.endpoint}/token")  # never left loopback
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(account))
    tracking_uri = registry.local_tracking_uri(tmp_path / "home")
    _, outs = evaluate(trained_model, loaded, tmp_path, {"roc_auc": 0.6})
    config = _target(stand_in, model_id="fraud", artifact_uri="gs://bucket/pipeline-root/model/1")

    stand_in.fail_next_upload = True
    with pytest.raises(VertexError, match="Vertex AI Model Registry upload of fraud failed: 400 .*artifactUri is not readable"):
        register(trained_model, loaded, tmp_path, tracking_uri, outs["blessing"], vertex_model_registry=config)
    # MLflow registered version 1; the orchestrator's retry of the same run uploads it, once
    assert registry.aliases(tracking_uri, "fraud") == {"challenger": "1"}
    assert register(trained_model, loaded, tmp_path, tracking_uri, outs["blessing"], vertex_model_registry=config) == "1"
    assert register(trained_model, loaded, tmp_path, tracking_uri, outs["blessing"], vertex_model_registry=config) == "1"

    failed, done = stand_in.uploads()
    assert failed["body"] == done["body"]
    body = done["body"]
    assert body["modelId"] == "fraud"
    assert body["model"]["artifactUri"] == "gs://bucket/pipeline-root/model/1"
    assert body["model"]["labels"] == {"loopline-pipeline-run": "test-run", "mlflow-version": "1"}
    assert body["model"]["versionAliases"] == ["challenger", "mlflow-v1", "default"]
    # the pod's application default credentials: every request carries a bearer token signed
    # with the service account's key (a self-signed JWT, as the Vertex client uses)
    assert all(r["authorization"].startswith("Bearer ") for r in stand_in.requests)
    token = done["authorization"].removeprefix("Bearer ")
    claims = google_jwt.decode(token, certs=public_pem, verify=True, audience=None)
    assert claims["iss"] == f"pipelines@{PROJECT}.iam.gserviceaccount.com"
    tags = registry.version_tags(tracking_uri, "fraud", "1")
    assert tags[registry.TAG_VERTEX_MODEL] == f"{PARENT}/models/fraud"
    assert tags[registry.TAG_VERTEX_VERSION] == "1"


@pytest.mark.parametrize(
    ("config", "model_uri", "message"),
    [
        ({"location": "us-central1", "serving_container_image_uri": IMAGE}, "gs://b/m", "vertex_model_registry.project is required"),
        ({"project": "p", "location": "l"}, "gs://b/m", "serving_container_image_uri is required"),
        ({"project": "p", "location": "l", "serving_container_image_uri": IMAGE}, "/local/model",
         "artifact_uri is required: the model is at /local/model, not on gs://"),
        ({"project": "p", "location": "l", "serving_container_image_uri": IMAGE, "region": "x"}, "gs://b/m",
         "unknown key(s) region"),
        ({"project": "p", "location": "l", "serving_container_image_uri": IMAGE, "version_aliases": ["Bad Alias"]},
         "gs://b/m", "version_aliases must be a list of Vertex aliases"),
    ],
)
def test_vertex_configuration_errors(config, model_uri, message):
    with pytest.raises(VertexError) as excinfo:
        vertex.parse_target(config, model_name="fraud", model_uri=model_uri)
    assert message in str(excinfo.value)


def test_vertex_defaults():
    assert vertex.parse_target({}, model_name="fraud", model_uri="gs://b/m") is None
    target = vertex.parse_target({"project": "p", "location": "l", "serving_container_image_uri": IMAGE},
                                 model_name="7 Fraud_Model!", model_uri="gs://bucket/root/model/")
    assert target.artifact_uri == "gs://bucket/root/model/1"  # the TF Serving version directory
    assert target.model_id == "m-7-fraud_model"
    assert target.api_transport == "rest"


def test_a_bad_vertex_configuration_registers_nothing(trained_model, loaded, tmp_path):
    from mlflow import MlflowClient

    tracking_uri = registry.local_tracking_uri(tmp_path / "home")
    _, outs = evaluate(trained_model, loaded, tmp_path, {"roc_auc": 0.6})
    with pytest.raises(VertexError, match="project is required"):
        register(trained_model, loaded, tmp_path, tracking_uri, outs["blessing"],
                 vertex_model_registry={"location": LOCATION, "serving_container_image_uri": IMAGE})
    assert MlflowClient(tracking_uri).search_registered_models() == []
