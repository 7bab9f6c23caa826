"""The Model Registry and Endpoint part of the Vertex AI API stand-in (v1 REST).

Models and their versions (upload, get by version or alias, mergeVersionAliases), endpoints
(create, get, delete, traffic update), deployModel / undeployModel as long-running operations,
and predict, which the traffic split sends to one deployed model and which is forwarded to a
real model server: `launch(model)` (given by the test) starts one, for instance with
`start_container`, from the model version's container spec the way Vertex does (AIP_* variables),
and returns (predict URL, stop).

Faults, for tests: `missing_projects` (404), `denied` (403 on any resource under a prefix),
`fail_deploy` (the deployment operation ends with that error), `hang_deploy` (it never ends
until cancelled).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from itertools import count
from pathlib import Path
from urllib.parse import unquote

from loopline.serving import server as serving

from .recording import Reply, Request

PARENT = r"/v1/(projects/([^/]+)/locations/([^/]+))"
TYPES = "type.googleapis.com/google.cloud.aiplatform.v1."
NOW = "2026-12-01T00:00:00Z"


def _error(code: int, message: str) -> Reply:
    status = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}.get(code, "UNKNOWN")
    return Reply(code, {"error": {"code": code, "message": message, "status": status}})


def start_container(version: dict, log_dir: Path, timeout: float = 120.0, extra_env: dict | None = None):
    """Start the serving container's command the way Vertex does: its args, and the AIP_* variables
    from the model version's container spec and artifact URI. (predict URL, stop)."""
    spec = version["containerSpec"]
    port = serving.free_port()
    env = {**os.environ, "AIP_HTTP_PORT": str(port), "AIP_STORAGE_URI": version["artifactUri"],
           "AIP_PREDICT_ROUTE": spec["predictRoute"], "AIP_HEALTH_ROUTE": spec["healthRoute"],
           "TF_CPP_MIN_LOG_LEVEL": "2", **(extra_env or {})}
    log = log_dir / f"container-{port}.log"
    with open(log, "wb") as out:  # on loopback here, where Vertex's container listens on 0.0.0.0
        proc = subprocess.Popen([sys.executable, "-m", "loopline.serving", *spec["args"], "--host", "127.0.0.1"],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def stop() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)

    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text(errors="replace").strip().splitlines()[-1])
        try:
            with urllib.request.urlopen(url + spec["healthRoute"], timeout=2):  # noqa: S310 - loopback
                return url + spec["predictRoute"], stop
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    stop()
    raise RuntimeError(f"not healthy after {timeout:.0f}s")


