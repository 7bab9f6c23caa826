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
    n_trials: int = 4,
    max_epochs: int = 15,
    timeout_seconds: float = 0.0,
    search_space: dict | None = None,
    seed: int = 42,
) -> None:
    from loopline.training import tune_and_train

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
    )
    metrics.log_metric("best_validation_auc", round(result.best_value, 6))
    metrics.log_metric("trials", len(result.trials))
    for key, value in result.best_params.items():
        metrics.log_metric(f"best_{key}", float(value))
    model.metadata.update(
        {
            "framework": "tensorflow",
            "format": "saved_model",
            "serving_version": "1",
            "classes": spec.classes,
            "best_params": result.best_params,
            "best_validation_auc": result.best_value,
            "trained_on_sha256": spec.source_sha256,
        }
    )


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
    target: str = "local",
    namespace: str = "default",
    storage_uri: str = "",
    pipeline_run: str = "",
    local_home: str = "",
) -> str:
    """Build the InferenceService; serve it (locally or in the cluster); check a prediction;
    move `champion`. Returns the prediction URL."""
    from loopline import registry, serving
    from loopline.errors import DeploymentError

    registry.quiet()
    if target not in ("local", "kserve"):
        raise DeploymentError(f"target must be 'local' or 'kserve', got '{target}'")
    home = loopline_home(local_home)
    holdout_df, spec = data_lib.read_split(holdout.path)
    sample = holdout_df[list(spec.features)].head(3)
    rows = sample.astype(object).where(sample.notna(), None).to_dict(orient="records")

    if target == "local":
        local_dir = registry.saved_model_dir(tracking_uri, model_name, model_version, home / "models" / model_name / f"v{model_version}")
        storage = storage_uri or local_dir.as_uri()
    else:
        if not storage_uri:
            raise DeploymentError("target 'kserve' needs storage_uri (gs://, s3:// or pvc:// of the SavedModel)")
        storage = storage_uri
    isvc = serving.build_inference_service(
        name=_isvc_name(model_name),
        namespace=namespace,
        storage_uri=storage,
        model_name=model_name,
        model_version=model_version,
        pipeline_run=pipeline_run,
    )
    text = serving.manifest_yaml(isvc)
    Path(manifest.path).parent.mkdir(parents=True, exist_ok=True)
    Path(manifest.path).write_text(text)
    manifest.metadata.update({"name": isvc.metadata.name, "namespace": namespace, "storage_uri": storage})

    if target == "kserve":
        serving.apply_to_cluster(isvc)
        registry.set_alias(tracking_uri, model_name, registry.CHAMPION, model_version)
        return f"{isvc.metadata.name}.{namespace}"

    # local: keep a copy of the manifest a user can `kubectl apply`
    manifests = home / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    (manifests / f"{isvc.metadata.name}-v{model_version}.yaml").write_text(text)
    previous = serving.read_state(home, model_name)
    if previous and previous.version == str(model_version) and serving.is_alive(previous):
        log.info("%s v%s is already serving at %s; nothing to do", model_name, model_version, previous.url)
        registry.set_alias(tracking_uri, model_name, registry.CHAMPION, model_version)
        return previous.predict_url
    info = serving.start_server(str(local_dir), model_name=model_name, version=model_version, log_dir=home / "serving")
    try:
        answer = serving.predict(info, rows)
        if len(answer) != len(rows) or any(abs(sum(p) - 1.0) > 1e-3 for p in answer):
            raise DeploymentError(f"smoke test failed: unexpected answer {answer!r}")
        log.info("smoke test: %d rows answered by %s", len(rows), info.predict_url)
    except Exception:
        serving.stop_server(info)
        log.error("new version failed its smoke test; the previous server keeps serving")
        raise
    serving.write_state(home, info)
    if previous:
        serving.stop_server(previous)
    registry.set_alias(tracking_uri, model_name, registry.CHAMPION, model_version)
    return info.predict_url


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


def check_drift_escalation(*, metrics, drift_share: float, escalation_threshold: float, rerun_mode: str) -> bool:
    from loopline import reruns

    meta = dict(getattr(metrics, "metadata", {}) or {})
    if "share_drifted" not in meta:
        raise data_lib.DataError("drift metrics lack 'share_drifted': connect the metrics output of detect_drift")
    scores = {k[len("drift_"):]: float(v) for k, v in meta.items() if k.startswith("drift_") and isinstance(v, (int, float))}
    return reruns.check_escalation(
        share_drifted=float(meta["share_drifted"]), feature_scores=scores, drift_share=drift_share,
        escalation_threshold=escalation_threshold, rerun_mode=rerun_mode,
    )


def trigger_training(*, arguments: dict, summary, reason_path: str, run_path: str, **options) -> bool:
    """Submit a drift-triggered training run (or not: cooldown, dedupe); write the decision."""
    from loopline import reruns

    inside_kfp_task = os.environ.get("_KFP_RUNTIME") == "true"
    run = reruns.trigger_training_isolated if inside_kfp_task else reruns.trigger_training
    decision = run(arguments=arguments, **options)
    for path, text in ((reason_path, decision.reason), (run_path, decision.run_id), (summary.path, decision.markdown())):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    summary.metadata.update({"triggered": decision.triggered, "run": decision.run_id})
    log.info("drift-triggered training %s: %s", "started" if decision.triggered else "not started", decision.reason)
    return decision.triggered


def json_dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
