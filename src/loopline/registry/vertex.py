"""Optional upload of a registered model to Vertex AI Model Registry.

Configured by one mapping (the `vertex_model_registry` parameter); empty means no upload:

    {"project": "my-project", "location": "us-central1",
     "serving_container_image_uri": "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
     "model_id": "fraud",              # optional; default: the MLflow model name as a Vertex id
     "artifact_uri": "gs://...",       # optional; default: <model artifact URI>/1 when it is on GCS
     "api_endpoint": "...",            # optional; e.g. a regional or private endpoint
     "version_aliases": ["..."]}       # optional; added to "challenger" and "mlflow-v<version>"

The first upload creates the Vertex model (`model_id`); later ones add versions to it
(`parent_model`), not made default: as in MLflow, the serving champion moves on deployment.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from loopline.core.errors import LooplineError, one_line

log = logging.getLogger(__name__)

KEYS = ("project", "location", "serving_container_image_uri", "model_id", "artifact_uri", "api_endpoint",
        "version_aliases", "api_transport")
ALIAS = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]$")


class VertexError(LooplineError):
    """The Vertex AI Model Registry upload is misconfigured or failed."""


@dataclass
class VertexTarget:
    project: str
    location: str
    serving_container_image_uri: str
    model_id: str
    artifact_uri: str
    api_endpoint: str = ""
    api_transport: str = "rest"
    version_aliases: list[str] = field(default_factory=list)

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    @property
    def model_resource(self) -> str:
        return f"{self.parent}/models/{self.model_id}"


def model_id_for(name: str) -> str:
    """A Vertex model id ([a-z0-9_-], at most 63, starting with a letter) from a model name."""
    cleaned = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"m-{cleaned}"
    return cleaned[:63].rstrip("-_")


def label_value(value: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", str(value).lower())[:63]


def parse_target(config: dict[str, Any] | None, *, model_name: str, model_uri: str) -> VertexTarget | None:
    """The upload target, or None when no Vertex target is configured."""
    if not config:
        return None
    if not isinstance(config, dict):
        raise VertexError(f"vertex_model_registry must be a mapping, got {config!r}")
    unknown = sorted(set(config) - set(KEYS))
    if unknown:
        raise VertexError(f"vertex_model_registry: unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")
    for key in ("project", "location", "serving_container_image_uri"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise VertexError(f"vertex_model_registry.{key} is required")
    artifact_uri = config.get("artifact_uri") or ""
    if not artifact_uri:
        if not model_uri.startswith("gs://"):
            raise VertexError(
                f"vertex_model_registry.artifact_uri is required: the model is at {model_uri}, not on gs://"
            )
        artifact_uri = model_uri.rstrip("/") + "/1"  # the TF Serving version directory
    aliases = config.get("version_aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) and ALIAS.match(a) for a in aliases):
        raise VertexError(f"vertex_model_registry.version_aliases must be a list of Vertex aliases, got {aliases!r}")
    transport = config.get("api_transport", "rest")
    if transport not in ("rest", "grpc"):
        raise VertexError(f"vertex_model_registry.api_transport must be 'rest' or 'grpc', got {transport!r}")
    return VertexTarget(
        project=config["project"],
        location=config["location"],
        serving_container_image_uri=config["serving_container_image_uri"],
        model_id=config.get("model_id") or model_id_for(model_name),
        artifact_uri=artifact_uri,
        api_endpoint=config.get("api_endpoint", ""),
        api_transport=transport,
        version_aliases=list(aliases),
    )


def upload(
    target: VertexTarget,
    *,
    model_name: str,
    mlflow_version: str,
    pipeline_run: str,
    labels: dict[str, str] | None = None,
    credentials=None,
) -> dict[str, str]:
    """Upload the model as a new version of `target.model_id` (creating the model the first time)
    with the aliases `challenger` and `mlflow-v<version>`. Returns the resource name and version id."""
    import google.auth
    import google.auth.exceptions
    from google.api_core import exceptions as api_exceptions
    from google.cloud import aiplatform

    if credentials is None:  # the pod's application default credentials, explicitly: aiplatform.init
        # keeps whatever credentials an earlier init in the same process gave it
        try:
            credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise VertexError(f"no Google credentials for the Vertex AI Model Registry upload: {one_line(exc)}") from None
    aiplatform.init(
        project=target.project,
        location=target.location,
        credentials=credentials,
        api_endpoint=target.api_endpoint or None,
        api_transport=target.api_transport,
    )
    try:
        parent = aiplatform.Model(model_name=target.model_resource).resource_name
    except api_exceptions.NotFound:
        parent = None
    except api_exceptions.GoogleAPICallError as exc:
        raise VertexError(f"cannot read the Vertex model {target.model_resource}: {one_line(exc)}") from None
    aliases = ["challenger", f"mlflow-v{mlflow_version}", *target.version_aliases]
    arguments: dict[str, Any] = {
        "display_name": model_name,
        "artifact_uri": target.artifact_uri,
        "serving_container_image_uri": target.serving_container_image_uri,
        "description": f"Loopline model {model_name}, MLflow version {mlflow_version} "
                       f"(models:/{model_name}/{mlflow_version}), pipeline run {pipeline_run}",
        "version_aliases": list(dict.fromkeys(aliases)),
        "labels": {k: label_value(v) for k, v in (labels or {}).items()},
        "sync": True,
    }
    if parent:
        arguments.update(parent_model=parent, is_default_version=False)
        log.info("uploading %s as a new version of the Vertex model %s", model_name, parent)
    else:
        arguments.update(model_id=target.model_id)
        log.info("uploading %s to Vertex AI Model Registry as %s", model_name, target.model_resource)
    try:
        model = aiplatform.Model.upload(**arguments)
    except api_exceptions.GoogleAPICallError as exc:
        raise VertexError(f"Vertex AI Model Registry upload of {model_name} failed: {one_line(exc)}") from None
    log.info("Vertex model %s version %s", model.resource_name, model.version_id)
    return {"resource_name": model.resource_name, "version_id": str(model.version_id)}
