"""The KServe InferenceService of a registered model version, built from the kserve SDK's typed
objects: Loopline's model format and runtime (`loopline-serving`, the serving image), the
version's own storageUri, replicas, resources, service account and deployment mode.

KServe's TensorFlow Serving runtime is refused: its images are older than the TensorFlow that
writes Loopline's SavedModels (ops such as DisableCopyOnRead are unregistered there) and its
JSON decoder rejects `null`, which Loopline sends for missing values.
"""

from __future__ import annotations

from typing import Any

from loopline.core.errors import DeploymentError
from loopline.serving.kserve_modes import canonical_mode

KSERVE_GROUP = "serving.kserve.io"
KSERVE_VERSION = "v1beta1"
KSERVE_API_VERSION = f"{KSERVE_GROUP}/{KSERVE_VERSION}"
INFERENCE_SERVICE_KIND = "InferenceService"
LOOPLINE_MODEL_FORMAT = "loopline"  # the model format Loopline's serving runtime declares
LOOPLINE_MODEL_FORMAT_VERSION = "1"  # the SavedModel contract's layout (model_contract.py)
LOOPLINE_RUNTIME = "loopline-serving"  # the ClusterServingRuntime's name
TF_SERVING_RUNTIMES = ("tensorflow", "kserve-tensorflow-serving", "tfserving")
TRAFFIC_LOG_SCHEMES = ("s3://", "gs://", "abfs://")  # what KServe's agent writes blobs to

def check_runtime(runtime: str) -> None:
    """The runtime names a ServingRuntime that can serve Loopline's SavedModels (not TF Serving)."""
    if runtime in TF_SERVING_RUNTIMES:
        raise DeploymentError(
            f"runtime '{runtime}' (TensorFlow Serving) is refused: KServe's TF Serving images cannot load "
            "SavedModels of TensorFlow 2.21 and reject null for missing values; use the runtime "
            f"'{LOOPLINE_RUNTIME}' (Loopline's serving image)"
        )
    if not runtime:
        raise DeploymentError(f"runtime is empty: name the ServingRuntime, e.g. '{LOOPLINE_RUNTIME}'")


def build_inference_service(
    *,
    name: str,
    namespace: str,
    storage_uri: str,
    model_name: str,
    model_version: str,
    pipeline_run: str = "",
    runtime: str = LOOPLINE_RUNTIME,
    runtime_version: str = "",
    service_account: str = "",
    min_replicas: int = 1,
    max_replicas: int = 1,
    cpu: str = "1",
    memory: str = "2Gi",
    deployment_mode: str = "Serverless",
    canary_traffic_percent: int | None = None,
    traffic_log: dict | None = None,
):
    """A `serving.kserve.io/v1beta1` InferenceService serving a Loopline SavedModel.

    `traffic_log` (traffic_log_spec's keys) adds KServe's `spec.predictor.logger`: every request
    and its response written under `uri`, the version's traffic under `v<version>`."""
    from kserve import (
        V1beta1InferenceService,
        V1beta1InferenceServiceSpec,
        V1beta1ModelFormat,
        V1beta1ModelSpec,
        V1beta1PredictorSpec,
    )
    from kubernetes.client import V1ObjectMeta, V1ResourceRequirements

    if not storage_uri:
        raise DeploymentError("storage_uri is empty: the InferenceService needs the model's location")
    canonical_mode(deployment_mode)  # either name of a mode; anything else is refused here
    check_runtime(runtime)
    if min_replicas < 0 or max_replicas < max(1, min_replicas):
        raise DeploymentError(f"replicas: need 0 <= min_replicas <= max_replicas, got {min_replicas}..{max_replicas}")
    labels = {
        "app.kubernetes.io/part-of": "loopline",
        "loopline.dev/model-name": _label_value(model_name),
        "loopline.dev/model-version": _label_value(model_version),
    }
    if pipeline_run:
        labels["loopline.dev/pipeline-run"] = _label_value(pipeline_run)
    predictor = V1beta1PredictorSpec(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        service_account_name=service_account or None,
        canary_traffic_percent=canary_traffic_percent,
        logger=_logger_spec(traffic_log, model_version) if traffic_log and traffic_log.get("uri") else None,
        model=V1beta1ModelSpec(
            model_format=V1beta1ModelFormat(name=LOOPLINE_MODEL_FORMAT, version=LOOPLINE_MODEL_FORMAT_VERSION),
            runtime=runtime,
            storage_uri=storage_uri,
            runtime_version=runtime_version or None,
            resources=V1ResourceRequirements(
                requests={"cpu": cpu, "memory": memory}, limits={"cpu": cpu, "memory": memory}
            ),
        ),
    )
    return V1beta1InferenceService(
        api_version=KSERVE_API_VERSION,
        kind=INFERENCE_SERVICE_KIND,
        metadata=V1ObjectMeta(
            name=name,
            namespace=namespace,
            labels=labels,
            annotations={"serving.kserve.io/deploymentMode": deployment_mode},
        ),
        spec=V1beta1InferenceServiceSpec(predictor=predictor),
    )


def _logger_spec(traffic_log: dict, model_version: str):
    """KServe's logger: mode all, blob storage under the prefix (the agent writes s3://, gs://,
    abfs://), the version's objects under storage.path `v<version>`, batched as configured."""
    from kserve import V1beta1LoggerSpec
    from kserve.models.v1beta1_logger_storage_spec import V1beta1LoggerStorageSpec

    return V1beta1LoggerSpec(
        mode="all", url=traffic_log["uri"].rstrip("/"),
        storage=V1beta1LoggerStorageSpec(path=f"v{model_version}", parameters={"format": traffic_log.get("format", "json")}),
        batch_size=int(traffic_log.get("batch_size", 1)), batch_interval=traffic_log.get("batch_interval") or None,
    )


def isvc_name(model_name: str) -> str:
    """The InferenceService name of a model: a DNS-1035 label."""
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in model_name.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"m-{cleaned}"
    return cleaned[:45].rstrip("-")


def _label_value(value: str) -> str:
    """Kubernetes label values: at most 63 characters of [A-Za-z0-9_.-], alphanumeric at both ends."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in str(value))[:63]
    return cleaned.strip("-_.") or "none"


def to_manifest(isvc) -> dict[str, Any]:
    """The plain dict a `kubectl apply` takes."""
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(isvc)


def manifest_yaml(isvc) -> str:
    import yaml

    return yaml.safe_dump(to_manifest(isvc), sort_keys=False)
