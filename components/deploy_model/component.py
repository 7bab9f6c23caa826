"""KFP component: roll a registered model out with KServe (canary, smoke test, promote or roll back).

The work is done by `loopline.executors.deploy_model` (src/loopline/executors/deploy_model.py).
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Output

from loopline.core.images import DEPLOYER_IMAGE


@dsl.component(base_image=DEPLOYER_IMAGE, install_kfp_package=False)
def deploy_model(
    model_name: str,
    model_version: str,
    tracking_uri: str,
    holdout: Input[Dataset],
    manifest: Output[Artifact],
    report: Output[Markdown],
    target: str = "local",
    namespace: str = "default",
    storage_uri: str = "",
    pipeline_run: str = "",
    canary_percent: int = 10,
    deployment_mode: str = "Serverless",
    service_account: str = "",
    runtime: str = "loopline-serving",
    runtime_version: str = "",
    min_replicas: int = 1,
    max_replicas: int = 1,
    cpu: str = "1",
    memory: str = "2Gi",
    machine_type: str = "n1-standard-2",
    network: str = "",
    vertex_project: str = "",
    vertex_location: str = "",
    vertex_endpoint: str = "",
    vertex_api_endpoint: str = "",
    smoke_rows: int = 16,
    tolerance: float = 1e-5,
    max_p95_ms: float = 1000.0,
    ready_timeout_seconds: float = 600.0,
    local_home: str = "",
) -> str:
    """Rolls a registered model version out and moves `champion` only when it serves.

    On Vertex AI (target "vertex") the version is uploaded to Vertex Model Registry (one Vertex
    model, Loopline's serving image, its own gs:// URI as artifact_uri), deployed to the model's
    Endpoint with canary_percent of the traffic, smoke-tested through the endpoint, then promoted
    (the old deployed model undeployed, Vertex aliases champion and mlflow-v<N> moved) or undeployed.

    A first deployment takes all traffic. A new version becomes a canary (in a cluster: KServe's
    canaryTrafficPercent in Knative mode, an entry of spec.canary in Standard mode; locally: a
    second KServe model server beside the serving one), waits for Ready, and is smoke-tested:
    holdout rows sent one request each must match the model's in-process predictions, without
    errors and within the latency limit. Then it is promoted, or rolled back with the previous
    spec restored. Deploying the version already serving is a no-op. Standard mode on a KServe
    older than 0.20 (no spec.canary) refuses a canary.

    Args:
        model_name: Registered model name (also the InferenceService name and the V1 model name).
        model_version: Registered model version to deploy.
        tracking_uri: MLflow tracking URI.
        holdout: Holdout split; its first rows are the smoke test.
        target: "local" (KServe model server on loopback), "kserve" (InferenceService) or "vertex" (Vertex AI Endpoint).
        namespace: Kubernetes namespace of the InferenceService.
        storage_uri: Storage prefix (gs://, s3://); each version is copied once to its own URI <storage_uri>/<model_name>/v<version>. Empty: the version's own folder in the MLflow artifact store.
        pipeline_run: Pipeline run identifier, recorded as a label.
        canary_percent: Share of traffic the new version gets while it is tested.
        deployment_mode: KServe deployment mode: "Knative" (or "Serverless") or "Standard" (or "RawDeployment").
        service_account: Service account of the predictor pods (storage credentials), or of the Vertex deployed model.
        runtime: The ServingRuntime or ClusterServingRuntime that serves the model (Loopline's serving image).
        runtime_version: Image tag of the runtime's container; empty for the runtime's own.
        min_replicas: Minimum predictor replicas (0 allows scale to zero in Knative mode).
        max_replicas: Maximum predictor replicas.
        cpu: CPU request and limit of each predictor replica.
        memory: Memory request and limit of each predictor replica.
        machine_type: Vertex AI: machine type of each replica; empty for automatic resources.
        network: Vertex AI: VPC network of a private endpoint (projects/<number>/global/networks/<name>); empty for a public one.
        vertex_project: Vertex AI project of the Endpoint and Model Registry (target "vertex").
        vertex_location: Vertex AI region of the Endpoint and Model Registry (target "vertex").
        vertex_endpoint: Vertex AI endpoint id; empty for the model's own, created on first use.
        vertex_api_endpoint: Vertex AI API endpoint; empty for the regional one.
        smoke_rows: Holdout rows sent to the new version.
        tolerance: Largest allowed difference between served and in-process probabilities.
        max_p95_ms: Largest allowed p95 latency of one-row requests, in milliseconds.
        ready_timeout_seconds: How long to wait for the new version to be Ready.
        local_home: Local state directory for target "local" (default $LOOPLINE_HOME or ./.loopline).

    Returns:
        manifest: The InferenceService as YAML.
        report: Markdown account of the rollout: steps, smoke test, decision and reason.
        Output: The rollout action: created, promoted, rolled_back or noop.
    """
    from loopline.core.logs import setup_logging
    from loopline.executors import deploy_model as executor
    from loopline.serving.targets import DeploySettings

    setup_logging()
    settings = DeploySettings(
        target=target, namespace=namespace, storage_uri=storage_uri, canary_percent=canary_percent,
        deployment_mode=deployment_mode, service_account=service_account, runtime=runtime,
        runtime_version=runtime_version, min_replicas=min_replicas, max_replicas=max_replicas, cpu=cpu,
        memory=memory, machine_type=machine_type, network=network, vertex_project=vertex_project,
        vertex_location=vertex_location, vertex_endpoint=vertex_endpoint, vertex_api_endpoint=vertex_api_endpoint,
        smoke_rows=smoke_rows, tolerance=tolerance,
        max_p95_ms=max_p95_ms, ready_timeout_seconds=ready_timeout_seconds, local_home=local_home,
    )
    return executor.run(model_name=model_name, model_version=model_version, tracking_uri=tracking_uri,
                        holdout=holdout, manifest=manifest, report=report, pipeline_run=pipeline_run,
                        settings=settings)
