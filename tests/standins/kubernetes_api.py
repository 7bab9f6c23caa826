"""A STAND-IN for the Kubernetes API server's InferenceService endpoints (no cluster runs here),
used by the rollout tests and by the containerized rehearsal (`python -m tools.rehearsal
--runner docker`), whose deploy step talks to it with the real Kubernetes client.

It keeps InferenceService objects in memory, applies JSON merge patches (RFC 7386) the way the
API server does for `application/merge-patch+json`, bumps `metadata.generation` on spec changes
and reports a Ready status whose URLs point at a real predictor the test chooses (a local
KServe model server). Every request is recorded for the test to assert on.

Standard mode's `spec.canary` (KServe 0.20) is reported in `status.canaryStatuses`; with
`spec_canary=False` the stand-in is a cluster with an older KServe CRD, whose API server rejects
the field under `fieldValidation=Strict` and drops it otherwise. `dryRun=All` changes nothing.

With a `controller` (tests.standins.kserve_controller: what KServe's controller does for Loopline's
runtime), each created or patched InferenceService is reconciled in the background: its status
lags (`observedGeneration` of the previous spec, Ready Unknown) until the controller has started
the predictors, then reports their real URLs, as a cluster does.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = re.compile(r"^/apis/serving\.kserve\.io/v1beta1/namespaces/([^/]+)/inferenceservices(?:/([^/?]+))?")


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass
class Recorded:
    method: str
    path: str
    content_type: str
    body: Any


@dataclass
class KubernetesApiStandIn:
    predictor_url: str = ""  # where the Ready status says the predictor answers
    ready: bool = True  # False: status never becomes Ready (a rollout that times out)
    fail_next: list[int] = field(default_factory=list)  # HTTP codes to answer before serving
    spec_canary: bool = True  # False: KServe older than 0.20, whose CRD has no spec.canary
    controller: Any = None  # reconcile(namespace, name, obj) -> {"stable": url, "latest": url}
    objects: dict[tuple[str, str], dict] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self):
        standin = self
        self._lock = threading.Lock()  # one reconciliation at a time, in the order of the requests

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                standin.requests.append(Recorded(self.command, self.path, self.headers.get("Content-Type", ""), body))
                if standin.fail_next:
                    code = standin.fail_next.pop(0)
                    return self._send(code, {"kind": "Status", "status": "Failure", "code": code, "message": "stand-in transient error"})
                match = PATH.match(self.path)
                if not match:
                    return self._send(404, {"kind": "Status", "code": 404, "message": "no such path"})
                namespace, name = match.group(1), match.group(2)
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                code, payload = standin.serve(self.command, namespace, name, body, self.headers.get("Content-Type", ""),
                                              query)
                self._send(code, payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def kubeconfig(self) -> dict:
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": "standin",
            "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
            "users": [{"name": "standin", "user": {"token": "standin-token"}}],
            "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "standin", "namespace": "ml"}}],
        }

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # -- the API's behaviour -------------------------------------------------------------
    def _status(self, obj: dict, *, urls: dict | None = None, ready: bool | None = None, message: str = "") -> dict:
        generation = obj["metadata"]["generation"]
        ready = self.ready if ready is None else ready
        stable = (urls or {}).get("stable") or self.predictor_url
        latest = (urls or {}).get("latest") or stable
        conditions = [{"type": "Ready", "status": "True" if ready else "False",
                       "reason": None if ready else "RevisionMissing",
                       "message": None if ready else message or "Revision failed to become ready (stand-in)"}]
        traffic = [{"tag": "prev", "url": stable, "percent": 100, "latestRevision": False}]
        if obj["spec"]["predictor"].get("canaryTrafficPercent") is not None:
            traffic.append({"tag": "latest", "url": latest, "latestRevision": True,
                            "percent": obj["spec"]["predictor"]["canaryTrafficPercent"]})
        canaries = [{"name": c["predictor"].get("name", ""), "ready": ready,
                     "trafficPercent": c.get("trafficPercent", 0)} for c in obj["spec"].get("canary") or []]
        return {
            **({"canaryStatuses": canaries} if canaries else {}),
            "observedGeneration": generation if ready or message else generation - 1,
            "url": stable,
            "conditions": conditions,
            "components": {"predictor": {"url": stable, "traffic": traffic}},
        }

    def _pending(self, obj: dict, previous: dict | None) -> dict:
        """The status while the controller reconciles: the previous one, its generation not yet observed."""
        if previous is None:
            return {"observedGeneration": 0, "conditions": [{"type": "Ready", "status": "Unknown",
                                                             "reason": "Reconciling"}]}
        return {**previous, "observedGeneration": obj["metadata"]["generation"] - 1}

    def _stored(self, key: tuple[str, str], obj: dict, previous_status: dict | None) -> dict:
        """Store `obj`; with a controller its status follows once the controller has reconciled it."""
        if self.controller is None:
            obj["status"] = self._status(obj)
            self.objects[key] = obj
            return obj
        obj["status"] = self._pending(obj, previous_status)
        self.objects[key] = obj
        spec = json.loads(json.dumps(obj))
        threading.Thread(target=self._reconcile, args=(key, spec), daemon=True).start()
        return obj

    def _reconcile(self, key: tuple[str, str], obj: dict) -> None:
        with self._lock:
            current = self.objects.get(key)
            if current is None or current["metadata"]["generation"] != obj["metadata"]["generation"]:
                return  # a newer spec follows; it is reconciled on its own
            try:
                status = self._status(obj, urls=self.controller.reconcile(key[0], key[1], obj), ready=True)
            except Exception as exc:  # reported in the status, as KServe reports a revision that fails
                status = self._status(obj, ready=False, message=f"{type(exc).__name__}: {exc}")
            current = self.objects.get(key)
            if current is not None and current["metadata"]["generation"] == obj["metadata"]["generation"]:
                current["status"] = status

    def serve(self, method: str, namespace: str, name: str | None, body: Any, content_type: str,
              query: dict | None = None):
        query = query or {}
        key = (namespace, name or (body or {}).get("metadata", {}).get("name", ""))
        if method == "GET":
            if key not in self.objects:
                return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
                             "message": f'inferenceservices.serving.kserve.io "{name}" not found'}
            return 200, self.objects[key]
        if method == "POST":
            if key in self.objects:
                return 409, {"kind": "Status", "code": 409, "reason": "AlreadyExists"}
            obj = json.loads(json.dumps(body))
            obj["metadata"]["generation"] = 1
            return 201, self._stored(key, obj, None)
        if method == "PATCH":
            if content_type != "application/merge-patch+json":
                return 415, {"kind": "Status", "code": 415, "message": f"unsupported patch type {content_type}"}
            if key not in self.objects:
                return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}
            old = self.objects[key]
            obj = merge_patch(json.loads(json.dumps({k: v for k, v in old.items() if k != "status"})), body)
            if not self.spec_canary and "canary" in obj.get("spec", {}):
                if query.get("fieldValidation") == "Strict":
                    return 400, {"kind": "Status", "code": 400, "reason": "BadRequest",
                                 "message": '.spec.canary: field not declared in schema'}
                obj["spec"].pop("canary")
            if obj.get("spec") != old.get("spec"):
                obj["metadata"]["generation"] = old["metadata"]["generation"] + 1
            if query.get("dryRun") == "All":
                obj["status"] = self._status(obj)
                return 200, obj
            if self.controller is not None and obj["metadata"]["generation"] == old["metadata"]["generation"]:
                # metadata only: nothing to reconcile
                obj["status"] = old.get("status")
                self.objects[key] = obj
                return 200, obj
            return 200, self._stored(key, obj, old.get("status"))
        return 405, {"kind": "Status", "code": 405}
