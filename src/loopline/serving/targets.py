"""Deployment targets behind one interface, chosen by name from one registry (`TARGETS`).

A target rolls a registered version out the way `rollout` describes (create, or canary beside the
serving version, smoke test, then promote or roll back) and says which version serves now. The
`deploy_model` step, the command line's `--deploy-target`, the parameter checks and the docs take
their choices from `TARGETS`, so a new target (Vertex AI, say) is one class here and one entry.

- `local`: KServe model servers on loopback (`rollout.rollout_local`);
- `kserve`: an InferenceService through the Kubernetes API (`rollout.rollout_cluster`), in
  Knative (`canaryTrafficPercent`) or Standard (`spec.canary`) mode;
- `vertex`: a Vertex AI Endpoint, canary by traffic split, Loopline's serving image as the
  container of Vertex Model Registry versions (`vertex_target`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loopline.core import images
from loopline.core.errors import DeploymentError
from loopline.serving import inference_service, kserve_modes, rollout, version_uri, vertex_target
from loopline.serving import server as serving
from loopline.serving.cluster_api import ClusterApi


@dataclass(frozen=True)
class Rollout:
    """What a target needs to roll one version out: the version's files and immutable URI, its
    InferenceService manifest, the smoke rows with the answers they must get, and the limits."""

    home: Path
    model_name: str
    version: str
    model_dir: str
    model_uri: str
    manifest: dict
    rows: list[dict]
    expected: np.ndarray
    limits: rollout.SmokeLimits
    canary_percent: int
    ready_timeout: float
    settings: DeploySettings | None = None  # the step's settings, for what a target reads beyond these


class DeploymentTarget(ABC):
    """One place a model version can serve from."""

    name: str
    summary: str  # one line for the command line's help and the docs

    def check_model_uri(self, model_uri: str, version: str) -> None:  # noqa: B027 - most targets read any URI
        """Refuse, before anything is deployed, a model URI this target's servers cannot read."""

    @abstractmethod
    def roll_out(self, request: Rollout) -> rollout.RolloutResult:
        """Create, or canary beside the serving version, smoke-test, then promote or roll back."""

    @abstractmethod
    def serving_version(self, *, home: Path, model_name: str, manifest: dict) -> str:
        """The version that serves now ("" for none)."""


class LocalTarget(DeploymentTarget):
    name = "local"
    summary = "a KServe model server on loopback"

    def roll_out(self, request: Rollout) -> rollout.RolloutResult:
        return rollout.rollout_local(
            home=request.home, model_name=request.model_name, version=request.version, model_dir=request.model_dir,
            rows=request.rows, expected=request.expected, limits=request.limits,
            ready_timeout=min(request.ready_timeout, 300.0),
        )

    def serving_version(self, *, home: Path, model_name: str, manifest: dict) -> str:
        current = serving.read_state(home, model_name)
        return current.version if current and serving.is_alive(current) else ""


class KServeTarget(DeploymentTarget):
    name = "kserve"
    summary = "an InferenceService through the Kubernetes API of $KUBECONFIG (or the pod's service account)"

    def __init__(self, api: ClusterApi | None = None) -> None:
        self._api = api

    @property
    def api(self) -> ClusterApi:
        if self._api is None:
            self._api = ClusterApi()
        return self._api

    def check_model_uri(self, model_uri: str, version: str) -> None:
        if not version_uri.is_cluster_readable(model_uri):
            raise DeploymentError(
                f"the registry keeps version {version} at {model_uri}, which KServe cannot read: "
                "give storage_uri (a gs:// or s3:// prefix) or use an MLflow server with object-store artifacts"
            )

    def roll_out(self, request: Rollout) -> rollout.RolloutResult:
        return rollout.rollout_cluster(
            self.api, request.manifest, rows=request.rows, expected=request.expected, limits=request.limits,
            canary_percent=request.canary_percent, ready_timeout=request.ready_timeout,
        )

    def serving_version(self, *, home: Path, model_name: str, manifest: dict) -> str:
        meta = manifest["metadata"]
        current = self.api.get(meta["name"], meta["namespace"])
        return ((current or {}).get("metadata", {}).get("labels", {}) or {}).get(rollout.VERSION_LABEL, "")


