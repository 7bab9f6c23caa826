"""KFP component: submit a new run of the compiled training pipeline, with cooldown and dedupe.

The work is done by `loopline.executors.trigger_training` (src/loopline/executors/trigger_training.py).
"""

from kfp import dsl
from kfp.dsl import Markdown, Output, OutputPath

from loopline.core.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def trigger_training(
    data_uri: str,
    target: str,
    tracking_uri: str,
    thresholds: dict,
    summary: Output[Markdown],
    reason: OutputPath(str),
    run: OutputPath(str),
    model_name: str = "loopline-model",
    feature_kinds: dict = {},
    ignore_columns: list = [],
    n_trials: int = 4,
    max_epochs: int = 15,
    timeout_seconds: float = 0.0,
    seed: int = 42,
    deploy_target: str = "kserve",
    namespace: str = "default",
    storage_uri: str = "",
    local_home: str = "",
    vertex_model_registry: dict = {},
    objective: str = "roc_auc",
    pruner: str = "median",
    tuning_storage_url: str = "",
    study_name: str = "",
    tuning_workers: list = [],
    train_cpu_request: str = "1",
    train_cpu_limit: str = "2",
    train_memory_request: str = "2G",
    train_memory_limit: str = "8G",
    train_accelerator_type: str = "nvidia.com/gpu",
    train_accelerator_count: int = 0,
    deploy_mode: str = "Serverless",
    deploy_canary_percent: int = 10,
    deploy_service_account: str = "",
    deploy_runtime: str = "loopline-serving",
    deploy_runtime_version: str = "",
    deploy_min_replicas: int = 1,
    deploy_max_replicas: int = 1,
    deploy_cpu: str = "1",
    deploy_memory: str = "2Gi",
    deploy_machine_type: str = "n1-standard-2",
    deploy_network: str = "",
    deploy_vertex_project: str = "",
    deploy_vertex_location: str = "",
    deploy_vertex_endpoint: str = "",
    rerun_target: str = "kfp",
    kfp_host: str = "",
    vertex_project: str = "",
    vertex_location: str = "",
    pipeline_root: str = "",
    service_account: str = "",
    cooldown_hours: float = 24.0,
    monitor_run: str = "",
    image_registry: str = "",
    kubernetes_settings: dict = {},
) -> bool:
    """Submits a new run of the training pipeline to the KFP cluster or Vertex AI project, once.

    No run starts while the last drift-triggered run is still active, or within the cooldown
    after it started; a retried step of the same monitor run never submits twice. The state is
    kept in tags of the registered model in MLflow. Every parameter of the training pipeline
    (data_uri to deploy_vertex_endpoint, as compiled/training.yaml declares them) is handed to the run
    unchanged.

    Args:
        data_uri: Data to train on (the monitor's current window).
        target: Label column.
        tracking_uri: MLflow tracking URI (holds the retraining state too).
        thresholds: Gate rules on holdout metrics of the training run; must not be empty.
        model_name: Registered model name in MLflow.
        feature_kinds: Optional kinds per column ("numeric" / "categorical").
        ignore_columns: Columns that are not features.
        n_trials: Optuna trials.
        max_epochs: Maximum epochs per trial.
        timeout_seconds: Tuning wall-clock budget; 0 for none.
        seed: Seed of splits, sampler and training.
        deploy_target: Deployment target of the training run, "kserve", "vertex" or "local".
        namespace: Kubernetes namespace for the InferenceService.
        storage_uri: Storage prefix (gs://, s3://) under which each model version gets its own URI <storage_uri>/<model_name>/v<version>; empty: the version's folder in the MLflow artifact store.
        local_home: Local state directory of the training run (target "local").
        vertex_model_registry: Optional Vertex AI Model Registry upload target; empty for none.
        objective: Tuning objective on the validation split: "roc_auc", "accuracy" or "log_loss".
        pruner: Trial pruner: "median", "hyperband" or "none".
        tuning_storage_url: Optuna RDB storage of the training run; empty for in-memory.
        study_name: Optuna study name; empty derives it from the run.
        tuning_workers: Worker numbers for parallel tune_model tasks sharing the study; empty for none.
        train_cpu_request: CPU request of the tuning and training tasks.
        train_cpu_limit: CPU limit of the tuning and training tasks.
        train_memory_request: Memory request of the tuning and training tasks.
        train_memory_limit: Memory limit of the tuning and training tasks.
        train_accelerator_type: Accelerator resource of the tuning and training tasks.
        train_accelerator_count: Accelerators per tuning or training task; 0 for none.
        deploy_mode: KServe deployment mode of the training run's deployment.
        deploy_canary_percent: Share of traffic a new version gets while it is smoke-tested.
        deploy_service_account: Service account of the predictor pods.
        deploy_runtime: The KServe ServingRuntime or ClusterServingRuntime serving the model.
        deploy_runtime_version: Image tag of the runtime's container; empty for the runtime's own.
        deploy_min_replicas: Minimum predictor replicas.
        deploy_max_replicas: Maximum predictor replicas.
        deploy_cpu: CPU request and limit of each predictor replica.
        deploy_memory: Memory request and limit of each predictor replica.
        deploy_machine_type: Vertex AI (deploy_target "vertex"): machine type of each replica; empty for automatic resources.
        deploy_network: Vertex AI: VPC network of a private endpoint; empty for a public one.
        deploy_vertex_project: Vertex AI project of the Endpoint and Model Registry (deploy_target "vertex").
        deploy_vertex_location: Vertex AI region of the Endpoint and Model Registry (deploy_target "vertex").
        deploy_vertex_endpoint: Vertex AI endpoint id; empty for the model's own, created on first use.
        rerun_target: Where the run goes, "kfp" or "vertex".
        kfp_host: KFP API endpoint; empty for the cluster the step runs in.
        vertex_project: Vertex AI project; empty for the one the step runs in.
        vertex_location: Vertex AI region; empty for the one the step runs in.
        pipeline_root: Artifact root of the training run (required on Vertex AI, gs://).
        service_account: Service account of the training run.
        cooldown_hours: Hours after a drift-triggered run started during which no other starts.
        monitor_run: Identifier of the monitor run (dedupes retries of this step).
        image_registry: Image registry the pipelines were compiled with; empty for the default.
        kubernetes_settings: Cluster settings the pipelines were compiled with.

    Returns:
        summary: Markdown: the decision, its reason and the run.
        reason: Why a run was or was not started.
        run: The training run this monitor run started; empty when none.
        Output: True when a training run was started by this monitor run.
    """
    values = dict(locals())  # every input; the training pipeline's own are picked by their names

    from loopline.core.logs import setup_logging
    from loopline.executors import trigger_training as executor
    from loopline.ops.reruns import RetrainSettings

    setup_logging()
    settings = RetrainSettings(
        rerun_target=rerun_target, kfp_host=kfp_host, vertex_project=vertex_project, vertex_location=vertex_location,
        pipeline_root=pipeline_root, service_account=service_account, cooldown_hours=cooldown_hours,
        image_registry=image_registry, kubernetes_settings=kubernetes_settings,
    )
    return executor.run(
        arguments=values, settings=settings, monitor_run=monitor_run, summary=summary, reason_path=reason, run_path=run,
    )
