"""Stand-in for the Vertex AI API (v1 REST), for the real `google-cloud-aiplatform` client.

Keeps pipeline jobs and schedules in memory, and Model Registry versions and Endpoints
(vertex_serving.py): upload, aliases, endpoint create/get/delete, deploy, undeploy, traffic
update and predict, forwarded to a real model server started for each deployed model. Any Cloud
Storage request (`/storage/...`) is recorded and refused: tests assert that none is made.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from itertools import count

from .recording import RecordingServer, Reply, Request
from .vertex_serving import VertexServing

LOCATION = r"/v1/(projects/[^/]+/locations/[^/]+)"


class VertexApiStandIn(VertexServing, RecordingServer):
    def __init__(self) -> None:
        RecordingServer.__init__(self)
        VertexServing.__init__(self)
        self.ids = count(1)
        self.jobs: dict[str, dict] = {}
        self.schedules: dict[str, dict] = {}

    def storage_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.startswith(("/storage/", "/upload/storage/", "/b/"))]

    def set_job_state(self, name: str, state: str) -> None:
        with self.lock:
            self.jobs[name]["state"] = state

    def handle(self, request: Request) -> Reply:  # noqa: C901 - one branch per endpoint
        path, method = request.path, request.method
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        if path.startswith(("/storage/", "/upload/storage/", "/b/")):
            return Reply(403, {"error": {"code": 403, "message": "the Vertex stand-in refuses Cloud Storage calls"}})

        served = self.handle_serving(request)
        if served is not None:
            return served

        match = re.fullmatch(LOCATION + r"/pipelineJobs", path)
        if match and method == "POST":
            job_id = request.query.get("pipelineJobId") or f"job-{next(self.ids)}"
            name = f"{match.group(1)}/pipelineJobs/{job_id}"
            job = dict(request.body, name=name, state="PIPELINE_STATE_PENDING", createTime=now)
            self.jobs[name] = job
            return Reply(body=job)
        match = re.fullmatch(LOCATION + r"/pipelineJobs/([^/:]+)", path)
        if match and method == "GET":
            job = self.jobs.get(path[len("/v1/"):])
            return Reply(body=job) if job else Reply(404, {"error": {"code": 404, "message": f"{path} not found"}})

        match = re.fullmatch(LOCATION + r"/schedules", path)
        if match and method == "POST":
            name = f"{match.group(1)}/schedules/{next(self.ids)}"
            schedule = dict(request.body, name=name, state="ACTIVE", createTime=now)
            self.schedules[name] = schedule
            return Reply(body=schedule)
        if match and method == "GET":
            found = [s for s in self.schedules.values() if s["name"].startswith(match.group(1))]
            return Reply(body={"schedules": found} if found else {})
        match = re.fullmatch(LOCATION + r"/schedules/([^/:]+)(?::(pause|resume))?", path)
        if match:
            name = path[len("/v1/"):].split(":")[0]
            schedule = self.schedules.get(name)
            if schedule is None:
                return Reply(404, {"error": {"code": 404, "message": f"schedule {name} not found"}})
            if method == "POST" and match.group(3):
                schedule["state"] = "PAUSED" if match.group(3) == "pause" else "ACTIVE"
                return Reply(body={})
            if method == "DELETE":
                del self.schedules[name]
                return Reply(body={"name": f"{name}/operations/{next(self.ids)}", "done": True,
                                   "response": {"@type": "type.googleapis.com/google.protobuf.Empty"}})
            if method == "GET":
                return Reply(body=schedule)
        return Reply(404, {"error": {"code": 404, "message": f"the stand-in does not answer {method} {path}"}})
