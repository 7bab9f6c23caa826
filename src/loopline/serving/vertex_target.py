"""Vertex AI as a deployment target: Model Registry versions, one Endpoint per model, a canary by
traffic split, served by Loopline's own serving image.

    upload v<N> (parent_model, artifact_uri = its gs:// URI, Loopline's serving image)
      └─► endpoint (created on first use) ─► deploy with {"0": p, <serving id>: 100 - p}
            └─► smoke test through the endpoint's predict ─► promote: 100% to v<N>, undeploy the old one,
                                                               Vertex aliases `champion`, `mlflow-v<N>`
                                                         └─► roll back: traffic back, undeploy v<N>

A deployment that fails, or is not ready within the timeout, is undeployed (its operation is
cancelled first), and the serving deployed model keeps 100% of the traffic. The Vertex version
of MLflow version N carries the alias `mlflow-v<N>`, so deploying it again reuses it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopline.core.errors import DeploymentError, one_line
from loopline.serving import rollout

log = logging.getLogger(__name__)

CHAMPION = "champion"
DEFAULT_MACHINE_TYPE = "n1-standard-2"
PORT = 8080  # the container port Vertex sends requests to (AIP_HTTP_PORT)


@dataclass(frozen=True)
class VertexSettings:
    """Where on Vertex AI a model serves, and on what."""

    project: str
    location: str
    serving_image: str
    endpoint: str = ""  # an endpoint id; empty: the model's own, created on first use
    machine_type: str = DEFAULT_MACHINE_TYPE
    min_replicas: int = 1
    max_replicas: int = 1
    service_account: str = ""
    network: str = ""  # projects/<number>/global/networks/<name>: a private endpoint in that VPC
    api_endpoint: str = ""  # empty: the regional endpoint; http://host:port uses REST over plain HTTP
    credentials: Any = field(default=None, repr=False, compare=False)

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"


def resource_id(name: str) -> str:
    """A Vertex resource id ([a-z0-9-], at most 63, starting with a letter) from a model name."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"m-{cleaned}"
    return cleaned[:63].rstrip("-")


def deployed_name(model_name: str, version: str) -> str:
    return f"{resource_id(model_name)[:50]}-v{version}"


def version_of(deployed_model) -> str:
    """The Loopline version a deployed model serves ("" for one Loopline did not deploy)."""
    match = re.search(r"-v(\d+)$", deployed_model.display_name or "")
    return match.group(1) if match else ""


def check_model_uri(model_uri: str, version: str) -> None:
    if not model_uri.startswith("gs://"):
        raise DeploymentError(
            f"the registry keeps version {version} at {model_uri}, which Vertex AI cannot read (artifact_uri must be "
            "on gs://): give storage_uri a gs:// prefix or use an MLflow server with gs:// artifacts"
        )


