"""Submit and schedule Loopline's compiled pipelines on a KFP cluster or on Vertex AI Pipelines.

Both targets take the same `compiled/*.yaml`. The clients are the real ones (`kfp.Client`,
`google.cloud.aiplatform`), imported where used so that importing this module stays cheap.

KFP: the pipeline is uploaded once, and each compiled YAML as a pipeline version named after the
Loopline version and the file's SHA-256 (`0.1.0-3f2a9c1e4b2d`), so that every run and recurring
run refers to the exact YAML it came from; uploading the same YAML again reuses its version.

Vertex AI: runs and schedules carry labels with the Loopline version, the pipeline and the
YAML's SHA-256. Kubernetes settings (kfp-kubernetes) in the YAML do not apply on Vertex; the
pipeline spec is sent without them.

This module is the API (`submit`, `run_state`, schedules); the targets are in `submit_targets`,
the clients' calls in `submit_kfp` and `submit_vertex`.
"""

from __future__ import annotations

import logging
from typing import Any

from loopline.ops.params import PipelineFile
from loopline.ops.submit.kfp import kfp_run_state, schedule_kfp, submit_kfp, version_name  # noqa: F401 - the submit API
from loopline.ops.submit.targets import (  # noqa: F401 - the submit API
    ALLOWED_VALUES,
    RERUN_MODES,
    RERUN_TARGETS,
    KfpTarget,
    Schedule,
    SubmitError,
    Submitted,
    VertexTarget,
    kfp_errors,
    vertex_errors,
)
from loopline.ops.submit.vertex import schedule_vertex, submit_vertex, vertex_run_state  # noqa: F401 - the submit API

log = logging.getLogger(__name__)

def with_rerun_defaults(
    pipeline: PipelineFile,
    target: KfpTarget | VertexTarget,
    values: dict[str, Any],
    *,
    pipeline_root: str = "",
    service_account: str = "",
) -> dict[str, Any]:
    """A drift monitor with `rerun_mode=submit` retrains where it runs: unless given, its
    retraining goes to the same target (KFP: the cluster's own API; Vertex AI: the same project
    and region), with the same pipeline root and service account as the monitor."""
    if values.get("rerun_mode") != "submit":
        return values
    defaults: dict[str, Any] = {"rerun_target": target.kind, "training_pipeline_root": pipeline_root,
                                "training_service_account": service_account}
    if isinstance(target, VertexTarget):
        defaults.update(vertex_project=target.project, vertex_location=target.location)
    filled = dict(values)
    for name, value in defaults.items():
        if value and name in pipeline.inputs and name not in values:
            filled[name] = value
            log.info("drift-triggered training goes to %s: %s=%s", target.describe(), name, value)
    return filled

def submit(pipeline: PipelineFile, target: KfpTarget | VertexTarget, *, params: dict[str, Any], **options) -> Submitted:
    if isinstance(target, VertexTarget):
        return submit_vertex(pipeline, target, params=params, **options)
    unused = sorted(k for k in ("network", "labels", "kms_key", "enable_caching") if options.pop(k, None))
    if unused:
        raise SubmitError(f"{', '.join(unused)}: Vertex AI options, not used by KFP")
    return submit_kfp(pipeline, target, params=params, **options)

def run_state(target: KfpTarget | VertexTarget, run_id: str) -> tuple[bool, str]:
    """(still active, state name) of a run on either target."""
    if isinstance(target, VertexTarget):
        return vertex_run_state(target, run_id)
    return kfp_run_state(target, run_id)

def list_schedules(target: KfpTarget | VertexTarget) -> list[Schedule]:
    if isinstance(target, VertexTarget):
        aiplatform = target.init()
        with vertex_errors():
            found = aiplatform.PipelineJobSchedule.list(project=target.project, location=target.location,
                                                        credentials=target.credentials)
            return [Schedule(s.resource_name, s.display_name, s.gca_resource.cron, s.gca_resource.state.name) for s in found]
    client = target.client()
    schedules = []
    token = ""
    with kfp_errors(target):
        while True:
            page = client.list_recurring_runs(page_token=token, page_size=100, namespace=target.namespace or None)
            for rr in page.recurring_runs or []:
                cron = rr.trigger.cron_schedule.cron if rr.trigger and rr.trigger.cron_schedule else ""
                version = rr.pipeline_version_reference.pipeline_version_id if rr.pipeline_version_reference else ""
                schedules.append(Schedule(rr.recurring_run_id, rr.display_name, cron or "", str(rr.status or rr.mode or ""),
                                          f"pipeline version id {version}" if version else ""))
            token = page.next_page_token or ""
            if not token:
                return schedules

def change_schedule(target: KfpTarget | VertexTarget, schedule_id: str, action: str) -> None:
    """`pause`, `resume` or `delete` a KFP recurring run or a Vertex AI schedule."""
    if action not in ("pause", "resume", "delete"):
        raise SubmitError(f"unknown schedule action '{action}' (pause, resume, delete)")
    if isinstance(target, VertexTarget):
        aiplatform = target.init()
        with vertex_errors():
            schedule = aiplatform.PipelineJobSchedule.get(schedule_id, project=target.project, location=target.location,
                                                          credentials=target.credentials)
            if action == "resume":
                schedule.resume(catch_up=False)
            else:
                getattr(schedule, action)()
        return
    client = target.client()
    with kfp_errors(target):
        {"pause": client.disable_recurring_run, "resume": client.enable_recurring_run,
         "delete": client.delete_recurring_run}[action](schedule_id)
