"""The training pipeline: load -> validate -> tune + train -> evaluate & gate -> register -> deploy."""

from kfp import dsl

from loopline import cluster, images
from loopline.components import (
    deploy_model,
    evaluate_model,
    load_data,
    register_model,
    train_model,
    validate_data,
)

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



def build_training(settings: cluster.ClusterSettings | None = None):
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
            deploy_target: "local" (KServe model server on loopback) or "kserve" (InferenceService).
            namespace: Kubernetes namespace for the InferenceService.
            storage_uri: Model location for KServe in a cluster.
            local_home: Local state directory (target "local").
            vertex_model_registry: Optional Vertex AI Model Registry upload target; empty for none.
        """
        load = step(load_data(
            data_uri=data_uri, target=target, feature_kinds=feature_kinds, ignore_columns=ignore_columns, seed=seed
        ).set_caching_options(False), "load_data")
        validate = step(validate_data(
            train=load.outputs["train"], validation=load.outputs["validation"], holdout=load.outputs["holdout"]
        ), "validate_data")
        train = step(train_model(
            train=load.outputs["train"],
            validation=load.outputs["validation"],
            n_trials=n_trials,
            max_epochs=max_epochs,
            timeout_seconds=timeout_seconds,
            seed=seed,
        ).after(validate), "train_model")
        evaluate = step(evaluate_model(
            model=train.outputs["model"],
            holdout=load.outputs["holdout"],
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
            ).set_caching_options(False), "deploy_model")

    return training


# The pipeline of compiled/training.yaml: default settings (retries on the service steps, no Kubernetes settings).
training = build_training()