class VertexTarget(DeploymentTarget):
    name = "vertex"
    summary = "a Vertex AI Endpoint (canary by traffic split) serving Loopline's image from Vertex Model Registry"

    def __init__(self, credentials=None) -> None:
        self.credentials = credentials  # None: application default credentials

    def vertex_settings(self, settings: DeploySettings | None) -> vertex_target.VertexSettings:
        s = settings or DeploySettings(target=self.name)  # no settings: no project, refused by the rollout
        return vertex_target.VertexSettings(
            project=s.vertex_project, location=s.vertex_location, serving_image=images.SERVING_IMAGE,
            endpoint=s.vertex_endpoint, machine_type=s.machine_type, min_replicas=s.min_replicas,
            max_replicas=s.max_replicas, service_account=s.service_account, network=s.network,
            api_endpoint=s.vertex_api_endpoint, credentials=self.credentials,
        )

    def check_model_uri(self, model_uri: str, version: str) -> None:
        vertex_target.check_model_uri(model_uri, version)

    def roll_out(self, request: Rollout) -> rollout.RolloutResult:
        return vertex_target.roll_out(
            self.vertex_settings(request.settings), model_name=request.model_name, version=request.version,
            model_uri=request.model_uri, rows=request.rows, expected=request.expected, limits=request.limits,
            canary_percent=request.canary_percent, ready_timeout=request.ready_timeout,
        )

    def serving_version(self, *, home: Path, model_name: str, manifest: dict, settings: DeploySettings | None = None) -> str:
        return vertex_target.serving_version(self.vertex_settings(settings), model_name)


# The registry: name -> target. Every list of deployment targets is read from here.
TARGETS: dict[str, type[DeploymentTarget]] = {cls.name: cls for cls in (LocalTarget, KServeTarget, VertexTarget)}


def target(name: str) -> DeploymentTarget:
    """The target registered under `name`."""
    if name not in TARGETS:
        raise DeploymentError(f"deploy target must be one of {', '.join(map(repr, TARGETS))}, got '{name}'")
    return TARGETS[name]()


def help_text() -> str:
    """`local: ...; kserve: ...` for the command line and the docs."""
    return "; ".join(f"{name}: {cls.summary}" for name, cls in TARGETS.items())


@dataclass(frozen=True, kw_only=True)
class DeploySettings:
    """Where and how `deploy_model` rolls a version out and what its smoke test demands: the one
    declaration of these settings and their defaults. Checked on construction."""

    target: str = "local"  # a name of TARGETS
    namespace: str = "default"
    storage_uri: str = ""  # empty: where the registry keeps the version
    canary_percent: int = 10
    deployment_mode: str = "Serverless"  # or Knative; Standard or RawDeployment
    service_account: str = ""  # of the predictor pods (KServe) or the deployed model (Vertex)
    runtime: str = inference_service.LOOPLINE_RUNTIME  # the (Cluster)ServingRuntime of Loopline's serving image
    runtime_version: str = ""  # empty: the runtime's own image tag
    min_replicas: int = 1
    max_replicas: int = 1
    cpu: str = "1"  # request and limit of each predictor replica
    memory: str = "2Gi"
    machine_type: str = vertex_target.DEFAULT_MACHINE_TYPE  # Vertex: each replica's machine; empty: automatic resources
    network: str = ""  # Vertex: the VPC of a private endpoint (projects/<number>/global/networks/<name>)
    vertex_project: str = ""  # Vertex: the project and location of the Endpoint and Model Registry
    vertex_location: str = ""
    vertex_endpoint: str = ""  # Vertex: an endpoint id; empty: the model's own, created on first use
    vertex_api_endpoint: str = ""  # Vertex: empty for the regional API endpoint
    smoke_rows: int = 16
    tolerance: float = 1e-5  # max |served - in-process| per probability
    max_p95_ms: float = 1000.0
    ready_timeout_seconds: float = 600.0
    local_home: str = ""  # empty: $LOOPLINE_HOME or ./.loopline

    def __post_init__(self) -> None:
        """The checks of the deployment settings, each a one-line DeploymentError."""
        if self.target not in TARGETS:
            raise DeploymentError(f"target must be one of {', '.join(map(repr, TARGETS))}, got '{self.target}'")
        kserve_modes.canonical_mode(self.deployment_mode)
