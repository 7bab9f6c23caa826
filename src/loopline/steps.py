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


def validate_data(
    *,
    train,
    validation,
    holdout,
    report,
    metrics,
    summary,
    result,
    fail_on_error: bool = True,
    reference_data_uri: str = "",
    suite_uri: str = "",
    max_null_fraction: float = 0.1,
    skew_threshold: float = 0.1,
) -> bool:
    """Validate the three splits against a suite inferred from the training split (or from
    `reference_data_uri`), merged with the user's suite file; write every output, then fail
    when blocked and `fail_on_error`."""
    from loopline import validation as validation_lib
    from loopline.errors import ValidationFailed

    frames = {}
    spec = None
    for name, artifact in (("train", train), ("validation", validation), ("holdout", holdout)):
        frames[name], spec = data_lib.read_split(artifact.path)
    reference = None
    if reference_data_uri:
        raw = data_lib.read_table(reference_data_uri)
        missing = [c for c in [*spec.features, spec.target] if c not in raw.columns]
        if missing:
            raise data_lib.DataError(f"reference data {reference_data_uri} lacks columns: {', '.join(missing)}")
        reference = data_lib.conform(raw, spec)
    user_suite = validation_lib.load_suite_file(suite_uri) if suite_uri else None
    outcome = validation_lib.validate_splits(
        frames, spec, report_path=report.path, fail_on_error=False, reference=reference,
        suite_expectations=user_suite, max_null_fraction=max_null_fraction, skew_threshold=skew_threshold,
    )
    metrics.log_metric("success_percent", outcome.success_percent)
    metrics.log_metric("skew_score", round(outcome.skew_score, 6))
    metrics.log_metric("rows", outcome.rows)
    metrics.log_metric("failed_critical", outcome.failed_critical)
    metrics.log_metric("failed_warning", outcome.failed_warning)
    metrics.log_metric("expectations_evaluated", outcome.evaluated)
    metrics.log_metric("expectations_failed", outcome.failed)
    _write(summary.path, validation_lib.summary_markdown(outcome))
    _write(result.path, json.dumps(outcome.to_dict(), indent=1, default=str))
    for artifact in (report, result):
        artifact.metadata.update({"outcome": outcome.outcome, "passed": outcome.passed,
                                  "skew_score": round(outcome.skew_score, 6)})
    if not outcome.passed and fail_on_error:
        raise ValidationFailed(f"data validation failed ({outcome.outcome}): {outcome.failure_summary()}")
    return outcome.passed


