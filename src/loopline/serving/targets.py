"""Deployment targets behind one interface, chosen by name from one registry (`TARGETS`).

A target rolls a registered version out the way `rollout` describes (create, or canary beside the
serving version, smoke test, then promote or roll back) and says which version serves now. The
`deploy_model` step, the command line's `--deploy-target`, the parameter checks and the docs take
their choices from `TARGETS`, so a new target (Vertex AI, say) is one class here and one entry.

- `local`: KServe model servers on loopback (`rollout.rollout_local`);
- `kserve`: an InferenceService through the Kubernetes API (`rollout.rollout_cluster`), in
  Knative (`canaryTrafficPercent`) or Standard (`spec.canary`) mode.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loopline.core import rules
from loopline.core.errors import DeploymentError
from loopline.serving import inference_service, kserve_modes, rollout, version_uri
from loopline.serving import server as serving
from loopline.serving.cluster_api import ClusterApi
from loopline.traffic import capture as traffic_capture
from loopline.traffic.log import TrafficLogError


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
    traffic: traffic_capture.TrafficSettings | None = None  # a local server's traffic log


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
            ready_timeout=min(request.ready_timeout, 300.0), traffic=request.traffic,
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


# The registry: name -> target. Every list of deployment targets is read from here.
TARGETS: dict[str, type[DeploymentTarget]] = {cls.name: cls for cls in (LocalTarget, KServeTarget)}


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
    service_account: str = ""
    runtime: str = inference_service.LOOPLINE_RUNTIME  # the (Cluster)ServingRuntime of Loopline's serving image
    runtime_version: str = ""  # empty: the runtime's own image tag
    min_replicas: int = 1
    max_replicas: int = 1
    cpu: str = "1"  # request and limit of each predictor replica
    memory: str = "2Gi"
    smoke_rows: int = 16
    tolerance: float = 1e-5  # max |served - in-process| per probability
    max_p95_ms: float = 1000.0
    ready_timeout_seconds: float = 600.0
    local_home: str = ""  # empty: $LOOPLINE_HOME or ./.loopline
    traffic_log_uri: str = ""  # empty: no traffic log; else KServe's logger (target local: a folder too)
    traffic_log_format: str = "json"  # json, csv or parquet
    traffic_log_batch_size: int = 1
    traffic_log_batch_interval: str = ""  # a duration, e.g. "5s"; empty: none

    def __post_init__(self) -> None:
        """The checks of the deployment settings, each a one-line DeploymentError."""
        if self.target not in TARGETS:
            raise DeploymentError(f"target must be one of {', '.join(map(repr, TARGETS))}, got '{self.target}'")
        kserve_modes.canonical_mode(self.deployment_mode)
        check_namespace(self.namespace)
        inference_service.check_runtime(self.runtime)
        rules.number("canary_percent", self.canary_percent, DeploymentError, low=1, high=99, whole=True)
        rules.number("min_replicas", self.min_replicas, DeploymentError, low=0, whole=True)
        rules.number("max_replicas", self.max_replicas, DeploymentError, low=1, whole=True)
        if self.min_replicas > self.max_replicas:
            raise DeploymentError(f"min_replicas ({self.min_replicas:g}) is above max_replicas ({self.max_replicas:g})")
        rules.quantity("cpu", self.cpu, DeploymentError)
        rules.quantity("memory", self.memory, DeploymentError)
        rules.number("smoke_rows", self.smoke_rows, DeploymentError, low=1, whole=True)
        rules.number("tolerance", self.tolerance, DeploymentError, low=0)
        rules.number("max_p95_ms", self.max_p95_ms, DeploymentError, low=0, low_open=True)
        rules.number("ready_timeout_seconds", self.ready_timeout_seconds, DeploymentError, low=0, low_open=True)
        if self.storage_uri and not rules.has_scheme(self.storage_uri):
            raise DeploymentError(f"storage_uri '{self.storage_uri}' has no scheme: give a prefix such as "
                                  "s3://bucket/models or gs://bucket/models")
        if self.target == "kserve" and self.storage_uri and not version_uri.is_cluster_readable(self.storage_uri):
            raise DeploymentError(f"storage_uri '{self.storage_uri}' is not one KServe can read in a cluster "
                                  f"(one of {', '.join(version_uri.CLUSTER_SCHEMES)})")
        if self.traffic_log_uri:
            try:
                traffic_capture.TrafficSettings(uri=self.traffic_log_uri, fmt=self.traffic_log_format,
                                                batch_size=self.traffic_log_batch_size,
                                                batch_interval=self.traffic_log_batch_interval)
            except TrafficLogError as exc:
                raise DeploymentError(str(exc)) from exc
            if self.target == "kserve" and not self.traffic_log_uri.startswith(inference_service.TRAFFIC_LOG_SCHEMES):
                raise DeploymentError("traffic_log_uri must be an s3://, gs:// or abfs:// prefix for KServe's "
                                      f"logger, got '{self.traffic_log_uri}'")

    def traffic_log(self) -> dict | None:
        """The logger settings build_inference_service takes; None without a traffic log."""
        if not self.traffic_log_uri:
            return None
        return {"uri": self.traffic_log_uri, "format": self.traffic_log_format,
                "batch_size": self.traffic_log_batch_size, "batch_interval": self.traffic_log_batch_interval}


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_namespace(namespace: str) -> None:
    """A Kubernetes namespace is a DNS-1123 label: at most 63 lowercase letters, digits and '-',
    starting and ending with a letter or digit."""
    if not isinstance(namespace, str) or len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        raise DeploymentError(f"namespace {namespace!r} is not a Kubernetes namespace name (a DNS-1123 label: "
                              "at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)")
