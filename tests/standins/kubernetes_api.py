"""A stand-in for the Kubernetes API server's InferenceService endpoints (no cluster runs here).

It keeps InferenceService objects in memory, applies JSON merge patches (RFC 7386) the way the
API server does for `application/merge-patch+json`, bumps `metadata.generation` on spec changes
and reports a Ready status whose URLs point at a real predictor the test chooses (a local
KServe model server). Every request is recorded for the test to assert on.

Standard mode's `spec.canary` (KServe 0.20) is reported in `status.canaryStatuses`; with
`spec_canary=False` the stand-in is a cluster with an older KServe CRD, whose API server rejects
the field under `fieldValidation=Strict` and drops it otherwise. `dryRun=All` changes nothing.
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
    objects: dict[tuple[str, str], dict] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self):
        standin = self

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
    def _status(self, obj: dict) -> dict:
        generation = obj["metadata"]["generation"]
        conditions = [{"type": "Ready", "status": "True" if self.ready else "False",
                       "reason": None if self.ready else "RevisionMissing",
                       "message": None if self.ready else "Revision failed to become ready (stand-in)"}]
        traffic = [{"tag": "prev", "url": self.predictor_url, "percent": 100, "latestRevision": False}]
        if obj["spec"]["predictor"].get("canaryTrafficPercent") is not None:
            traffic.append({"tag": "latest", "url": self.predictor_url, "latestRevision": True,
                            "percent": obj["spec"]["predictor"]["canaryTrafficPercent"]})
        canaries = [{"name": c["predictor"].get("name", ""), "ready": self.ready,
                     "trafficPercent": c.get("trafficPercent", 0)} for c in obj["spec"].get("canary") or []]
        return {
            **({"canaryStatuses": canaries} if canaries else {}),
            "observedGeneration": generation if self.ready else generation - 1,
            "url": self.predictor_url,
            "conditions": conditions,
            "components": {"predictor": {"url": self.predictor_url, "traffic": traffic}},
        }

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
            obj["status"] = self._status(obj)
            self.objects[key] = obj
            return 201, obj
        if method == "PATCH":
            if content_type != "application/merge-patch+json":
                return 415, {"kind": "Status", "code": 415, "message": f"unsupported patch type {content_type}"}
            if key not in self.objects:
                return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}
            old = self.objects[key]
            obj = merge_patch({k: v for k, v in old.items() if k != "status"}, body)
            if not self.spec_canary and "canary" in obj.get("spec", {}):
                if query.get("fieldValidation") == "Strict":
                    return 400, {"kind": "Status", "code": 400, "reason": "BadRequest",
                                 "message": '.spec.canary: field not declared in schema'}
                obj["spec"].pop("canary")
            if obj.get("spec") != old.get("spec"):
                obj["metadata"]["generation"] = old["metadata"]["generation"] + 1
            obj["status"] = self._status(obj)
            if query.get("dryRun") != "All":
                self.objects[key] = obj
            return 200, obj
        return 405, {"kind": "Status", "code": 405}
