"""The drift monitor pipeline: detect drift -> when drifted, the training pipeline on the current data."""

from kfp import dsl

from loopline.components import detect_drift
from loopline.pipelines.training import DEFAULT_THRESHOLDS, training


@dsl.pipeline(
    name="loopline-drift-monitor",
    description="Loopline drift monitor: compare the current window with the reference and retrain "
    "on the current data when it drifted.",
)
def drift_monitor(
    reference_data_uri: str,
    current_data_uri: str,
    target: str,
    tracking_uri: str,
    model_name: str = "loopline-model",
    drift_share: float = 0.5,
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
    """Detects drift and, when the data drifted, retrains on the current window.

    Args:
        reference_data_uri: Reference window (the data the serving model was trained on).
        current_data_uri: Current window, labelled, used for retraining when drifted.
        target: Label column.
        tracking_uri: MLflow tracking URI.
        model_name: Registered model name in MLflow.
        drift_share: Share of drifted features at which the data counts as drifted.
        thresholds: Gate rules of the retraining.
        feature_kinds: Optional kinds per column ("numeric" / "categorical").
        ignore_columns: Columns that are not features.
        n_trials: Optuna trials of the retraining.
        max_epochs: Maximum epochs per trial.
        timeout_seconds: Tuning wall-clock budget; 0 for none.
        seed: Seed of splits, sampler and training.
        deploy_target: "local" or "kserve".
        namespace: Kubernetes namespace for the InferenceService.
        storage_uri: Model location for KServe in a cluster.
        local_home: Local state directory (target "local").
        vertex_model_registry: Optional Vertex AI Model Registry upload target of the retraining.
    """
    drift = detect_drift(
        reference_data_uri=reference_data_uri,
        current_data_uri=current_data_uri,
        target=target,
        feature_kinds=feature_kinds,
        ignore_columns=ignore_columns,
        drift_share=drift_share,
    ).set_caching_options(False)
    with dsl.If(drift.outputs["Output"] == True, name="drifted"):  # noqa: E712 - KFP condition
        training(
            data_uri=current_data_uri,
            target=target,
            tracking_uri=tracking_uri,
            model_name=model_name,
            thresholds=thresholds,
            feature_kinds=feature_kinds,
            ignore_columns=ignore_columns,
            n_trials=n_trials,
            max_epochs=max_epochs,
            timeout_seconds=timeout_seconds,
            seed=seed,
            deploy_target=deploy_target,
            namespace=namespace,
            storage_uri=storage_uri,
            local_home=local_home,
            vertex_model_registry=vertex_model_registry,
        )