class _Vertex:
    """One rollout's view of the Vertex AI API (the real google-cloud-aiplatform client)."""

    def __init__(self, settings: VertexSettings, model_name: str) -> None:
        if not settings.project or not settings.location:
            raise DeploymentError("deploy target 'vertex' needs vertex_project and vertex_location")
        from google.api_core import exceptions
        from google.cloud import aiplatform

        self.exceptions, self.aiplatform, self.settings, self.model_name = exceptions, aiplatform, settings, model_name
        credentials = settings.credentials
        if credentials is None:  # the pod's application default credentials, resolved now: one clear line
            import google.auth
            import google.auth.exceptions

            try:
                credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise DeploymentError(f"no Google credentials for Vertex AI ({settings.parent}): {one_line(exc)}") from exc
        init: dict[str, Any] = {"project": settings.project, "location": settings.location, "credentials": credentials}
        if settings.api_endpoint:
            init["api_endpoint"] = settings.api_endpoint
            if settings.api_endpoint.startswith("http://"):
                init["api_transport"] = "rest"  # plain HTTP is only possible over REST
        try:
            aiplatform.init(**init)
        except ValueError as exc:  # the SDK's own check of the region
            raise DeploymentError(f"Vertex AI location '{settings.location}' is not a Vertex AI region "
                                  f"(project {settings.project})") from exc
        self.credentials = credentials
        self.model_resource = f"{settings.parent}/models/{resource_id(model_name)}"
        self.endpoint_resource = f"{settings.parent}/endpoints/{settings.endpoint or resource_id(model_name)}"

    def fail(self, what: str, exc: Exception) -> DeploymentError:
        message = re.sub(r"^(GET|POST|PATCH|PUT|DELETE) \S+: ", "", getattr(exc, "message", "") or "")  # REST: the URL first
        return DeploymentError(f"Vertex AI {what}: {one_line(RuntimeError(message) if message else exc)}")

    def check_location(self) -> None:
        """The project and location exist and can be read: listing their endpoints says so (a
        missing one is 404 there, never an empty list)."""
        try:
            self.aiplatform.Endpoint.list(filter=f'labels.loopline-model="{resource_id(self.model_name)}"',
                                          credentials=self.credentials)
        except self.exceptions.GoogleAPICallError as exc:
            raise self.fail(f"project {self.settings.project}, location {self.settings.location} ({exc.code})",
                            exc) from exc

    def endpoint(self):
        """The endpoint, or None when it does not exist yet and is the model's own."""
        try:
            endpoint = self.aiplatform.Endpoint(self.endpoint_resource, credentials=self.credentials)
            endpoint._sync_gca_resource()  # the SDK defers the read; read it now, where its errors are handled
            return endpoint
        except self.exceptions.NotFound as exc:
            if self.settings.endpoint:
                raise DeploymentError(f"Vertex AI endpoint {self.endpoint_resource} not found") from exc
            return None
        except self.exceptions.GoogleAPICallError as exc:
            raise self.fail(f"endpoint {self.endpoint_resource} ({exc.code})", exc) from exc

    def version(self, alias: str = ""):
        """The Vertex model version with `alias` (empty: the default version), or None."""
        try:
            name = f"{self.model_resource}@{alias}" if alias else self.model_resource
            return self.aiplatform.Model(name, credentials=self.credentials)
        except self.exceptions.NotFound:
            return None
        except self.exceptions.GoogleAPICallError as exc:
            raise self.fail(f"model {self.model_resource} ({exc.code})", exc) from exc

    def upload(self, *, version: str, model_uri: str):
        """Vertex model version of MLflow version `version`: the one already uploaded, or a new one."""
        existing = self.version(f"mlflow-v{version}")
        if existing is not None:
            log.info("Vertex model %s already holds MLflow version %s", existing.versioned_resource_name, version)
            return existing
        parent = self.version()
        arguments: dict[str, Any] = {
            "display_name": self.model_name, "artifact_uri": model_uri.rstrip("/"),
            "serving_container_image_uri": self.settings.serving_image,
            "serving_container_args": ["--model_name", self.model_name, "--host", "0.0.0.0"],
            "serving_container_predict_route": f"/v1/models/{self.model_name}:predict",
            "serving_container_health_route": f"/v1/models/{self.model_name}",
            "serving_container_ports": [PORT],
            "description": f"Loopline model {self.model_name}, MLflow version {version} (models:/{self.model_name}/{version})",
            "version_aliases": [f"mlflow-v{version}"], "labels": {"loopline-mlflow-version": str(version)},
            "credentials": self.credentials, "sync": True,
        }
        if parent is not None:
            arguments.update(parent_model=self.model_resource, is_default_version=False)
        else:
            arguments.update(model_id=resource_id(self.model_name))
        try:
            return self.aiplatform.Model.upload(**arguments)
        except self.exceptions.GoogleAPICallError as exc:
            raise self.fail(f"upload of {self.model_name} v{version} to {self.model_resource} ({exc.code})", exc) from exc

    def create_endpoint(self):
        from google.cloud.aiplatform.compat.types import endpoint as gca_endpoint

        client = self.aiplatform.Endpoint._instantiate_client(location=self.settings.location, credentials=self.credentials)
        body = gca_endpoint.Endpoint(display_name=self.model_name, labels={"loopline-model": resource_id(self.model_name)},
                                     network=self.settings.network or None)
        try:
            client.create_endpoint(parent=self.settings.parent, endpoint=body,
                                   endpoint_id=self.endpoint_resource.rsplit("/", 1)[-1]).result()
            return self.aiplatform.Endpoint(self.endpoint_resource, credentials=self.credentials)
        except self.exceptions.GoogleAPICallError as exc:
            raise self.fail(f"cannot create endpoint {self.endpoint_resource} ({exc.code})", exc) from exc

    def deploy(self, endpoint, model, *, version: str, traffic_split: dict[str, int], timeout: float) -> str:
        """Deploy `model` with `traffic_split`; the new deployed model's id. A failure or a timeout
        raises DeploymentError once whatever was deployed of it is undeployed."""
        from google.cloud.aiplatform.compat.types import endpoint as gca_endpoint
        from google.cloud.aiplatform.compat.types import machine_resources

        s = self.settings
        deployed = gca_endpoint.DeployedModel(model=model.versioned_resource_name,
                                              display_name=deployed_name(self.model_name, version),
                                              service_account=s.service_account or None)
        if s.machine_type:
            deployed.dedicated_resources = machine_resources.DedicatedResources(
                machine_spec=machine_resources.MachineSpec(machine_type=s.machine_type),
                min_replica_count=s.min_replicas, max_replica_count=s.max_replicas)
        else:
            deployed.automatic_resources = machine_resources.AutomaticResources(
                min_replica_count=s.min_replicas, max_replica_count=s.max_replicas)
        operation = None
        try:
            operation = endpoint.api_client.deploy_model(endpoint=endpoint.resource_name, deployed_model=deployed,
                                                         traffic_split=traffic_split)
            return operation.result(timeout=timeout).deployed_model.id
        except (concurrent.futures.TimeoutError, self.exceptions.RetryError) as exc:
            if operation is not None:
                self.cancel(endpoint, operation.operation.name)
            self.undeploy_version(endpoint, version)
            raise DeploymentError(f"Vertex AI deployment of {deployed.display_name} to {endpoint.resource_name} "
                                  f"not ready after {timeout:.0f}s") from exc
        except self.exceptions.GoogleAPICallError as exc:
            self.undeploy_version(endpoint, version)
            raise self.fail(f"deployment of {deployed.display_name} to {endpoint.resource_name} failed ({exc.code})",
                            exc) from exc

    def cancel(self, endpoint, name: str) -> None:
        """Cancel the operation `name` (through the endpoint client: api_core's own REST operations
        client cannot send a cancel)."""
        try:
            endpoint.api_client.cancel_operation(request={"name": name})
        except self.exceptions.GoogleAPICallError as exc:  # the undeploy that follows still runs
            log.warning("could not cancel %s: %s", name, one_line(exc))

    def undeploy_version(self, endpoint, version: str) -> list[str]:
        """Undeploy every deployed model of `version` from `endpoint`, traffic back to the others."""
        endpoint._sync_gca_resource()
        gone = []
        for deployed in list(endpoint.gca_resource.deployed_models):
            if version_of(deployed) == str(version):
                self.undeploy(endpoint, deployed.id)
                gone.append(deployed.id)
        return gone

    def undeploy(self, endpoint, deployed_id: str) -> None:
        endpoint._sync_gca_resource()
        rest = {k: v for k, v in endpoint.gca_resource.traffic_split.items() if k != deployed_id}
        if rest and sum(rest.values()) != 100:  # what stays gets all traffic (one deployed model serves)
            top = max(rest, key=rest.get)
            rest = {k: (100 if k == top else 0) for k in rest}
        try:
            endpoint._undeploy(deployed_id, traffic_split=rest)
        except self.exceptions.GoogleAPICallError as exc:
            raise self.fail(f"undeploy of {deployed_id} from {endpoint.resource_name} ({exc.code})", exc) from exc

    def set_traffic(self, endpoint, split: dict[str, int]) -> None:
        try:
            endpoint.update(traffic_split=split)
        except self.exceptions.GoogleAPICallError as exc:
            raise self.fail(f"traffic update of {endpoint.resource_name} ({exc.code})", exc) from exc

    def move_champion(self, model, version: str) -> None:
        """The Vertex alias `champion` moves to `model` (removed from the version that had it)."""
        registry = self.aiplatform.models.ModelRegistry(self.model_resource, credentials=self.credentials)
        holder = self.version(CHAMPION)
        try:
            if holder is not None and holder.version_id != model.version_id:
                registry.remove_version_aliases([CHAMPION], holder.version_id)
            registry.add_version_aliases([CHAMPION, f"mlflow-v{version}"], model.version_id)
        except self.exceptions.GoogleAPICallError as exc:
            raise self.fail(f"aliases of {self.model_resource} ({exc.code})", exc) from exc


