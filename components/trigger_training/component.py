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
    kept in tags of the registered model in MLflow.

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
        deploy_target: Deployment target of the training run, "kserve" or "local".
        namespace: Kubernetes namespace for the InferenceService.
        storage_uri: Storage prefix (gs://, s3://) under which each model version gets its own URI <storage_uri>/<model_name>/v<version>; empty: the version's folder in the MLflow artifact store.
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
        arguments={
            "data_uri": data_uri, "target": target, "tracking_uri": tracking_uri, "model_name": model_name,
            "thresholds": thresholds, "feature_kinds": feature_kinds, "ignore_columns": ignore_columns,
            "n_trials": n_trials, "max_epochs": max_epochs, "timeout_seconds": timeout_seconds, "seed": seed,
            "deploy_target": deploy_target, "namespace": namespace, "storage_uri": storage_uri,
        },
        settings=settings, monitor_run=monitor_run, summary=summary, reason_path=reason, run_path=run,
    )