def _write(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


def _tuning_splits(train, validation):
    """TensorFlow threads sized to the task's CPU limit, then the training and validation splits."""
    from loopline import tuning

    tuning.configure_threads(0)
    train_df, spec = data_lib.read_split(train.path)
    val_df, _ = data_lib.read_split(validation.path)
    return train_df, val_df, spec


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
    train_df, val_df, spec = _tuning_splits(train, validation)
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
    for phase, rows in result.rows.items():  # which rows each phase used
        metrics.log_metric(f"rows_{phase}", rows)
    threshold = result.decision.get("decision_threshold")
    if threshold:
        metrics.log_metric("decision_threshold", round(threshold["value"], 6))
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
        "rows": result.rows,
        **result.decision,
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
            "rows": result.rows,
            **({"decision_threshold": threshold} if threshold else {}),
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
    train_df, val_df, spec = _tuning_splits(train, validation)
    run = tune(train_df, val_df, spec, settings=settings, worker=int(worker), pipeline_run=pipeline_run)
    mine = [t for t in run.study.get_trials(deepcopy=False) if t.user_attrs.get(tuning.WORKER_ATTR) == int(worker)]
    metrics.log_metric("trials_run_by_this_worker", run.ran)
    metrics.log_metric("trials_in_study", run.counted)
    metrics.log_metric("epochs_trained_by_this_worker", sum(t.user_attrs.get("epochs", 0) for t in mine))
    try:
        metrics.log_metric(f"study_best_{objective}", round(float(run.study.best_value), 6))
    except ValueError:  # no completed trial yet
        pass


def evaluate_model(
    *,
    model,
    holdout,
    thresholds: dict,
    metrics,
    classification_metrics,
    report,
    blessing,
    tracking_uri: str = "",
    model_name: str = "",
    train=None,
) -> bool:
    """Judge the model on the holdout, beside the registered champion and a baseline fitted on
    the training split; write the report and the blessing. Returns whether the gate passed."""
    import tempfile

    from loopline import blessing as blessing_lib
    from loopline import evaluation
    from loopline.errors import GateConfigError

    config = evaluation.parse_gate_config(thresholds)  # fail closed before any work
    if config.needs_champion and not (tracking_uri and model_name):
        raise GateConfigError("relative gates compare with the champion: give tracking_uri and model_name")
    if config.baseline is not None and train is None:
        raise GateConfigError(
            "the baseline gate fits a logistic regression on the training split: connect train, "
            "or turn the rule off with thresholds {..., \"baseline\": false}"
        )
    holdout_df, spec = data_lib.read_split(holdout.path)
    holdout_sha256 = data_lib.file_sha256(holdout.path)
    log.info("judging %s on the holdout %s (%d rows)", model.uri, holdout.uri, len(holdout_df))
    result = evaluation.evaluate_model_dir(
        model.path, holdout_df, spec, slice_column=config.slice_column, min_slice_rows=config.min_slice_rows,
        what="challenger",
    )
    champion = evaluation.Champion(status="not_looked_up")
    if tracking_uri and model_name:
        from loopline import registry

        registry.quiet()
        with tempfile.TemporaryDirectory(prefix="loopline-champion-") as workdir:
            champion = evaluation.evaluate_champion(
                tracking_uri=tracking_uri, model_name=model_name, holdout=holdout_df, spec=spec, workdir=workdir,
                slice_column=config.slice_column, min_slice_rows=config.min_slice_rows,
            )
    baseline = None
    if config.baseline is not None:
        from loopline import baseline as baseline_lib

        train_df, _ = data_lib.read_split(train.path)
        fitted = baseline_lib.fit_baseline(train_df, spec)
        baseline = evaluation.evaluate_predictions(
            evaluation_labels(holdout_df, spec), fitted.predict_proba(holdout_df), spec.classes)
        log.info("baseline (%s, %d training rows) on the holdout: %s", baseline_lib.NAME, fitted.rows,
                 ", ".join(f"{k}={baseline.metrics[k]:.4f}" for k in ("roc_auc", "accuracy") if k in baseline.metrics))
    decision = evaluation.judge(result.metrics, config, champion=champion, notes=result.notes, baseline=baseline)

    for key, value in result.metrics.items():
        metrics.log_metric(key, round(value, 6))
    if champion.evaluation is not None:
        for key, value in champion.metrics.items():
            metrics.log_metric(f"champion_{key}", round(value, 6))
    if baseline is not None:
        for key, value in baseline.metrics.items():
            metrics.log_metric(f"baseline_{key}", round(value, 6))
    metrics.log_metric("gate_passed", 1.0 if decision.passed else 0.0)
    classification_metrics.log_confusion_matrix(result.classes, result.confusion_matrix)
    if result.roc:
        classification_metrics.log_roc_curve(result.roc["fpr"], result.roc["tpr"], result.roc["thresholds"])
    Path(report.path).parent.mkdir(parents=True, exist_ok=True)
    Path(report.path).write_text(
        evaluation.gate_report_markdown(result, decision, model_uri=model.uri, holdout_sha256=holdout_sha256)
    )
    champion_record = {"status": champion.status, "version": champion.version, "model_uri": champion.model_uri,
                       "error": champion.error, "metrics": champion.metrics}
    blessing_lib.write(
        blessing.path,
        blessed=decision.passed,
        model_uri=model.uri,
        model_sha256=blessing_lib.directory_sha256(model.path),
        holdout_uri=holdout.uri,
        holdout_sha256=holdout_sha256,
        reason=decision.reason,
        metrics=result.metrics,
        champion=champion_record,
        baseline={"model": "logistic_regression", "metrics": baseline.metrics} if baseline else None,
        gate_report=evaluation.gate_table_markdown(decision, model_uri=model.uri, rows=result.rows,
                                                   holdout_sha256=holdout_sha256),
        gate_config=thresholds,
    )
    blessing.metadata.update({"blessed": decision.passed, "model_uri": model.uri, "holdout_sha256": holdout_sha256,
                              "champion_version": champion_record.get("version", "")})
    return decision.passed


def evaluation_labels(frame, spec):
    """The holdout's labels as class indices."""
    from loopline.training import encode_labels

    return encode_labels(frame, spec)


def register_model(
    *,
    model,
    blessing,
    train,
    holdout,
    tracking_uri: str,
    model_name: str,
    pipeline_run: str,
    pipeline_name: str = "",
    pipeline_run_id: str = "",
    image_refs: dict | None = None,
    extra_tags: dict | None = None,
    vertex_model_registry: dict | None = None,
) -> str:
    """Check the blessing, register the model version with its lineage (alias `challenger`),
    and optionally upload it to Vertex AI Model Registry. Returns the MLflow version."""
    from loopline import __version__, registry
    from loopline import blessing as blessing_lib
    from loopline import vertex as vertex_lib
    from loopline.images import ROLES, image

    registry.quiet()
    record = blessing_lib.read(blessing.path)
    holdout_sha256 = data_lib.file_sha256(holdout.path)
    blessing_lib.verify(
        record, model_uri=model.uri, model_sha256=blessing_lib.directory_sha256(model.path),
        holdout_sha256=holdout_sha256,
    )
    target = vertex_lib.parse_target(vertex_model_registry, model_name=model_name, model_uri=model.uri)
    holdout_df, spec = data_lib.read_split(holdout.path)
    train_meta = dict(getattr(train, "metadata", {}) or {})
    params = _hyperparameters(model)
    images = {role: (image_refs or {}).get(role) or image(role) for role in ROLES}
    tags = {
        registry.TAG_DATA_SHA256: spec.source_sha256,
        registry.TAG_DATA_URI: spec.source_uri,
        registry.TAG_HOLDOUT_SHA256: holdout_sha256,
        registry.TAG_MODEL_ARTIFACT: model.uri,
        registry.TAG_MODEL_SHA256: record["model_sha256"],
        registry.TAG_PIPELINE_NAME: pipeline_name,
        registry.TAG_PIPELINE_RUN_ID: pipeline_run_id,
        registry.TAG_VERSION: __version__,
        registry.TAG_HYPERPARAMETERS: json_dump(params),
        registry.TAG_METRICS: json_dump({k: round(v, 6) for k, v in record["metrics"].items()}),
        registry.TAG_GATE_REPORT: record["gate_report"],
        registry.TAG_GATE_CHAMPION: str(record.get("champion", {}).get("version") or "none"),
        "loopline.train_rows": str(train_meta.get("rows", "")),
        **{f"{registry.TAG_IMAGE_PREFIX}{role}": ref for role, ref in images.items()},
        **{k: str(v) for k, v in (extra_tags or {}).items()},
    }
    commit = registry.git_commit()
    if commit:
        tags[registry.TAG_GIT_COMMIT] = commit
    tags = {k: v for k, v in tags.items() if v != ""}
    version = registry.register(
        model.path,
        tracking_uri=tracking_uri,
        model_name=model_name,
        pipeline_run=pipeline_run,
        tags=tags,
        params=params,
        metrics=record["metrics"],
        input_example=holdout_df[list(spec.features)].head(3),
        texts={"gate_report.md": record["gate_report"], "blessing.json": json_dump(record)},
    )
    if target is not None:
        done = (version.tags or {}).get(registry.TAG_VERTEX_MODEL)
        if done:
            log.info("pipeline run %s already uploaded version %s to Vertex as %s", pipeline_run, version.version, done)
        else:
            uploaded = vertex_lib.upload(
                target, model_name=model_name, mlflow_version=version.version, pipeline_run=pipeline_run,
                labels={"loopline-pipeline-run": pipeline_run, "mlflow-version": version.version},
            )
            registry.set_version_tags(tracking_uri, model_name, version.version, {
                registry.TAG_VERTEX_MODEL: uploaded["resource_name"],
                registry.TAG_VERTEX_VERSION: uploaded["version_id"],
            })
    return version.version


def _hyperparameters(model) -> dict:
    """The model's hyperparameters as training exported them (their types intact), else as the
    artifact's metadata carries them."""
    from loopline.training import METADATA_FILE

    exported = Path(model.path) / METADATA_FILE
    if exported.is_file():
        params = json.loads(exported.read_text()).get("params")
        if isinstance(params, dict):
            return params
    return dict((getattr(model, "metadata", {}) or {}).get("best_params", {}))


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
    current_data_uri: str,
    target: str,
    report,
    metrics,
    summary,
    table,
    reference_data_uri: str = "",
    tracking_uri: str = "",
    model_name: str = "",
    feature_kinds: dict | None = None,
    ignore_columns: list | None = None,
    drift_share: float = 0.5,
    numeric_test: str = "psi",
    categorical_test: str = "jensenshannon",
    thresholds: dict | None = None,
    critical_features: list | None = None,
    current_last_rows: int = 0,
    report_sample_rows: int = 50_000,
) -> bool:
    """Drift of the current window against the reference (by default the champion's training
    data, as recorded at registration); every output is written before the verdict returns."""
    from loopline import drift

    settings = drift.DriftSettings(
        drift_share=drift_share, numeric_test=numeric_test, categorical_test=categorical_test,
        thresholds=dict(thresholds or {}), critical_features=list(critical_features or []),
    )
    settings.check()  # before any data is read
    if not reference_data_uri:
        from loopline import registry

        reference_data_uri = registry.champion_data_uri(tracking_uri, model_name)
        log.info("reference window: the champion's training data %s", reference_data_uri)
    reference_raw = data_lib.read_table(reference_data_uri)
    spec = data_lib.build_spec(
        reference_raw, target=target, feature_kinds=feature_kinds, ignore_columns=ignore_columns,
        source_uri=reference_data_uri,
    )
    current_raw = drift.last_rows(data_lib.read_table(current_data_uri), current_last_rows)
    drift.check_windows(reference_raw, current_raw, list(spec.features))
    reference, current = data_lib.conform(reference_raw, spec), data_lib.conform(current_raw, spec)
    result = drift.detect(reference, current, spec, report_path=report.path, settings=settings,
                          report_sample_rows=report_sample_rows)
    metrics.log_metric("share_drifted", round(result.share_drifted, 6))
    metrics.log_metric("drifted", 1.0 if result.drifted else 0.0)
    metrics.log_metric("drifted_features", len(result.drifted_features))
    for name, feature in result.features.items():
        metrics.log_metric(f"drift_{name}", round(feature["score"], 6))
        metrics.log_metric(f"psi_{name}", round(feature["psi"], 6))
    _write(summary.path, drift.summary_markdown(result))
    _write(table.path, json.dumps(result.to_dict(), indent=1))
    for artifact in (report, table):
        artifact.metadata.update({"share_drifted": result.share_drifted, "drifted": result.drifted,
                                  "reference_uri": reference_data_uri, "current_uri": current_data_uri})
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
