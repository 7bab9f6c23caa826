"""The `train_model` step: the study's remaining trials, the best configuration retrained on
train + validation and exported, the tuning report."""

from __future__ import annotations

import json

import pandas as pd

from loopline.core.files import write_text
from loopline.core.mlflow_store import check_store
from loopline.drift import reference_profile
from loopline.tuning import storage as tuning_storage
from loopline.tuning import streaming, training
from loopline.tuning import study as tuning


def run(*, train, validation, model, metrics, best_params, report, settings: tuning.TuningSettings,
        pipeline_run: str) -> None:
    """Run the study's remaining trials (all of them, unless resumed or tuned by workers), retrain
    the best configuration on train + validation, export it, and report."""
    if settings.tracking_uri:  # a corrupt or unreachable store is found now, not after training
        check_store(settings.tracking_uri)
    train_df, val_df, spec = training.read_splits(train.path, validation.path, seed=settings.seed)  # samples above the cap
    sampled = len(train_df) + len(val_df) < streaming.count_rows(train.path) + streaming.count_rows(validation.path)
    result = training.tune_and_train(train_df, val_df, spec, settings=settings, export_dir=model.path,
                                     pipeline_run=pipeline_run, report_path=report.path,
                                     stream_from=[train.path, validation.path] if sampled else None)
    # the drift monitor's reference, stored with the model (of the sample above the tuning cap)
    profile = reference_profile.build(pd.concat([train_df, val_df], ignore_index=True), spec)
    reference_profile.write(profile, model.path)
    states = {}
    for trial in result.trials:
        states[trial["state"].lower()] = states.get(trial["state"].lower(), 0) + 1
    metrics.log_metric(f"best_validation_{settings.objective}", round(result.best_value, 6))
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
        "objective": settings.objective,
        "direction": tuning.OBJECTIVES[settings.objective],
        "best_value": result.best_value,
        "best_trial": result.best_trial,
        "params": result.best_params,
        "final_epochs": result.epochs,
        "study_name": result.study_name,
        "storage": tuning_storage.masked(settings.storage_url) or "in-memory",
        "trials": states,
        "final_curves": result.curves,
        "rows": result.rows,
        **result.decision,
    }
    write_text(best_params.path, json.dumps(best, indent=2, sort_keys=True))
    best_params.metadata.update({"objective": settings.objective, "best_value": result.best_value, "study_name": result.study_name,
                                 **{f"param_{k}": v for k, v in result.best_params.items()}})
    report.metadata.update({"study_name": result.study_name, "trials": len(result.trials)})
    model.metadata.update(
        {
            "framework": "tensorflow",
            "format": "saved_model",
            "serving_version": "1",
            "classes": spec.classes,
            "best_params": result.best_params,
            "objective": settings.objective,
            f"best_validation_{settings.objective}": result.best_value,
            "study_name": result.study_name,
            "trained_on_sha256": spec.source_sha256,
            "rows": result.rows,
            "reference_profile_rows": profile["rows"],
            **({"decision_threshold": threshold} if threshold else {}),
            **({"mlflow_model_uri": result.model_uri} if result.model_uri else {}),
        }
    )

