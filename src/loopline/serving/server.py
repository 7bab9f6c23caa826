"""Serving: the Loopline model server (the InferenceService it runs behind: inference_service.py).

One server everywhere: `python -m loopline.serving` runs the `kserve` Python ModelServer with
Loopline's model class. Locally it serves on loopback; in a cluster the same code runs in the
Loopline serving image, which KServe starts through Loopline's ClusterServingRuntime
(`loopline-serving`, model format `loopline`; compiled/serving/runtime.yaml) after its storage
initializer has fetched the version from `storageUri` into /mnt/models. V1
(`POST /v1/models/<name>:predict`) and V2 (Open Inference Protocol) both answer.
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

from loopline.core.errors import DeploymentError
from loopline.serving import vertex_container

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
RECORDS = "servers"  # serving/servers/<pid>.json: every local model server from its start until it is stopped


# --------------------------------------------------------------------------------------------
# The local KServe model server.


def kserve_model_class():
    import kserve
    import numpy as np

    from loopline.model.contract import ServingModel

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
    from kserve import model_server as kserve_model_server
    from kserve.model_server import parser as kserve_parser

    parser = argparse.ArgumentParser(parents=[kserve_parser], description="Loopline local KServe model server")
    parser.add_argument("--model_dir", help="Loopline SavedModel directory (TF Serving layout); "
                        "default: a copy of $AIP_STORAGE_URI (Vertex AI)")
    parser.add_argument("--host", default=LOOPBACK, help="address to listen on (default: %(default)s, loopback only)")
    # --model_name (the name in /v1/models/<name>:predict) and --http_port come from KServe's parser
    args, _ = parser.parse_known_args(argv)
    # Vertex AI's container contract (vertex_container.py): AIP_HTTP_PORT, AIP_STORAGE_URI and the AIP_*_ROUTEs
    port = vertex_container.http_port(sys.argv[1:] if argv is None else argv, os.environ, args.http_port)
    model_dir = vertex_container.model_dir(args.model_dir, os.environ)
    _bind_rest_server_to(kserve_model_server, args.host)
    vertex_container.serve_routes(kserve_model_server, vertex_container.route_aliases(args.model_name, os.environ))
    model = kserve_model_class()(args.model_name, model_dir)
    model.load()
    ModelServer(http_port=port, workers=1, enable_grpc=False).start([model])


def _bind_rest_server_to(kserve_model_server, host: str) -> None:
    """KServe's REST server listens on 0.0.0.0, with no option to change it; listen on `host`."""
    base = kserve_model_server.RESTServer

    class BoundRESTServer(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.config.host = host

    kserve_model_server.RESTServer = BoundRESTServer


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_port_free(host: str, port: int) -> None:
    """Fail with one line when `host:port` cannot be listened on (in use, or not an address here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            reason = "is in use" if exc.errno == 98 else f"cannot be listened on ({exc.strerror})"
            raise DeploymentError(f"port {port} on {host} {reason}: choose another --port, or leave it out for a free one") from None


@dataclass
class ServerInfo:
    model_name: str
    version: str
    pid: int
    port: int
    model_dir: str
    log_file: str
    host: str = LOOPBACK  # the address it listens on

    @property
    def url(self) -> str:
        client_host = LOOPBACK if self.host in ("0.0.0.0", "") else self.host
        return f"http://{client_host}:{self.port}"

    @property
    def record(self) -> Path:
        """Where this server is recorded from its start until it is stopped."""
        return Path(self.log_file).parent / RECORDS / f"{self.pid}.json"

    @property
    def predict_url(self) -> str:
        return f"{self.url}/v1/models/{self.model_name}:predict"


def _http_json(url: str, body: dict | None = None, timeout: float = 10.0) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback URL we built
        return json.loads(resp.read().decode())


def start_server(model_dir: str, *, model_name: str, version: str, log_dir: str | Path, port: int | None = None,
                 ready_timeout: float = 120.0, host: str = LOOPBACK) -> ServerInfo:
    """Start the local model server in its own process group and wait until the model is ready.

    The server is recorded (serving/servers/<pid>.json) from the moment it starts until
    `stop_server`, so that whatever ends the caller, `loopline serve --stop` and the end of
    `loopline run` find it."""
    if port:
        check_port_free(host, port)
    port = port or free_port(host)
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{model_name}-v{version}-{port}.log"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("LOOPLINE_STEP_FAILURES", None)  # the server outlives the step that starts it
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "loopline.serving", "--model_dir", str(model_dir), "--model_name", model_name,
             "--http_port", str(port), "--host", host],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )
    info = ServerInfo(model_name, str(version), proc.pid, port, str(model_dir), str(log_file), host)
    try:
        _write_record(info)
        log.info("starting local KServe model server for %s v%s on %s (log: %s)", model_name, version, info.url, log_file)
        return wait_ready(info, proc, timeout=ready_timeout)
    except BaseException:  # not ready, or the caller is interrupted: the server goes with it
        stop_server(info)
        raise


def wait_ready(info: ServerInfo, proc: subprocess.Popen, *, timeout: float) -> ServerInfo:
    """Wait until the server started as `proc` says its model is ready; stop it if it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _forget(info)
            tail = Path(info.log_file).read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise DeploymentError(f"local model server exited with code {proc.returncode}: {tail[0]}")
        try:
            status = _http_json(f"{info.url}/v1/models/{info.model_name}", timeout=2)
            if status.get("ready"):
                log.info("model %s v%s is ready at %s", info.model_name, info.version, info.predict_url)
                return info
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            pass
        time.sleep(0.5)
    stop_server(info)
    raise DeploymentError(f"local model server for {info.model_name} v{info.version} not ready after {timeout:.0f}s")


def _write_record(info: ServerInfo) -> None:
    info.record.parent.mkdir(parents=True, exist_ok=True)
    info.record.write_text(json.dumps(asdict(info), indent=2))


def _forget(info: ServerInfo) -> None:
    info.record.unlink(missing_ok=True)


def _is_server_process(pid: int) -> bool:
    """Whether `pid` is a Loopline model server (not a process that got a recycled pid)."""
    if not isinstance(pid, int) or pid <= 0:  # 0 and negative pids name process groups, never a server
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        try:  # no /proc: trust the pid
            os.kill(pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False
    return b"loopline.serving" in cmdline


def recorded_servers(home: str | Path, model_name: str | None = None) -> list[ServerInfo]:
    """Every recorded local model server (of `model_name`) that is still running; records of
    servers that have ended are removed."""
    out = []
    for path in sorted((Path(home) / "serving" / RECORDS).glob("*.json")):
        try:
            info = ServerInfo(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if not _is_server_process(info.pid):
            path.unlink(missing_ok=True)
            continue
        if model_name is None or info.model_name == model_name:
            out.append(info)
    return out


def stop_server(info: ServerInfo, timeout: float = 15.0) -> None:
    if not _is_server_process(info.pid):
        _forget(info)
        return
    try:
        os.killpg(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        _forget(info)
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
    _forget(info)
    log.info("stopped local model server %s v%s (pid %d)", info.model_name, info.version, info.pid)


def is_alive(info: ServerInfo) -> bool:
    if not _is_server_process(info.pid):
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
    try:
        return ServerInfo(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        log.warning("ignoring the unreadable serving state %s", path)
        return None


def write_state(home: str | Path, info: ServerInfo) -> None:
    path = state_file(home, info.model_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(info), indent=2))


def clear_state(home: str | Path, model_name: str) -> None:
    state_file(home, model_name).unlink(missing_ok=True)
