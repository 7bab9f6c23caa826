"""Submitting and scheduling on Vertex AI: PipelineJobs and schedules labelled with the Loopline
version, the pipeline and the YAML's SHA-256."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from typing import Any

from loopline.ops.cron import Cron
from loopline.ops.params import PipelineFile
from loopline.ops.submit.kfp import default_run_name
from loopline.ops.submit.targets import (
    VERTEX_FINISHED,
    Schedule,
    SubmitError,
    Submitted,
    VertexTarget,
    _first_line,
    vertex_errors,
)

log = logging.getLogger(__name__)


def _label(value: str) -> str:
    """A valid Vertex label value: lowercase letters, digits, '-' and '_', at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "-", value.lower())[:63]

def vertex_labels(pipeline: PipelineFile, extra: dict[str, str] | None = None) -> dict[str, str]:
    from loopline import __version__

    labels = {
        "loopline-version": _label(__version__),
        "loopline-pipeline": _label(pipeline.name),
        "loopline-yaml-sha256": pipeline.sha256[:12],
    }
    labels.update(extra or {})
    return labels

def _vertex_job(
    pipeline: PipelineFile,
    target: VertexTarget,
    *,
    params: dict[str, Any],
    display_name: str,
    pipeline_root: str,
    enable_caching: bool | None,
    labels: dict[str, str] | None,
    kms_key: str,
):
    aiplatform = target.init()
    if not pipeline_root.startswith("gs://"):
        raise SubmitError(f"Vertex AI needs a gs:// pipeline root (--pipeline-root), got '{pipeline_root or ''}'")
    if pipeline.platform:
        log.info("%s: its Kubernetes settings do not apply on Vertex AI; sending the pipeline spec without them", pipeline.path.name)
    with tempfile.TemporaryDirectory() as tmp:
        template = os.path.join(tmp, pipeline.path.name)
        with open(template, "w") as handle:
            handle.write(pipeline.spec_only_yaml())
        with vertex_errors():
            try:
                return aiplatform.PipelineJob(
                    display_name=display_name,
                    template_path=template,
                    pipeline_root=pipeline_root,
                    parameter_values=params,
                    enable_caching=enable_caching,
                    labels=vertex_labels(pipeline, labels),
                    encryption_spec_key_name=kms_key or None,
                    project=target.project,
                    location=target.location,
                    credentials=target.credentials,
                )
            except ValueError as exc:  # labels, job id or parameters the SDK rejects
                raise SubmitError(f"Vertex AI pipeline job: {_first_line(exc)}") from None

def submit_vertex(
    pipeline: PipelineFile,
    target: VertexTarget,
    *,
    params: dict[str, Any],
    pipeline_root: str,
    run_name: str = "",
    service_account: str = "",
    network: str = "",
    labels: dict[str, str] | None = None,
    kms_key: str = "",
    enable_caching: bool | None = None,
) -> Submitted:
    """Create a Vertex AI PipelineJob.

    The request is the one `PipelineJob.submit()` sends, made through the job's own
    PipelineService client, without `submit()`'s first step: getting (or creating) the pipeline
    root's bucket through the Cloud Storage API. Loopline never creates storage as a side effect;
    the pipeline root is the user's, and Vertex reports a missing or unwritable one on the run.
    """
    from google.cloud.aiplatform.compat.types import pipeline_job as gca_pipeline_job
    from google.protobuf import json_format

    display_name = run_name or default_run_name(pipeline)
    job = _vertex_job(
        pipeline, target, params=params, display_name=display_name, pipeline_root=pipeline_root,
        enable_caching=enable_caching, labels=labels, kms_key=kms_key,
    )
    resource = gca_pipeline_job.PipelineJob()
    json_format.ParseDict(job.to_dict(), gca_pipeline_job.PipelineJob.pb(resource))
    if service_account:
        resource.service_account = service_account
    if network:
        resource.network = network
    with vertex_errors():
        created = job.api_client.create_pipeline_job(
            parent=f"projects/{target.project}/locations/{target.location}", pipeline_job=resource,
            pipeline_job_id=job.job_id,
        )
    job_id = created.name.rsplit("/", 1)[-1]
    url = f"https://console.cloud.google.com/vertex-ai/locations/{target.location}/pipelines/runs/{job_id}?project={target.project}"
    return Submitted(target.describe(), created.name, display_name, url)

def schedule_vertex(
    pipeline: PipelineFile,
    target: VertexTarget,
    *,
    cron: Cron,
    name: str,
    params: dict[str, Any],
    pipeline_root: str,
    service_account: str = "",
    network: str = "",
    labels: dict[str, str] | None = None,
    kms_key: str = "",
    enable_caching: bool | None = None,
    max_concurrency: int = 1,
) -> Schedule:
    job = _vertex_job(
        pipeline, target, params=params, display_name=name, pipeline_root=pipeline_root,
        enable_caching=enable_caching, labels=labels, kms_key=kms_key,
    )
    with vertex_errors():
        schedule = job.create_schedule(
            cron=cron.for_vertex(), display_name=name, max_concurrent_run_count=max_concurrency,
            service_account=service_account or None, network=network or None,
        )
    resource = schedule.gca_resource
    return Schedule(resource.name, name, resource.cron, resource.state.name)

def vertex_run_state(target: VertexTarget, resource_name: str) -> tuple[bool, str]:
    aiplatform = target.init()
    with vertex_errors():
        state = aiplatform.PipelineJob.get(resource_name, project=target.project, location=target.location,
                                           credentials=target.credentials).gca_resource.state.name
    return state not in VERTEX_FINISHED, state
