"""Serving: the KServe InferenceService for a registered model, and the local KServe model server.

In a cluster, KServe's TensorFlow runtime serves the SavedModel from `storageUri`. On one
machine, `python -m loopline.serving` runs the `kserve` Python ModelServer on loopback with the
same SavedModel and the same V1 protocol (`POST /v1/models/<name>:predict`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loopline.errors import DeploymentError

log = logging.getLogger(__name__)

KSERVE_GROUP = "serving.kserve.io"
KSERVE_VERSION = "v1beta1"
KSERVE_API_VERSION = f"{KSERVE_GROUP}/{KSERVE_VERSION}"
INFERENCE_SERVICE_KIND = "InferenceService"
DEFAULT_TF_RUNTIME_VERSION = "2.6.2"  # KServe's kserve-tensorflow-serving runtime default image tag
LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------------------------
# The InferenceService, built from the kserve SDK's typed objects.


def build_inference_service(
    *,
    name: str,
    namespace: str,
    storage_uri: str,
    model_name: str,
    model_version: str,
    pipeline_run: str = "",
    runtime_version: str = "",
    service_account: str = "",
    min_replicas: int = 1,
    max_replicas: int = 1,
    cpu: str = "1",
    memory: str = "2Gi",
    deployment_mode: str = "Serverless",
    canary_traffic_percent: int | None = None,
):
    """A `serving.kserve.io/v1beta1` InferenceService serving a Loopline SavedModel."""
    from kserve import (
        V1beta1InferenceService,
        V1beta1InferenceServiceSpec,
        V1beta1ModelFormat,
        V1beta1ModelSpec,
        V1beta1PredictorSpec,
    )
    from kubernetes.client import V1ObjectMeta, V1ResourceRequirements

    if not storage_uri:
        raise DeploymentError("storage_uri is empty: the InferenceService needs the model's location")
    if min_replicas < 0 or max_replicas < max(1, min_replicas):
        raise DeploymentError(f"replicas: need 0 <= min_replicas <= max_replicas, got {min_replicas}..{max_replicas}")
    labels = {
        "app.kubernetes.io/part-of": "loopline",
        "loopline.dev/model-name": _label_value(model_name),
        "loopline.dev/model-version": _label_value(model_version),
    }
    if pipeline_run:
        labels["loopline.dev/pipeline-run"] = _label_value(pipeline_run)
    predictor = V1beta1PredictorSpec(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        service_account_name=service_account or None,
        canary_traffic_percent=canary_traffic_percent,
        model=V1beta1ModelSpec(
            model_format=V1beta1ModelFormat(name="tensorflow"),
            storage_uri=storage_uri,
            runtime_version=runtime_version or None,
            resources=V1ResourceRequirements(
                requests={"cpu": cpu, "memory": memory}, limits={"cpu": cpu, "memory": memory}
            ),
        ),
    )
    return V1beta1InferenceService(
        api_version=KSERVE_API_VERSION,
        kind=INFERENCE_SERVICE_KIND,
        metadata=V1ObjectMeta(
            name=name,
            namespace=namespace,
            labels=labels,
            annotations={"serving.kserve.io/deploymentMode": deployment_mode},
        ),
        spec=V1beta1InferenceServiceSpec(predictor=predictor),
    )


def _label_value(value: str) -> str:
    """Kubernetes label values: at most 63 characters of [A-Za-z0-9_.-], alphanumeric at both ends."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in str(value))[:63]
    return cleaned.strip("-_.") or "none"


def to_manifest(isvc) -> dict[str, Any]:
    """The plain dict a `kubectl apply` takes."""
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(isvc)


def manifest_yaml(isvc) -> str:
    import yaml

    return yaml.safe_dump(to_manifest(isvc), sort_keys=False)


# --------------------------------------------------------------------------------------------
# The local KServe model server.


def kserve_model_class():
    import kserve
    import numpy as np

    from loopline.model_contract import ServingModel

    class LooplineModel(kserve.Model):
        """KServe model over a Loopline SavedModel: V1 `{"instances": [{feature: value}, ...]}`."""

        def __init__(self, name: str, model_dir: str):
            super().__init__(name)
            self.model_dir = model_dir
            self.model: ServingModel | None = None

        def load(self) -> bool:
            self.model = ServingModel(self.model_dir)
            self.ready = True
            return self.ready

        async def predict(self, payload, headers=None, response_headers=None):
            if isinstance(payload, kserve.InferRequest):
                return self._predict_v2(payload)
            if not isinstance(payload, dict) or "instances" not in payload:
                raise kserve.errors.InvalidInput('expected a V1 request: {"instances": [{feature: value, ...}]}')
            instances = payload["instances"]
            if not isinstance(instances, list) or not all(isinstance(r, dict) for r in instances):
                raise kserve.errors.InvalidInput("'instances' must be a list of objects, one per row")
            try:
                proba = self.model.predict_rows(instances)
            except Exception as exc:  # the message names the missing or bad column
                raise kserve.errors.InvalidInput(str(exc)) from None
            return {"predictions": np.asarray(proba, dtype=float).tolist()}

        def _predict_v2(self, request):
            """V2 (Open Inference Protocol): one input tensor per feature, `probabilities` out."""
            import pandas as pd

            columns = {}
            for tensor in request.inputs:
                values = tensor.as_numpy().reshape(-1)
                if values.dtype.kind in "SO":
                    values = np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)
                columns[tensor.name] = values
            try:
                proba = self.model.predict_frame(pd.DataFrame(columns))
            except Exception as exc:
                raise kserve.errors.InvalidInput(str(exc)) from None
            output = kserve.InferOutput(name="probabilities", shape=list(proba.shape), datatype="FP32",
                                        data=proba.astype(np.float32).reshape(-1).tolist())
            return kserve.InferResponse(response_id=request.id or "", model_name=self.name, infer_outputs=[output])

    return LooplineModel


