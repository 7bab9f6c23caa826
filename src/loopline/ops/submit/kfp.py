"""Submitting and scheduling on KFP: each compiled YAML is a pipeline version named after the Loopline
version and the file's SHA-256, uploaded once."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from loopline.ops.cron import Cron
from loopline.ops.params import PipelineFile
from loopline.ops.submit.targets import KFP_FINISHED, KfpTarget, Schedule, Submitted, kfp_errors

log = logging.getLogger(__name__)


def version_name(pipeline: PipelineFile) -> str:
    """The pipeline version's name: the Loopline version and the YAML's SHA-256 prefix."""
    from loopline import __version__

    return f"{__version__}-{pipeline.sha256[:12]}"

def _equals_filter(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})

def ensure_pipeline_version(client, pipeline: PipelineFile, target: KfpTarget) -> tuple[str, str, str]:
    """Upload the pipeline (once) and this YAML as a version named after the Loopline version;
    reuse both when they exist. Returns (pipeline id, version id, version name)."""
    from loopline import __version__

    name = version_name(pipeline)
    with kfp_errors(target):
        pipeline_id = client.get_pipeline_id(pipeline.name)
        if pipeline_id is None:
            log.info("uploading pipeline %s to %s", pipeline.name, target.describe())
            uploaded = client.upload_pipeline(
                str(pipeline.path), pipeline_name=pipeline.name, description=pipeline.spec["pipelineInfo"].get("description"),
                namespace=target.namespace or None,
            )
            pipeline_id = uploaded.pipeline_id
        found = client.list_pipeline_versions(pipeline_id, page_size=1, filter=_equals_filter("display_name", name))
        if found.pipeline_versions:
            log.info("pipeline %s version %s is uploaded already", pipeline.name, name)
            return pipeline_id, found.pipeline_versions[0].pipeline_version_id, name
        log.info("uploading %s as pipeline %s version %s", pipeline.path, pipeline.name, name)
        version = client.upload_pipeline_version(
            str(pipeline.path), pipeline_version_name=name, pipeline_id=pipeline_id,
            description=f"Loopline {__version__}: {pipeline.path.name}, sha256 {pipeline.sha256}",
        )
    return pipeline_id, version.pipeline_version_id, name

def _kfp_experiment_id(client, target: KfpTarget) -> str:
    with kfp_errors(target):
        return client.create_experiment(name=target.experiment, namespace=target.namespace or None).experiment_id

def default_run_name(pipeline: PipelineFile) -> str:
    return f"{pipeline.name}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"

def submit_kfp(
    pipeline: PipelineFile,
    target: KfpTarget,
    *,
    params: dict[str, Any],
    run_name: str = "",
    pipeline_root: str = "",
    service_account: str = "",
) -> Submitted:
    client = target.client()
    pipeline_id, version_id, version = ensure_pipeline_version(client, pipeline, target)
    experiment_id = _kfp_experiment_id(client, target)
    run_name = run_name or default_run_name(pipeline)
    with kfp_errors(target):
        run = client.run_pipeline(
            experiment_id=experiment_id, job_name=run_name, pipeline_id=pipeline_id, version_id=version_id,
            params=params, pipeline_root=pipeline_root or None, service_account=service_account or None,
        )
    return Submitted(target.describe(), run.run_id, run_name, target.run_url(run.run_id), version)

def schedule_kfp(
    pipeline: PipelineFile,
    target: KfpTarget,
    *,
    cron: Cron,
    name: str,
    params: dict[str, Any],
    pipeline_root: str = "",
    service_account: str = "",
    max_concurrency: int = 1,
    no_catchup: bool = True,
) -> Schedule:
    client = target.client()
    pipeline_id, version_id, version = ensure_pipeline_version(client, pipeline, target)
    experiment_id = _kfp_experiment_id(client, target)
    with kfp_errors(target):
        recurring = client.create_recurring_run(
            experiment_id=experiment_id, job_name=name,
            description=f"Loopline {pipeline.name} {version}, cron '{cron.standard}'",
            cron_expression=cron.for_kfp(), max_concurrency=max_concurrency, no_catchup=no_catchup,
            params=params, pipeline_id=pipeline_id, version_id=version_id,
            pipeline_root=pipeline_root or None, service_account=service_account or None,
        )
    return Schedule(recurring.recurring_run_id, name, cron.for_kfp(), "ENABLED", f"pipeline version {version}")

def kfp_run_state(target: KfpTarget, run_id: str) -> tuple[bool, str]:
    """(still active, state) of a KFP run."""
    client = target.client()
    with kfp_errors(target):
        state = str(client.get_run(run_id).state or "RUNTIME_STATE_UNSPECIFIED")
    return state not in KFP_FINISHED, state