def serving(endpoint) -> tuple[str, str]:
    """(deployed model id, version) of what takes the most traffic on `endpoint` (("", "") for none)."""
    split = dict(endpoint.gca_resource.traffic_split)
    by_id = {d.id: d for d in endpoint.gca_resource.deployed_models}
    if not split or not by_id:
        return "", ""
    top = max(split, key=split.get)
    return (top, version_of(by_id[top])) if top in by_id and split[top] > 0 else ("", "")


def canary_predict(endpoint, deployed_id: str, attempts: int):
    """A smoke test's predict call answered by the deployed model `deployed_id`: the endpoint's
    predict call, repeated while the traffic split sends it to another deployed model."""

    def predict(rows: list[dict]) -> list[list[float]]:
        for _ in range(attempts):
            answer = endpoint.predict(instances=rows)
            if not deployed_id or answer.deployed_model_id == deployed_id:
                return [list(p) for p in answer.predictions]
        raise ConnectionError(f"{attempts} predict calls, none answered by deployed model {deployed_id}")

    return predict


def roll_out(settings: VertexSettings, *, model_name: str, version: str, model_uri: str, rows: list[dict],
             expected: np.ndarray, limits: rollout.SmokeLimits, canary_percent: int,
             ready_timeout: float) -> rollout.RolloutResult:
    """Upload, deploy (all traffic, or `canary_percent` beside the serving version), smoke-test,
    then promote or roll back."""
    if not 0 < canary_percent < 100:
        raise DeploymentError(f"canary_percent must be between 1 and 99, got {canary_percent}")
    check_model_uri(model_uri, version)
    vertex = _Vertex(settings, model_name)
    vertex.check_location()
    endpoint = vertex.endpoint()
    old_id, previous = serving(endpoint) if endpoint is not None else ("", "")
    if previous == str(version):
        return rollout.RolloutResult(rollout.NOOP, str(version), f"version {version} is already serving", previous, 100,
                                     vertex.endpoint_resource, steps=["already serving: nothing to do"])
    model = vertex.upload(version=str(version), model_uri=model_uri)
    steps = [f"Vertex model version {model.versioned_resource_name} (artifact_uri {model_uri.rstrip('/')})"]
    created = endpoint is None
    if created:
        endpoint = vertex.create_endpoint()
        steps.append(f"created endpoint {vertex.endpoint_resource}")
    split = {"0": 100} if not old_id else {"0": canary_percent, old_id: 100 - canary_percent}
    steps.append(f"deploy v{version} at 100%" if not old_id else
                 f"canary: v{version} gets {canary_percent}% beside v{previous} ({old_id})")
    try:
        new_id = vertex.deploy(endpoint, model, version=str(version), traffic_split=split, timeout=ready_timeout)
    except DeploymentError as exc:
        if not old_id:
            if created:
                endpoint.delete(force=True)
            raise DeploymentError(f"version {version} could not be deployed: {exc}") from exc
        steps.append(f"not ready: {exc}; v{previous} keeps 100%")
        return rollout.RolloutResult(rollout.ROLLED_BACK, str(version), str(exc), previous, 0,
                                     vertex.endpoint_resource, steps=steps)
    steps.append(f"deployed model {new_id} ready")
    attempts = 1 if not old_id else max(1, int(np.ceil(100 / canary_percent)) * 10)
    try:
        smoke = rollout.smoke_test(canary_predict(endpoint, new_id, attempts), rows, expected, limits)
    except BaseException:  # interrupted: the new deployed model goes, the serving one stays
        vertex.undeploy(endpoint, new_id)
        raise
    steps.append(f"smoke test: {smoke.reason}")
    if not smoke.passed:
        vertex.undeploy(endpoint, new_id)
        if not old_id:
            if created:
                endpoint.delete(force=True)
            raise DeploymentError(f"version {version} failed its smoke test: {smoke.reason}")
        steps.append(f"rolled back: deployed model {new_id} undeployed, v{previous} serves 100%")
        return rollout.RolloutResult(rollout.ROLLED_BACK, str(version), f"smoke test failed: {smoke.reason}",
                                     previous, 0, vertex.endpoint_resource, smoke, steps)
    if old_id:
        vertex.set_traffic(endpoint, {new_id: 100, old_id: 0})
        vertex.undeploy(endpoint, old_id)
        steps.append(f"promoted: v{version} serves 100%; v{previous} ({old_id}) undeployed")
    vertex.move_champion(model, str(version))
    steps.append(f"Vertex aliases {CHAMPION} and mlflow-v{version} on {model.versioned_resource_name}")
    return rollout.RolloutResult(rollout.PROMOTED if old_id else rollout.CREATED, str(version),
                                 "canary passed its smoke test" if old_id else "first deployment", previous, 100,
                                 vertex.endpoint_resource, smoke, steps)


def serving_version(settings: VertexSettings, model_name: str) -> str:
    """The version that takes the traffic of the model's endpoint ("" for none)."""
    vertex = _Vertex(settings, model_name)
    endpoint = vertex.endpoint()
    return serving(endpoint)[1] if endpoint is not None else ""