def serve_main(argv: list[str] | None = None) -> None:
    """Entry point of the local model server process (`python -m loopline.serving`)."""
    import argparse

    from kserve import ModelServer
    from kserve.model_server import parser as kserve_parser

    parser = argparse.ArgumentParser(parents=[kserve_parser], description="Loopline local KServe model server")
    parser.add_argument("--model_dir", required=True, help="Loopline SavedModel directory (TF Serving layout)")
    # --model_name (the name in /v1/models/<name>:predict) and --http_port come from KServe's parser
    args, _ = parser.parse_known_args(argv)
    model = kserve_model_class()(args.model_name, args.model_dir)
    model.load()
    ModelServer(http_port=args.http_port, workers=1, enable_grpc=False).start([model])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@dataclass
class ServerInfo:
    model_name: str
    version: str
    pid: int
    port: int
    model_dir: str
    log_file: str

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def predict_url(self) -> str:
        return f"{self.url}/v1/models/{self.model_name}:predict"


def _http_json(url: str, body: dict | None = None, timeout: float = 10.0) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback URL we built
        return json.loads(resp.read().decode())


def start_server(model_dir: str, *, model_name: str, version: str, log_dir: str | Path, port: int | None = None,
                 ready_timeout: float = 120.0) -> ServerInfo:
    """Start the local model server in its own process group and wait until the model is ready."""
    port = port or free_port()
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{model_name}-v{version}-{port}.log"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "loopline.serving", "--model_dir", str(model_dir), "--model_name", model_name,
             "--http_port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )
    info = ServerInfo(model_name, str(version), proc.pid, port, str(model_dir), str(log_file))
    log.info("starting local KServe model server for %s v%s on %s (log: %s)", model_name, version, info.url, log_file)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_file.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise DeploymentError(f"local model server exited with code {proc.returncode}: {tail[0]}")
        try:
            status = _http_json(f"{info.url}/v1/models/{model_name}", timeout=2)
            if status.get("ready"):
                log.info("model %s v%s is ready at %s", model_name, version, info.predict_url)
                return info
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            pass
        time.sleep(0.5)
    stop_server(info)
    raise DeploymentError(f"local model server for {model_name} v{version} not ready after {ready_timeout:.0f}s")


def stop_server(info: ServerInfo, timeout: float = 15.0) -> None:
    try:
        os.killpg(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(info.pid, 0)
        except ProcessLookupError:
            break
        try:  # reap it if it is our child
            if os.waitpid(info.pid, os.WNOHANG)[0]:
                break
        except ChildProcessError:
            pass
        time.sleep(0.2)
    else:
        try:
            os.killpg(info.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    log.info("stopped local model server %s v%s (pid %d)", info.model_name, info.version, info.pid)


def is_alive(info: ServerInfo) -> bool:
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return False
    try:
        _http_json(f"{info.url}/v1/models/{info.model_name}", timeout=2)
        return True
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        return False


def predict(info: ServerInfo, rows: list[dict[str, Any]], timeout: float = 30.0) -> list[list[float]]:
    return _http_json(info.predict_url, {"instances": rows}, timeout=timeout)["predictions"]


# The local serving state: which server serves which model, so that a later deployment (or
# `loopline serve --stop`) finds it.


def state_file(home: str | Path, model_name: str) -> Path:
    return Path(home) / "serving" / f"{model_name}.json"


def read_state(home: str | Path, model_name: str) -> ServerInfo | None:
    path = state_file(home, model_name)
    if not path.is_file():
        return None
    return ServerInfo(**json.loads(path.read_text()))


def write_state(home: str | Path, info: ServerInfo) -> None:
    path = state_file(home, info.model_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(info), indent=2))


def clear_state(home: str | Path, model_name: str) -> None:
    state_file(home, model_name).unlink(missing_ok=True)


if __name__ == "__main__":
    serve_main()
