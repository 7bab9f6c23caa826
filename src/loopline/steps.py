"""One function per pipeline step: what each KFP component calls.

Each takes plain values, paths, and artifact objects that have `.path`, `.uri` and `.metadata`
(KFP's, or any object with those attributes), so the steps run and are tested without KFP.
Heavy libraries are imported inside the library functions that need them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from loopline import data as data_lib

log = logging.getLogger("loopline")


def setup_logging() -> None:
    """Readable step logs: time, logger, message; quiet TensorFlow's C++ logs."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    root = logging.getLogger()
    if not root.handlers:  # inside a KFP task the executor has set up its own handler already
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("absl", "tensorflow", "great_expectations", "mlflow", "alembic", "urllib3", "evidently"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def loopline_home(local_home: str = "") -> Path:
    """Where local state lives: the argument, else $LOOPLINE_HOME, else ./.loopline."""
    return Path(local_home or os.environ.get("LOOPLINE_HOME") or ".loopline").resolve()


# --------------------------------------------------------------------------------------------


def load_data(
    *,
    data_uri: str,
    target: str,
    train,
    validation,
    holdout,
    feature_kinds: dict | None = None,
    ignore_columns: list | None = None,
    validation_fraction: float = 0.15,
    holdout_fraction: float = 0.15,
    seed: int = 42,
) -> None:
    result = data_lib.load_and_split(
        data_uri,
        target=target,
        train_path=train.path,
        validation_path=validation.path,
        holdout_path=holdout.path,
        feature_kinds=feature_kinds,
        ignore_columns=ignore_columns,
        validation_fraction=validation_fraction,
        holdout_fraction=holdout_fraction,
        seed=seed,
    )
    for name, artifact in (("train", train), ("validation", validation), ("holdout", holdout)):
        artifact.metadata.update(
            {
                "rows": result.rows[name],
                "format": "parquet",
                "target": result.spec.target,
                "source_uri": data_uri,
                "source_sha256": result.spec.source_sha256,
            }
        )


def validate_data(*, train, validation, holdout, report, metrics, fail_on_error: bool = True) -> bool:
    from loopline.validation import validate_splits

    frames = {}
    spec = None
    for name, artifact in (("train", train), ("validation", validation), ("holdout", holdout)):
        frames[name], spec = data_lib.read_split(artifact.path)
    result = validate_splits(frames, spec, report_path=report.path, fail_on_error=False)
    evaluated, failed = result.evaluated, result.failed
    metrics.log_metric("expectations_evaluated", evaluated)
    metrics.log_metric("expectations_failed", failed)
    metrics.log_metric("success_percent", round(100.0 * (evaluated - failed) / max(evaluated, 1), 2))
    if not result.success and fail_on_error:
        from loopline.errors import ValidationFailed

        raise ValidationFailed(f"data validation failed: {result.failure_summary()}")
    return result.success


def train_model(
    *,
    train,
    validation,
    model,
    metrics,
    best_params,
    report,
    n_trials: int = 4,
    max_epochs: int = 15,
    timeout_seconds: float = 0.0,
    search_space: dict | None = None,
    seed: int = 42,
    objective: str = "roc_auc",
    pruner: str = "median",
    storage_url: str = "",
    study_name: str = "",
    pipeline_run: str = "",
    tracking_uri: str = "",
) -> None:
    """Run the study's remaining trials (all of them, unless resumed or tuned by workers), retrain
    the best configuration on train + validation, export it, and report."""
    from loopline import tuning
    from loopline.training import tune_and_train

    tuning.TuningSettings(  # every setting is checked before the data is read
        n_trials=n_trials, max_epochs=max_epochs, timeout_seconds=timeout_seconds, objective=objective,
        pruner=pruner, storage_url=storage_url, search_space=search_space or {},
    )
    tuning.configure_threads(0)
    train_df, spec = data_lib.read_split(train.path)
    val_df, _ = data_lib.read_split(validation.path)
    result = tune_and_train(
        train_df,
        val_df,
        spec,
        export_dir=model.path,
        n_trials=n_trials,
        max_epochs=max_epochs,
        timeout_seconds=timeout_seconds or None,
        search_space=search_space,
        seed=seed,
        objective=objective,
        pruner=pruner,
        storage_url=storage_url,
        study_name=study_name,
        pipeline_run=pipeline_run,
        tracking_uri=tracking_uri,
        report_path=report.path,
    )
    states = {}
    for trial in result.trials:
        states[trial["state"].lower()] = states.get(trial["state"].lower(), 0) + 1
    metrics.log_metric(f"best_validation_{objective}", round(result.best_value, 6))
    metrics.log_metric("trials", len(result.trials))
    for state in ("complete", "pruned", "fail"):
        metrics.log_metric(f"trials_{state}", states.get(state, 0))
    metrics.log_metric("trials_run_by_this_step", result.ran_here)
    metrics.log_metric("epochs_trained_in_tuning", result.trained_epochs)
    metrics.log_metric("final_epochs", result.epochs)
    for name, values in result.curves.items():
        if values:
            metrics.log_metric(f"final_{name}", round(values[-1], 6))
    for key, value in result.best_params.items():
        metrics.log_metric(f"best_{key}", float(value))
    best = {
        "objective": objective,
        "direction": tuning.OBJECTIVES[objective],
        "best_value": result.best_value,
        "best_trial": result.best_trial,
        "params": result.best_params,
        "final_epochs": result.epochs,
        "study_name": result.study_name,
        "storage": tuning.masked(storage_url) or "in-memory",
        "trials": states,
        "final_curves": result.curves,
    }
    Path(best_params.path).parent.mkdir(parents=True, exist_ok=True)
    Path(best_params.path).write_text(json.dumps(best, indent=2, sort_keys=True))
    best_params.metadata.update({"objective": objective, "best_value": result.best_value, "study_name": result.study_name,
                                 **{f"param_{k}": v for k, v in result.best_params.items()}})
    report.metadata.update({"study_name": result.study_name, "trials": len(result.trials)})
    model.metadata.update(
        {
            "framework": "tensorflow",
            "format": "saved_model",
            "serving_version": "1",
            "classes": spec.classes,
            "best_params": result.best_params,
            "objective": objective,
            f"best_validation_{objective}": result.best_value,
            "study_name": result.study_name,
            "trained_on_sha256": spec.source_sha256,
            **({"mlflow_model_uri": result.model_uri} if result.model_uri else {}),
        }
    )


def tune_model(
    *,
    train,
    validation,
    metrics,
    worker: int = 1,
    n_trials: int = 4,
    max_epochs: int = 15,
    timeout_seconds: float = 0.0,
    search_space: dict | None = None,
    seed: int = 42,
    objective: str = "roc_auc",
    pruner: str = "median",
    storage_url: str = "",
    study_name: str = "",
    pipeline_run: str = "",
    tracking_uri: str = "",
) -> None:
    """One tuning worker: trials of the shared study until it holds `n_trials` (no export)."""
    from loopline import tuning
    from loopline.errors import TuningConfigError
    from loopline.training import tune

    settings = tuning.TuningSettings(
        n_trials=n_trials, max_epochs=max_epochs, timeout_seconds=timeout_seconds, objective=objective,
        pruner=pruner, storage_url=storage_url, study_name=study_name, seed=seed,
        search_space=search_space or {}, tracking_uri=tracking_uri,
    )
    if not storage_url:
        raise TuningConfigError(
            "tuning workers share their study through storage_url, which is empty: give a sqlite:/// or "
            "postgresql:// URL, or tune in train_model alone (no workers)"
        )
    tuning.configure_threads(0)
    train_df, spec = data_lib.read_split(train.path)
    val_df, _ = data_lib.read_split(validation.path)
    run = tune(train_df, val_df, spec, settings=settings, worker=int(worker), pipeline_run=pipeline_run)
    mine = [t for t in run.study.get_trials(deepcopy=False) if t.user_attrs.get(tuning.WORKER_ATTR) == int(worker)]
    metrics.log_metric("trials_run_by_this_worker", run.ran)
    metrics.log_metric("trials_in_study", run.counted)
    metrics.log_metric("epochs_trained_by_this_worker", sum(t.user_attrs.get("epochs", 0) for t in mine))
    try:
        metrics.log_metric(f"study_best_{objective}", round(float(run.study.best_value), 6))
    except ValueError:  # no completed trial yet
        pass


def evaluate_model(*, model, holdout, thresholds: dict, metrics, classification_metrics, report) -> bool:
    from loopline import evaluation

    evaluation.parse_thresholds(thresholds)  # fail closed before any work
    holdout_df, spec = data_lib.read_split(holdout.path)
    result = evaluation.evaluate_model_dir(model.path, holdout_df, spec)
    decision = evaluation.gate(result.metrics, thresholds)
    for key, value in result.metrics.items():
        metrics.log_metric(key, round(value, 6))
    metrics.log_metric("gate_passed", 1.0 if decision.passed else 0.0)
    classification_metrics.log_confusion_matrix(result.classes, result.confusion_matrix)
    if result.roc:
        classification_metrics.log_roc_curve(result.roc["fpr"], result.roc["tpr"], result.roc["thresholds"])
    Path(report.path).parent.mkdir(parents=True, exist_ok=True)
    Path(report.path).write_text(evaluation.gate_report_markdown(result, decision, model_uri=model.uri))
    return decision.passed


def register_model(
    *,
    model,
    train,
    holdout,
    tracking_uri: str,
    model_name: str,
    pipeline_run: str,
    extra_tags: dict | None = None,
) -> str:
    from loopline import registry
    from loopline.images import ROLES, image

    registry.quiet()
    holdout_df, spec = data_lib.read_split(holdout.path)
    train_meta = dict(getattr(train, "metadata", {}) or {})
    tags = {
        registry.TAG_DATA_SHA256: spec.source_sha256,
        registry.TAG_DATA_URI: spec.source_uri,
        "loopline.model_artifact": model.uri,
        "loopline.train_rows": str(train_meta.get("rows", "")),
        **{f"loopline.image.{role}": image(role) for role in ROLES},
        **{k: str(v) for k, v in (extra_tags or {}).items()},
    }
    params = dict((getattr(model, "metadata", {}) or {}).get("best_params", {}))
    version = registry.register(
        model.path,
        tracking_uri=tracking_uri,
        model_name=model_name,
        pipeline_run=pipeline_run,
        tags=tags,
        params=params,
        metrics={},
        input_example=holdout_df[list(spec.features)].head(3),
    )
    return version.version


def deploy_model(
    *,
    model_name: str,
    model_version: str,
    tracking_uri: str,
    holdout,
    manifest,
    report,
    target: str = "local",
    namespace: str = "default",
    storage_uri: str = "",
    pipeline_run: str = "",
    canary_percent: int = 10,
    deployment_mode: str = "Serverless",
    service_account: str = "",
    runtime_version: str = "",
    min_replicas: int = 1,
    max_replicas: int = 1,
    smoke_rows: int = 16,
    tolerance: float = 1e-5,
    max_p95_ms: float = 1000.0,
    ready_timeout_seconds: float = 600.0,
    local_home: str = "",
) -> str:
    """Build the InferenceService, roll the version out (canary, smoke test, promote or roll
    back) and move `champion` only when the new version serves. Returns the rollout action."""
    from loopline import registry, rollout, serving
    from loopline.errors import DeploymentError
    from loopline.training import ServingModel

    registry.quiet()
    if target not in ("local", "kserve"):
        raise DeploymentError(f"target must be 'local' or 'kserve', got '{target}'")
    home = loopline_home(local_home)
    holdout_df, spec = data_lib.read_split(holdout.path)
    sample = holdout_df[list(spec.features)].head(max(1, smoke_rows))
    rows = sample.astype(object).where(sample.notna(), None).to_dict(orient="records")

    # The registered files are what gets served; the smoke test compares the server's answers
    # with the same files' predictions in-process.
    local_dir = registry.saved_model_dir(tracking_uri, model_name, model_version, home / "models" / model_name / f"v{model_version}")
    expected = ServingModel(local_dir).predict_rows(rows)
    if target == "kserve" and not storage_uri:
        storage_uri = registry.serving_storage_uri(tracking_uri, model_name, model_version, local_dir)
        if not storage_uri.startswith(("gs://", "s3://", "pvc://")):
            raise DeploymentError(
                f"the registry keeps version {model_version} at {storage_uri}, which KServe cannot read: "
                "give storage_uri (gs://, s3:// or pvc://) or use an MLflow server with object-store artifacts"
            )
    isvc = serving.build_inference_service(
        name=_isvc_name(model_name),
        namespace=namespace,
        storage_uri=storage_uri or local_dir.as_uri(),
        model_name=model_name,
        model_version=model_version,
        pipeline_run=pipeline_run,
        runtime_version=runtime_version,
        service_account=service_account,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        deployment_mode=deployment_mode,
    )
    text = serving.manifest_yaml(isvc)
    Path(manifest.path).parent.mkdir(parents=True, exist_ok=True)
    Path(manifest.path).write_text(text)
    manifest.metadata.update({"name": isvc.metadata.name, "namespace": namespace, "storage_uri": isvc.spec.predictor.model.storage_uri})
    manifests = home / "manifests"  # kept for `kubectl apply`
    manifests.mkdir(parents=True, exist_ok=True)
    (manifests / f"{isvc.metadata.name}-v{model_version}.yaml").write_text(text)

    limits = rollout.SmokeLimits(rows=len(rows), tolerance=tolerance, max_p95_ms=max_p95_ms)
    if target == "kserve":
        result = rollout.rollout_cluster(
            rollout.ClusterApi(), serving.to_manifest(isvc), rows=rows, expected=expected, limits=limits,
            canary_percent=canary_percent, ready_timeout=ready_timeout_seconds,
        )
    else:
        result = rollout.rollout_local(
            home=home, model_name=model_name, version=model_version, model_dir=str(local_dir), rows=rows,
            expected=expected, limits=limits, ready_timeout=min(ready_timeout_seconds, 300.0),
        )
    Path(report.path).parent.mkdir(parents=True, exist_ok=True)
    Path(report.path).write_text(result.markdown())
    report.metadata.update({"action": result.action, "reason": result.reason, "endpoint": result.endpoint,
                            "previous_version": result.previous_version})
    if result.serving_new_version:
        registry.set_alias(tracking_uri, model_name, registry.CHAMPION, model_version)
    else:
        log.warning("rollout of %s v%s rolled back: %s; champion stays at v%s",
                    model_name, model_version, result.reason, result.previous_version)
    return result.action


def _isvc_name(model_name: str) -> str:
    """A DNS-1035 label for the InferenceService name."""
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in model_name.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"m-{cleaned}"
    return cleaned[:45].rstrip("-")


def detect_drift(
    *,
    reference_data_uri: str,
    current_data_uri: str,
    target: str,
    report,
    metrics,
    summary,
    feature_kinds: dict | None = None,
    ignore_columns: list | None = None,
    drift_share: float = 0.5,
) -> bool:
    from loopline import drift

    reference_raw = data_lib.read_table(reference_data_uri)
    spec = data_lib.build_spec(
        reference_raw, target=target, feature_kinds=feature_kinds, ignore_columns=ignore_columns,
        source_uri=reference_data_uri,
    )
    current_raw = data_lib.read_table(current_data_uri)
    missing = [c for c in spec.features if c not in current_raw.columns]
    if missing:
        raise data_lib.DataError(f"current data {current_data_uri} lacks feature columns: {', '.join(missing)}")
    result = drift.detect(
        data_lib.conform(reference_raw, spec),
        data_lib.conform(current_raw, spec),
        spec,
        report_path=report.path,
        drift_share=drift_share,
    )
    metrics.log_metric("share_drifted", round(result.share_drifted, 6))
    metrics.log_metric("drifted", 1.0 if result.drifted else 0.0)
    for name, feature in result.features.items():
        metrics.log_metric(f"drift_{name}", round(feature["score"], 6))
    Path(summary.path).parent.mkdir(parents=True, exist_ok=True)
    Path(summary.path).write_text(drift.summary_markdown(result))
    report.metadata["share_drifted"] = result.share_drifted
    return result.drifted


def json_dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
