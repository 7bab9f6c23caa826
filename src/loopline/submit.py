"""Submit and schedule Loopline's compiled pipelines on a KFP cluster or on Vertex AI Pipelines.

Both targets take the same `compiled/*.yaml`. The clients are the real ones (`kfp.Client`,
`google.cloud.aiplatform`), imported where used so that importing this module stays cheap.

KFP: the pipeline is uploaded once, and each compiled YAML as a pipeline version named after the
Loopline version and the file's SHA-256 (`0.1.0-3f2a9c1e4b2d`), so that every run and recurring
run refers to the exact YAML it came from; uploading the same YAML again reuses its version.

Vertex AI: runs and schedules carry labels with the Loopline version, the pipeline and the
YAML's SHA-256. Kubernetes settings (kfp-kubernetes) in the YAML do not apply on Vertex; the
pipeline spec is sent without them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loopline.cron import Cron
from loopline.errors import LooplineError
from loopline.params import PipelineFile

log = logging.getLogger(__name__)

PIPELINE_KEYS = ("training", "drift_monitor")
# Parameters whose values are a fixed set; checked with the names and types before sending.
ALLOWED_VALUES = {
    "rerun_mode": ("nested", "submit"),
    "rerun_target": ("kfp", "vertex"),
    "deploy_target": ("local", "kserve"),
}
DEFAULT_EXPERIMENT = "loopline"
# KFP run states (V2beta1RuntimeState) after which a run does not change any more
KFP_FINISHED = {"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"}
VERTEX_FINISHED = {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"}


class SubmitError(LooplineError):
    """The KFP or Vertex AI API refused a request, or could not be reached."""


@dataclass(frozen=True)
class KfpTarget:
    """A KFP API server. Without `host`, the client finds it the usual way: inside a pod, the
    cluster's own `ml-pipeline` service with the pod's service-account token; elsewhere, the
    current kube config. `token`, `client_id` and the KF_PIPELINES_* environment variables are
    the KFP client's usual authentication options."""

    host: str = ""
    namespace: str = ""
    token: str = field(default="", repr=False)
    client_id: str = ""
    ssl_ca_cert: str = ""
    kube_context: str = ""
    experiment: str = DEFAULT_EXPERIMENT

    kind = "kfp"

    @property
    def key(self) -> str:
        """Identifies the target in registry tags (no credentials)."""
        return f"kfp:{self.host or 'in-cluster'}"

    def describe(self) -> str:
        return f"KFP at {self.host}" if self.host else "KFP (in-cluster API)"

    def client(self):
        import kfp

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "This client only works with KFP v2.0.0-beta.2 and later"
            with kfp_errors(self):
                return kfp.Client(
                    host=self.host or None,
                    namespace=self.namespace or "kubeflow",
                    existing_token=self.token or None,
                    client_id=self.client_id or None,
                    ssl_ca_cert=self.ssl_ca_cert or None,
                    kube_context=self.kube_context or None,
                )

    def run_url(self, run_id: str) -> str:
        return f"{self.host.rstrip('/')}/#/runs/details/{run_id}" if self.host else run_id


@dataclass(frozen=True)
class VertexTarget:
    """A Vertex AI project and region. `api_endpoint` overrides the regional endpoint (a private
    endpoint, or `http://host:port` for a plain-HTTP endpoint, which uses the REST transport).
    Credentials: Application Default Credentials unless `credentials` is given."""

    project: str
    location: str
    api_endpoint: str = ""
    credentials: Any = field(default=None, repr=False, compare=False)

    kind = "vertex"

    @property
    def key(self) -> str:
        return f"vertex:{self.project}/{self.location}"

    def describe(self) -> str:
        return f"Vertex AI ({self.project}, {self.location})"

    def init(self):
        from google.cloud import aiplatform

        if not self.project or not self.location:
            raise SubmitError("Vertex AI needs a project and a location (--vertex-project, --vertex-location)")
        credentials = self.credentials
        if credentials is None:  # Application Default Credentials, resolved now so that a missing one is one clear line
            import google.auth

            with vertex_errors():
                credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        settings: dict[str, Any] = {"project": self.project, "location": self.location, "credentials": credentials}
        if self.api_endpoint:
            settings["api_endpoint"] = self.api_endpoint
            if self.api_endpoint.startswith("http://"):
                settings["api_transport"] = "rest"  # plain HTTP is only possible over REST
        with vertex_errors():
            aiplatform.init(**settings)
        return aiplatform


@dataclass
class Submitted:
    target: str
    run_id: str
    run_name: str
    url: str
    pipeline_version: str = ""  # KFP: the uploaded pipeline version's name


@dataclass
class Schedule:
    id: str
    name: str
    cron: str
    state: str
    detail: str = ""


# --------------------------------------------------------------------------------------------
# errors: one line naming the service and what it said


def _first_line(text: str) -> str:
    return (str(text).strip().splitlines() or [""])[0][:300]


@contextlib.contextmanager
def kfp_errors(target: KfpTarget):
    import kfp_server_api
    import urllib3

    try:
        yield
    except kfp_server_api.ApiException as exc:
        detail = exc.body or exc.reason
        with contextlib.suppress(Exception):
            body = json.loads(exc.body)
            detail = body.get("error") or body.get("message") or detail
        raise SubmitError(f"{target.describe()} answered {exc.status}: {_first_line(detail)}") from None
    except urllib3.exceptions.HTTPError as exc:
        raise SubmitError(f"cannot reach {target.describe()}: {_first_line(exc)}") from None


@contextlib.contextmanager
def vertex_errors():
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions

    try:
        yield
    except auth_exceptions.DefaultCredentialsError:
        raise SubmitError(
            "no Google Cloud credentials: run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from None
    except auth_exceptions.GoogleAuthError as exc:
        raise SubmitError(f"Google Cloud authentication failed: {_first_line(exc)}") from None
    except api_exceptions.GoogleAPICallError as exc:
        raise SubmitError(f"Vertex AI answered {exc.code}: {_first_line(exc.message)}") from None


# --------------------------------------------------------------------------------------------
# KFP


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


# --------------------------------------------------------------------------------------------
# Vertex AI


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


# --------------------------------------------------------------------------------------------
# both targets


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
