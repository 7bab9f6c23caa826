"""Stand-in for the KFP API server (v2beta1 REST), for the real `kfp.Client`.

Keeps pipelines, versions (with the uploaded YAML), experiments, runs and recurring runs in
memory and answers the minimal JSON the client reads. `set_run_state` moves a run along.
"""

from __future__ import annotations

import json
import re
from itertools import count

from .recording import RecordingServer, Reply, Request

API = "/apis/v2beta1"


def _display_name_filter(query: dict[str, str]) -> str | None:
    if not query.get("filter"):
        return None
    for predicate in json.loads(query["filter"]).get("predicates", []):
        if predicate.get("key") in ("display_name", "name"):
            return predicate.get("string_value", predicate.get("stringValue"))
    return None


class KfpApiStandIn(RecordingServer):
    def __init__(self, *, multi_user: bool = False) -> None:
        super().__init__()
        self.multi_user = multi_user
        self.ids = count(1)
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}  # version id -> {pipeline_id, display_name, yaml}
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring: dict[str, dict] = {}

    # what tests look at --------------------------------------------------------------------

    def created_runs(self) -> list[dict]:
        return [r.body for r in self.find("POST", f"{API}/runs")]

    def set_run_state(self, run_id: str, state: str) -> None:
        with self.lock:
            self.runs[run_id]["state"] = state

    # the API ----------------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.ids)}"

    def handle(self, request: Request) -> Reply:  # noqa: C901 - one branch per endpoint
        path, method, query = request.path, request.method, request.query
        if not path.startswith(API):
            return Reply(404, {"error": f"not found: {path}", "code": 5})
        path = path[len(API):]
        if path == "/healthz":
            return Reply(body={"multi_user": self.multi_user})

        if path == "/experiments" and method == "GET":
            name = _display_name_filter(query)
            found = [e for e in self.experiments.values() if name is None or e["display_name"] == name]
            return Reply(body={"experiments": found, "total_size": len(found)} if found else {})
        if path == "/experiments" and method == "POST":
            experiment = {"experiment_id": self._new_id("experiment"), "display_name": request.body["display_name"],
                          "namespace": request.body.get("namespace") or ""}
            self.experiments[experiment["experiment_id"]] = experiment
            return Reply(body=experiment)

        if path == "/pipelines" and method == "GET":
            name = _display_name_filter(query)
            found = [p for p in self.pipelines.values() if name is None or p["display_name"] == name]
            return Reply(body={"pipelines": found, "total_size": len(found)} if found else {})
        if path == "/pipelines/upload" and method == "POST":
            name = query.get("name", "")
            if any(p["display_name"] == name for p in self.pipelines.values()):
                return Reply(409, {"error": f"pipeline {name} already exists", "code": 6})
            pipeline = {"pipeline_id": self._new_id("pipeline"), "display_name": name, "description": query.get("description", "")}
            self.pipelines[pipeline["pipeline_id"]] = pipeline
            # KFP makes the uploaded file the pipeline's first version, named after the pipeline
            self.versions[self._new_id("version")] = {"pipeline_id": pipeline["pipeline_id"], "display_name": name,
                                                      "yaml": request.body["uploadfile"]}
            return Reply(body=pipeline)
        match = re.fullmatch(r"/pipelines/([^/]+)/versions", path)
        if match and method == "GET":
            name = _display_name_filter(query)
            found = [{"pipeline_id": v["pipeline_id"], "pipeline_version_id": vid, "display_name": v["display_name"]}
                     for vid, v in self.versions.items()
                     if v["pipeline_id"] == match.group(1) and (name is None or v["display_name"] == name)]
            return Reply(body={"pipeline_versions": found, "total_size": len(found)} if found else {})
        if path == "/pipelines/upload_version" and method == "POST":
            pipeline_id, name = query.get("pipelineid", ""), query.get("name", "")
            if pipeline_id not in self.pipelines:
                return Reply(404, {"error": f"pipeline {pipeline_id} not found", "code": 5})
            if any(v["pipeline_id"] == pipeline_id and v["display_name"] == name for v in self.versions.values()):
                return Reply(409, {"error": f"version {name} already exists", "code": 6})
            version_id = self._new_id("version")
            self.versions[version_id] = {"pipeline_id": pipeline_id, "display_name": name, "yaml": request.body["uploadfile"],
                                         "description": query.get("description", "")}
            return Reply(body={"pipeline_id": pipeline_id, "pipeline_version_id": version_id, "display_name": name})

        if path == "/runs" and method == "POST":
            run = dict(request.body, run_id=self._new_id("run"), state="PENDING")
            self.runs[run["run_id"]] = run
            return Reply(body=run)
        match = re.fullmatch(r"/runs/([^/:]+)", path)
        if match and method == "GET":
            run = self.runs.get(match.group(1))
            return Reply(body=run) if run else Reply(404, {"error": f"run {match.group(1)} not found", "code": 5})

        if path == "/recurringruns" and method == "POST":
            recurring = dict(request.body, recurring_run_id=self._new_id("recurring"), status="ENABLED")
            self.recurring[recurring["recurring_run_id"]] = recurring
            return Reply(body=recurring)
        if path == "/recurringruns" and method == "GET":
            return Reply(body={"recurringRuns": list(self.recurring.values())} if self.recurring else {})  # sic: camelCase in KFP's API
        match = re.fullmatch(r"/recurringruns/([^/:]+)(?::(enable|disable))?", path)
        if match:
            recurring = self.recurring.get(match.group(1))
            if recurring is None:
                return Reply(404, {"error": f"recurring run {match.group(1)} not found", "code": 5})
            if method == "POST" and match.group(2):
                recurring["status"] = "ENABLED" if match.group(2) == "enable" else "DISABLED"
                recurring["mode"] = "ENABLE" if match.group(2) == "enable" else "DISABLE"
                return Reply(body={})
            if method == "DELETE":
                del self.recurring[match.group(1)]
                return Reply(body={})
            if method == "GET":
                return Reply(body=recurring)
        return Reply(404, {"error": f"the stand-in does not answer {method} {API}{path}", "code": 12})
