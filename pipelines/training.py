"""The training pipeline: load -> validate -> tune + train -> evaluate & gate -> register -> deploy."""

from kfp import dsl

from loopline.components import (
    deploy_model,
    evaluate_model,
    load_data,
    register_model,
    train_model,
    tune_model,
    validate_data,
)
from loopline.core import images
from loopline.ops import cluster

PIPELINE_NAME = "loopline-training"
# The gate a training run applies unless told otherwise: an absolute floor, the challenger no
# worse than the champion on ROC AUC and log loss, and a single-row latency SLA.
DEFAULT_THRESHOLDS = {
    "absolute": {"roc_auc": 0.75},
    "relative": {"primary": "roc_auc", "min_improvement": 0.0, "max_regression": {"log_loss": 0.05}},
    "latency": {"max_single_row_p95_ms": 250},
}
# The images this pipeline's components run on (the registry prefix is a compile-time setting);
# registration records them on the model version.
IMAGE_REFS = {role: images.image(role) for role in images.ROLES}



def _with_resources(task, cpu_request, cpu_limit, memory_request, memory_limit, accelerator_type, accelerator_count):
    """Resources from pipeline parameters. kfp 2.17 does not wire a parameter that only a
    resource setting uses into a ParallelFor group, so the task registers them as its inputs."""
    task.set_cpu_request(cpu_request).set_cpu_limit(cpu_limit)
    task.set_memory_request(memory_request).set_memory_limit(memory_limit)
    task.set_accelerator_type(accelerator_type).set_accelerator_limit(accelerator_count)
    task.register_pipeline_channels(
        [cpu_request, cpu_limit, memory_request, memory_limit, accelerator_type, accelerator_count]
    )
    return task