class VertexServing:
    def __init__(self) -> None:
        self.serving_ids = count(1001)
        self.projects = {"loopline-test"}
        self.locations = {"us-central1"}
        self.denied: set[str] = set()
        self.fail_deploy = ""
        self.hang_deploy = False
        self.launch: Callable[[dict], tuple[str, Callable[[], None]]] | None = None
        self.models: dict[str, list[dict]] = {}  # model resource -> its versions
        self.endpoints: dict[str, dict] = {}
        self.operations: dict[str, dict] = {}
        self.servers: dict[str, tuple[str, Callable[[], None]]] = {}  # deployed model id -> (predict URL, stop)
        self.random = random.Random(0)

    # what tests use ---------------------------------------------------------------------------

    def aliases(self, model_id: str) -> dict[str, list[str]]:
        """version id -> its aliases, for the model `model_id` of the test project."""
        with self.lock:
            versions = self.models.get(f"projects/loopline-test/locations/us-central1/models/{model_id}", [])
            return {v["versionId"]: list(v["versionAliases"]) for v in versions}

    def endpoint(self, endpoint_id: str) -> dict | None:
        with self.lock:
            return self.endpoints.get(f"projects/loopline-test/locations/us-central1/endpoints/{endpoint_id}")

    def stop_servers(self) -> None:
        with self.lock:
            servers, self.servers = list(self.servers.values()), {}
        for _, stop in servers:
            stop()

    # the API ----------------------------------------------------------------------------------

    def _operation(self, parent: str, *, done: bool, response: dict | None = None) -> dict:
        name = f"{parent}/operations/{next(self.serving_ids)}"
        op = {"name": name, "done": done}
        if response is not None:
            op["response"] = response
        self.operations[name] = op
        return op

    def _version(self, resource: str) -> dict | None:
        """The model version `resource` names: `.../models/<id>[@<version id or alias>]`."""
        base, _, which = resource.partition("@")
        versions = self.models.get(base) or []
        if not which or which == "default":
            return next((v for v in versions if "default" in v["versionAliases"]), None)
        return next((v for v in versions if which == v["versionId"] or which in v["versionAliases"]), None)

    def handle_serving(self, request: Request) -> Reply | None:  # noqa: C901 - one branch per endpoint
        path, method = unquote(request.path), request.method
        if path.startswith("/ui/"):  # the REST operations client polls /ui/<operation>
            path = "/v1/" + path[len("/ui/"):]
        match = re.match(PARENT, path)
        if not match or "/pipelineJobs" in path or "/schedules" in path:
            return None
        parent, project, location = match.groups()
        if project not in self.projects:
            return _error(404, f"project {project} not found")
        if location not in self.locations:
            return _error(404, f"location {location} of project {project} not found")
        resource = path[len("/v1/"):].split(":")[0]
        if any(resource.startswith(prefix) for prefix in self.denied):
            return _error(403, f"Permission denied on {resource} (or it may not exist)")
        rest, body = path[len(match.group(0)):], request.body or {}

        if rest == "/models:upload" and method == "POST":
            return self._upload(parent, body)
        found = re.fullmatch(r"/models/([^/:]+)(?::(mergeVersionAliases))?", rest)
        if found:
            version = self._version(resource)
            if version is None:
                return _error(404, f"model {resource} not found")
            if found.group(2) and method == "POST":
                for alias in body.get("versionAliases", []):
                    if alias.startswith("-"):
                        version["versionAliases"] = [a for a in version["versionAliases"] if a != alias[1:]]
                        continue
                    holder = self._version(f"{resource.split('@')[0]}@{alias}")
                    if holder is not None and holder is not version:
                        return _error(400, f"alias {alias} is already on version {holder['versionId']}")
                    if alias not in version["versionAliases"]:
                        version["versionAliases"].append(alias)
            return Reply(body=version)
        if rest == "/endpoints" and method == "GET":
            return Reply(body={"endpoints": [e for e in self.endpoints.values() if e["name"].startswith(parent)]})
        if rest == "/endpoints" and method == "POST":
            name = f"{parent}/endpoints/{request.query.get('endpointId') or next(self.serving_ids)}"
            if name in self.endpoints:
                return _error(409, f"endpoint {name} already exists")
            self.endpoints[name] = dict(body, name=name, deployedModels=[], trafficSplit={}, createTime=NOW)
            return Reply(body=self._operation(parent, done=True, response={"@type": TYPES + "Endpoint", **self.endpoints[name]}))
        found = re.fullmatch(r"/endpoints/([^/:]+)(?::(deployModel|undeployModel|predict))?", rest)
        if found:
            endpoint = self.endpoints.get(resource)
            if endpoint is None:
                return _error(404, f"endpoint {resource} not found")
            action = found.group(2)
            if action == "deployModel" and method == "POST":
                return self._deploy(parent, endpoint, body)
            if action == "undeployModel" and method == "POST":
                return self._undeploy(parent, endpoint, body)
            if action == "predict" and method == "POST":
                return self._predict(endpoint, body)
            if method == "PATCH":
                if re.search(r"traffic_?[sS]plit", request.query.get("updateMask", "")):
                    split = {k: int(v) for k, v in (body.get("trafficSplit") or {}).items()}
                    bad = self._bad_split(endpoint, split)
                    if bad:
                        return _error(400, bad)
                    endpoint["trafficSplit"] = split
                return Reply(body=endpoint)
            if method == "DELETE":
                if endpoint["deployedModels"]:
                    return _error(400, f"endpoint {resource} still has deployed models")
                del self.endpoints[resource]
                return Reply(body=self._operation(parent, done=True, response={"@type": "type.googleapis.com/google.protobuf.Empty"}))
            if method == "GET":
                return Reply(body=endpoint)
        found = re.fullmatch(r"/operations/([^/:]+)(?::cancel)?", rest)
        if found:
            op = self.operations.get(resource)
            if op is None:
                return _error(404, f"operation {resource} not found")
            if path.endswith(":cancel"):
                op.update(done=True, error={"code": 1, "message": "cancelled"}, cancelled=True)
                return Reply(body={})
            return Reply(body={k: v for k, v in op.items() if k not in ("cancelled", "deploy")})
        return None

    def _upload(self, parent: str, body: dict) -> Reply:
        model = body.get("model") or {}
        base = body.get("parentModel") or f"{parent}/models/{body.get('modelId') or next(self.serving_ids)}"
        versions = self.models.setdefault(base, [])
        aliases = list(dict.fromkeys([*(model.get("versionAliases") or []), *([] if versions else ["default"])]))
        for alias in aliases:
            if alias != "default" and self._version(f"{base}@{alias}") is not None:
                return _error(400, f"alias {alias} is already used in model {base}")
        if "default" in aliases:  # the default version moves
            for other in versions:
                other["versionAliases"] = [a for a in other["versionAliases"] if a != "default"]
        version = dict(model, name=base, versionId=str(len(versions) + 1), createTime=NOW,
                       versionAliases=aliases,
                       supportedDeploymentResourcesTypes=["DEDICATED_RESOURCES"])
        versions.append(version)
        return Reply(body=self._operation(parent, done=True, response={
            "@type": TYPES + "UploadModelResponse", "model": base, "modelVersionId": version["versionId"]}))

    def _bad_split(self, endpoint: dict, split: dict[str, int], new: str = "") -> str:
        known = {d["id"] for d in endpoint["deployedModels"]} | ({new} if new else set())
        if set(split) - known:
            return f"traffic split names deployed models that are not on the endpoint: {sorted(set(split) - known)}"
        if split and sum(split.values()) != 100:
            return f"traffic split must sum to 100, got {split}"
        if not split and endpoint["deployedModels"] and not new:
            return "traffic split must not be empty while models are deployed"
        return ""

    def _deploy(self, parent: str, endpoint: dict, body: dict) -> Reply:
        deployed = dict(body.get("deployedModel") or {})
        version = self._version(deployed.get("model", ""))
        if version is None:
            return _error(404, f"model {deployed.get('model')} not found")
        deployed_id = str(next(self.serving_ids))
        split = {(deployed_id if k == "0" else k): int(v) for k, v in (body.get("trafficSplit") or {}).items()}
        bad = self._bad_split(endpoint, split, new=deployed_id)
        if bad:
            return _error(400, bad)
        deployed.update(id=deployed_id, model=version["name"], modelVersionId=version["versionId"])
        op = self._operation(parent, done=False)
        op["metadata"] = {"@type": TYPES + "DeployModelOperationMetadata"}
        op["deploy"] = deployed

        def finish() -> None:
            failure, server = self.fail_deploy, None
            if not failure and self.launch is not None:
                try:
                    server = self.launch(version)
                except Exception as exc:  # the container never became healthy
                    failure = f"model server failed to start: {exc}"
            with self.lock:
                if op.get("cancelled"):
                    if server:
                        server[1]()
                    return
                if failure:
                    op.update(done=True, error={"code": 3, "message": failure})
                    return
                if server:
                    self.servers[deployed_id] = server
                endpoint["deployedModels"].append(deployed)
                endpoint["trafficSplit"] = split
                op.update(done=True, response={"@type": TYPES + "DeployModelResponse", "deployedModel": deployed})

        if not self.hang_deploy:
            threading.Thread(target=finish, daemon=True).start()
        return Reply(body={k: v for k, v in op.items() if k != "deploy"})

    def _undeploy(self, parent: str, endpoint: dict, body: dict) -> Reply:
        deployed_id = body.get("deployedModelId", "")
        if deployed_id not in {d["id"] for d in endpoint["deployedModels"]}:
            return _error(404, f"deployed model {deployed_id} not found on {endpoint['name']}")
        rest = [d for d in endpoint["deployedModels"] if d["id"] != deployed_id]
        split = {k: int(v) for k, v in (body.get("trafficSplit") or {}).items()}
        bad = self._bad_split(dict(endpoint, deployedModels=rest), split)
        if bad:
            return _error(400, bad)
        endpoint["deployedModels"], endpoint["trafficSplit"] = rest, split
        server = self.servers.pop(deployed_id, None)
        if server:
            server[1]()
        return Reply(body=self._operation(parent, done=True, response={"@type": TYPES + "UndeployModelResponse"}))

    def _predict(self, endpoint: dict, body: dict) -> Reply:
        split = {k: v for k, v in endpoint["trafficSplit"].items() if v > 0}
        if not split:
            return _error(400, f"endpoint {endpoint['name']} has no deployed model taking traffic")
        deployed_id = self.random.choices(list(split), weights=list(split.values()))[0]
        deployed = next(d for d in endpoint["deployedModels"] if d["id"] == deployed_id)
        url, _ = self.servers[deployed_id]
        request = urllib.request.Request(url, data=json.dumps({"instances": body.get("instances", [])}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - a loopback model server
            answer = json.loads(response.read())
        return Reply(body={"predictions": answer["predictions"], "deployedModelId": deployed_id,
                           "model": deployed["model"], "modelVersionId": deployed["modelVersionId"]})
