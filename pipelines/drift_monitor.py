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
from loopline.pipelines import parameters
from loopline.pipelines.training import build_training


def _monitor_parameters(
    reference_data_uri: str,
    current_data_uri: str,
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
    score_predictions: bool = True,
    prediction_key_column: str = "",
):
    """The monitor's own parameters; beside them it takes every parameter of the training pipeline.

    Args:
        reference_data_uri: Reference window (the data the serving model was trained on).
        current_data_uri: Current window, labelled: the data of the retraining when it drifted (its data_uri).
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
        score_predictions: Score the current window with the champion (batch_predict) and report the prediction
            drift against the reference window's predictions; needs a champion.
        prediction_key_column: Input column copied into each prediction row; empty for none.
    """


# The retraining's data is the monitor's current window; every other training parameter is the monitor's too.
RETRAINING_DATA = "data_uri"


def build_drift_monitor(settings: cluster.ClusterSettings):
    """The drift monitor, with cluster settings (kfp-kubernetes) applied to its tasks and to the
    training it runs or submits."""
    training = build_training(settings)
    # A drift-triggered run compiles the training pipeline as this one was compiled.
    compiled_with = {"image_registry": images.registry(), "kubernetes_settings": settings.to_dict()}
    passed_on = [p.name for p in parameters.parameters(training.pipeline_func, without=[RETRAINING_DATA])]

    def step(task, name: str):
        return cluster.configure(task, name, settings)

    def drift_monitor(**p):
        with dsl.If(p["score_predictions"] == True, name="score-predictions"):  # noqa: E712 - KFP condition
            step(batch_predict(
                data_uri=p["current_data_uri"],
                reference_data_uri=p["reference_data_uri"],
                tracking_uri=p["tracking_uri"],
                model_name=p["model_name"],
                version="champion",
                key_column=p["prediction_key_column"],
                local_home=p["local_home"],
                skip_without_model=True,  # a monitor before the first champion still checks the data
            ).set_caching_options(False), "batch_predict")
        drift = step(detect_drift(
            reference_data_uri=p["reference_data_uri"],
            current_data_uri=p["current_data_uri"],
            target=p["target"],
            feature_kinds=p["feature_kinds"],
            ignore_columns=p["ignore_columns"],
            drift_share=p["drift_share"],
        ).set_caching_options(False), "detect_drift")
        with dsl.If(drift.outputs["Output"] == True, name="drifted"):  # noqa: E712 - KFP condition
            escalation = step(check_drift_escalation(
                metrics=drift.outputs["metrics"],
                drift_share=p["drift_share"],
                escalation_threshold=p["escalation_threshold"],
                rerun_mode=p["rerun_mode"],
            ).set_caching_options(False), "check_drift_escalation")
            # what the retraining gets, nested or submitted: the current window and every training parameter
            retraining = {RETRAINING_DATA: p["current_data_uri"], **{name: p[name] for name in passed_on}}
            with dsl.If(escalation.output == True, name="retrain"):  # noqa: E712
                with dsl.If(p["rerun_mode"] == "nested", name="nested-training"):
                    training(**retraining)
                with dsl.If(p["rerun_mode"] == "submit", name="submit-training"):
                    step(trigger_training(
                        **retraining,
                        rerun_target=p["rerun_target"],
                        kfp_host=p["kfp_host"],
                        vertex_project=p["vertex_project"],
                        vertex_location=p["vertex_location"],
                        pipeline_root=p["training_pipeline_root"],
                        service_account=p["training_service_account"],
                        cooldown_hours=p["cooldown_hours"],
                        monitor_run=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                        **compiled_with,
                    ).set_caching_options(False), "trigger_training")

    own = parameters.parameters(_monitor_parameters)
    docs = {**parameters.documented(training.pipeline_func), **parameters.documented(_monitor_parameters)}
    signature = own + parameters.parameters(training.pipeline_func, without=[RETRAINING_DATA])
    return dsl.pipeline(
        name="loopline-drift-monitor",
        description="Loopline drift monitor: compare the current window with the reference and retrain "
        "on the current data when it drifted.",
    )(parameters.with_parameters(
        drift_monitor, signature, docs,
        "Detects drift and, when the data drifted, retrains on the current window with every training parameter.",
    ))


# The pipeline of compiled/drift_monitor.yaml: default settings (retries on the service steps, no Kubernetes settings).
drift_monitor = build_drift_monitor(cluster.ClusterSettings())