def build_training(settings: cluster.ClusterSettings):
    """The training pipeline, with cluster settings (kfp-kubernetes) applied to its tasks."""

    def step(task, name: str):
        return cluster.configure(task, name, settings)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Loopline training: validate data, tune and train, gate on the holdout, register in "
        "MLflow and deploy with KServe.",
    )
    def training(
        data_uri: str,
        target: str,
        tracking_uri: str,
        model_name: str = "loopline-model",
        thresholds: dict = DEFAULT_THRESHOLDS,
        feature_kinds: dict = {},
        ignore_columns: list = [],
        n_trials: int = 4,
        max_epochs: int = 15,
        timeout_seconds: float = 0.0,
        seed: int = 42,
        deploy_target: str = "local",
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
    ):
        """Trains, gates, registers and deploys a tabular classifier.

        Args:
            data_uri: CSV or Parquet file with features and the target.
            target: Label column.
            tracking_uri: MLflow tracking URI.
            model_name: Registered model name in MLflow.
            thresholds: Gate rules (absolute, relative to the champion, latency, fairness); must not be empty. See the evaluate_model component.
            feature_kinds: Optional kinds per column ("numeric" / "categorical").
            ignore_columns: Columns that are not features.
            n_trials: Optuna trials.
            max_epochs: Maximum epochs per trial.
            timeout_seconds: Tuning wall-clock budget; 0 for none.
            seed: Seed of splits, sampler and training.
            deploy_target: "local" (KServe model server on loopback), "kserve" (InferenceService) or "vertex" (Vertex AI Endpoint).
            namespace: Kubernetes namespace for the InferenceService.
            storage_uri: Storage prefix (gs://, s3://) under which each model version gets its own URI <storage_uri>/<model_name>/v<version>; empty: the version's folder in the MLflow artifact store.
            local_home: Local state directory (target "local").
            vertex_model_registry: Optional Vertex AI Model Registry upload target; empty for none.
            objective: Tuning objective on the validation split: "roc_auc", "accuracy" or "log_loss".
            pruner: Trial pruner: "median", "hyperband" or "none".
            tuning_storage_url: Optuna RDB storage (sqlite:///path, postgresql://user@host/db); empty for in-memory.
            study_name: Optuna study name; empty derives it from the run, so a rerun of the run resumes.
            tuning_workers: Worker numbers, e.g. [1, 2, 3, 4], for parallel tune_model tasks sharing the study
                (needs tuning_storage_url); empty tunes in train_model alone.
            train_cpu_request: CPU request of the tuning and training tasks.
            train_cpu_limit: CPU limit of the tuning and training tasks (TensorFlow sizes its threads to it).
            train_memory_request: Memory request of the tuning and training tasks.
            train_memory_limit: Memory limit of the tuning and training tasks.
            train_accelerator_type: Accelerator resource of the tuning and training tasks, e.g. nvidia.com/gpu.
            train_accelerator_count: Accelerators per tuning or training task; 0 for none.
            deploy_mode: KServe deployment mode: "Knative" (or "Serverless") or "Standard" (or "RawDeployment", KServe 0.20 or later for canaries).
            deploy_canary_percent: Share of traffic a new version gets while it is smoke-tested.
            deploy_service_account: Service account of the predictor pods (storage credentials).
            deploy_runtime: The KServe ServingRuntime or ClusterServingRuntime serving the model.
            deploy_runtime_version: Image tag of the runtime's container; empty for the runtime's own.
            deploy_min_replicas: Minimum predictor replicas (0 allows scale to zero in Knative mode).
            deploy_max_replicas: Maximum predictor replicas.
            deploy_cpu: CPU request and limit of each predictor replica.
            deploy_memory: Memory request and limit of each predictor replica.
            deploy_machine_type: Vertex AI (deploy_target "vertex"): machine type of each replica; empty for automatic resources.
            deploy_network: Vertex AI: VPC network of a private endpoint; empty for a public one.
            deploy_vertex_project: Vertex AI project of the Endpoint and Model Registry (deploy_target "vertex").
            deploy_vertex_location: Vertex AI region of the Endpoint and Model Registry (deploy_target "vertex").
            deploy_vertex_endpoint: Vertex AI endpoint id; empty for the model's own, created on first use.
        """
        load = step(load_data(
            data_uri=data_uri, target=target, feature_kinds=feature_kinds, ignore_columns=ignore_columns, seed=seed
        ).set_caching_options(False), "load_data")
        validate = step(validate_data(
            train=load.outputs["train"], validation=load.outputs["validation"], holdout=load.outputs["holdout"]
        ), "validate_data")
        tuning = dict(
            train=load.outputs["train"],
            validation=load.outputs["validation"],
            n_trials=n_trials,
            max_epochs=max_epochs,
            timeout_seconds=timeout_seconds,
            seed=seed,
            objective=objective,
            pruner=pruner,
            storage_url=tuning_storage_url,
            study_name=study_name,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            tracking_uri=tracking_uri,
        )
        resources = (train_cpu_request, train_cpu_limit, train_memory_request, train_memory_limit,
                     train_accelerator_type, train_accelerator_count)
        with dsl.ParallelFor(tuning_workers, name="tuning-workers") as worker:
            tune = step(_with_resources(tune_model(worker=worker, **tuning).after(validate), *resources), "tune_model")
            tune.set_caching_options(False)
        train = step(_with_resources(train_model(**tuning).after(validate, tune), *resources), "train_model")
        evaluate = step(evaluate_model(
            model=train.outputs["model"],
            holdout=load.outputs["holdout"],
            train=load.outputs["train"],
            thresholds=thresholds,
            tracking_uri=tracking_uri,
            model_name=model_name,
        ).set_caching_options(False), "evaluate_model")  # the champion it compares with changes between runs
        with dsl.If(evaluate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 - KFP condition
            # Transient failures of the registration pod are retried by the orchestrator (cluster
            # settings) on top of the client's own retries; registration is idempotent per run.
            register = step(
                register_model(
                    model=train.outputs["model"],
                    blessing=evaluate.outputs["blessing"],
                    train=load.outputs["train"],
                    holdout=load.outputs["holdout"],
                    tracking_uri=tracking_uri,
                    model_name=model_name,
                    pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                    pipeline_name=PIPELINE_NAME,
                    pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                    image_refs=IMAGE_REFS,
                    vertex_model_registry=vertex_model_registry,
                ).set_caching_options(False),
                "register_model",
            )
            step(deploy_model(
                model_name=model_name,
                model_version=register.output,
                tracking_uri=tracking_uri,
                holdout=load.outputs["holdout"],
                target=deploy_target,
                namespace=namespace,
                storage_uri=storage_uri,
                pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                local_home=local_home,
                deployment_mode=deploy_mode,
                canary_percent=deploy_canary_percent,
                service_account=deploy_service_account,
                runtime=deploy_runtime,
                runtime_version=deploy_runtime_version,
                min_replicas=deploy_min_replicas,
                max_replicas=deploy_max_replicas,
                cpu=deploy_cpu,
                memory=deploy_memory,
                machine_type=deploy_machine_type,
                network=deploy_network,
                vertex_project=deploy_vertex_project,
                vertex_location=deploy_vertex_location,
                vertex_endpoint=deploy_vertex_endpoint,
            ).set_caching_options(False), "deploy_model")

    return training


# The pipeline of compiled/training.yaml: default settings (retries on the service steps, no Kubernetes settings).
training = build_training(cluster.ClusterSettings())
