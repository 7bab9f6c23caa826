"""The drift monitor pipeline: detect drift -> when drifted (and not above the escalation
threshold), retrain on the current data: nested in this run, or as a new run of the training
pipeline submitted to the KFP cluster or Vertex AI project this run is in."""

from kfp import dsl

from loopline.components import (
    batch_predict,
    check_drift_escalation,
    detect_drift,
    trigger_training,
)
from loopline.core import images
from loopline.ops import cluster
from loopline.pipelines.training import DEFAULT_THRESHOLDS, build_training


def build_drift_monitor(settings: cluster.ClusterSettings):
    """The drift monitor, with cluster settings (kfp-kubernetes) applied to its tasks and to the
    training it runs or submits."""
    training = build_training(settings)
    # A drift-triggered run compiles the training pipeline as this one was compiled.
    compiled_with = {"image_registry": images.registry(), "kubernetes_settings": settings.to_dict()}

    def step(task, name: str):
        return cluster.configure(task, name, settings)

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
        escalation_threshold: float = 1.0,
        rerun_mode: str = "nested",
        cooldown_hours: float = 24.0,
        rerun_target: str = "kfp",
        kfp_host: str = "",
        vertex_project: str = "",
        vertex_location: str = "",
        training_pipeline_root: str = "",
        training_service_account: str = "",
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
        score_predictions: bool = True,
        prediction_key_column: str = "",
    ):
        """Detects drift and, when the data drifted, retrains on the current window.

        Args:
            reference_data_uri: Reference window (the data the serving model was trained on).
            current_data_uri: Current window, labelled, used for retraining when drifted.
            target: Label column.
            tracking_uri: MLflow tracking URI.
            model_name: Registered model name in MLflow.
            drift_share: Share of drifted features at which the data counts as drifted.
            escalation_threshold: Share of drifted features above which the monitor fails for a
                person to look at instead of retraining (1: never).
            rerun_mode: "nested" (training runs inside this run) or "submit" (a new run of the
                training pipeline, with cooldown and dedupe).
            cooldown_hours: With "submit": hours after a drift-triggered run started during
                which no other starts.
            rerun_target: With "submit": "kfp" or "vertex".
            kfp_host: With "submit" on KFP: the API endpoint; empty for this cluster.
            vertex_project: With "submit" on Vertex AI: the project; empty for this one.
            vertex_location: With "submit" on Vertex AI: the region; empty for this one.
            training_pipeline_root: With "submit": artifact root of the training run (gs:// on Vertex AI).
            training_service_account: With "submit": service account of the training run.
            thresholds: Gate rules of the retraining.
            feature_kinds: Optional kinds per column ("numeric" / "categorical").
            ignore_columns: Columns that are not features.
            n_trials: Optuna trials of the retraining.
            max_epochs: Maximum epochs per trial.
            timeout_seconds: Tuning wall-clock budget; 0 for none.
            seed: Seed of splits, sampler and training.
            deploy_target: "local" or "kserve".
            namespace: Kubernetes namespace for the InferenceService.
            storage_uri: Storage prefix (gs://, s3://) under which each model version gets its own URI <storage_uri>/<model_name>/v<version>; empty: the version's folder in the MLflow artifact store.
            local_home: Local state directory (target "local").
            vertex_model_registry: Optional Vertex AI Model Registry upload target of a nested retraining.
            score_predictions: Score the current window with the champion (batch_predict) and report the prediction
                drift against the reference window's predictions; needs a champion.
            prediction_key_column: Input column copied into each prediction row; empty for none.
        """
        with dsl.If(score_predictions == True, name="score-predictions"):  # noqa: E712 - KFP condition
            step(batch_predict(
                data_uri=current_data_uri,
                reference_data_uri=reference_data_uri,
                tracking_uri=tracking_uri,
                model_name=model_name,
                version="champion",
                key_column=prediction_key_column,
                local_home=local_home,
                skip_without_model=True,  # a monitor before the first champion still checks the data
            ).set_caching_options(False), "batch_predict")
        drift = step(detect_drift(
            reference_data_uri=reference_data_uri,
            current_data_uri=current_data_uri,
            target=target,
            feature_kinds=feature_kinds,
            ignore_columns=ignore_columns,
            drift_share=drift_share,
        ).set_caching_options(False), "detect_drift")
        with dsl.If(drift.outputs["Output"] == True, name="drifted"):  # noqa: E712 - KFP condition
            escalation = step(check_drift_escalation(
                metrics=drift.outputs["metrics"],
                drift_share=drift_share,
                escalation_threshold=escalation_threshold,
                rerun_mode=rerun_mode,
            ).set_caching_options(False), "check_drift_escalation")
            # what the retraining gets, nested or submitted: the current window and these
            retraining = dict(
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
            )
            with dsl.If(escalation.output == True, name="retrain"):  # noqa: E712
                with dsl.If(rerun_mode == "nested", name="nested-training"):
                    training(**retraining, local_home=local_home, vertex_model_registry=vertex_model_registry)
                with dsl.If(rerun_mode == "submit", name="submit-training"):
                    step(trigger_training(
                        **retraining,
                        rerun_target=rerun_target,
                        kfp_host=kfp_host,
                        vertex_project=vertex_project,
                        vertex_location=vertex_location,
                        pipeline_root=training_pipeline_root,
                        service_account=training_service_account,
                        cooldown_hours=cooldown_hours,
                        monitor_run=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                        **compiled_with,
                    ).set_caching_options(False), "trigger_training")

    return drift_monitor


# The pipeline of compiled/drift_monitor.yaml: default settings (retries on the service steps, no Kubernetes settings).
drift_monitor = build_drift_monitor(cluster.ClusterSettings())
