"""Optuna-tuned Keras tabular classifier with its preprocessing inside the model.

The exported SavedModel has a `serving_default` signature that takes one 1-D tensor per raw
feature (float32 for numeric, string for categorical; NaN / "" mean missing) and returns
`probabilities` (batch x classes). It is laid out as TF Serving expects
(`<dir>/<version>/saved_model.pb`), so KServe's TensorFlow runtime serves it as is.

The model itself (its layers, input pipeline and export) is `keras_model`; this module tunes it
with Optuna and retrains the best configuration.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.core import progress
from loopline.core.errors import DataError, LooplineError
from loopline.data.spec import DatasetSpec
from loopline.model.classifier import (
    as_model_inputs,
    build_model,
    export_saved_model,
    make_dataset,
    set_seeds,
)
from loopline.model.contract import (
    encode_labels,
    to_feature_arrays,
)
from loopline.model.decision import (
    THRESHOLD_KEY,
    choose_threshold,
    class_weights,
    threshold_record,
    unweight,
)
from loopline.tuning import report as tuning_report
from loopline.tuning import storage as tuning_storage
from loopline.tuning import streaming, trial_scores
from loopline.tuning import study as tuning
from loopline.tuning import tracking as tuning_mlflow
from loopline.tuning.budget import TUNING_SAMPLE_ROWS, final_epochs, steps_per_epoch, tuning_rows

log = logging.getLogger(__name__)

@dataclass
class TuningResult:
    best_params: dict[str, Any]
    best_value: float
    trials: list[dict[str, Any]]
    export_dir: str
    objective: str = "roc_auc"
    study_name: str = ""
    best_trial: int = 0
    epochs: int = 0  # epochs of the final training on train + validation
    trained_epochs: int = 0  # epochs trained by all trials of the study
    ran_here: int = 0  # trials this process ran (the rest came from earlier runs or other workers)
    curves: dict[str, list[float]] = field(default_factory=dict)  # the final training, per epoch
    model_uri: str = ""  # MLflow model of the final training, when tracked
    rows: dict[str, int] = field(default_factory=dict)  # rows each phase used
    decision: dict[str, Any] = field(default_factory=dict)  # decision threshold and class weights

@dataclass
class StudyRun:
    """A study after one process's trials: what `tune` returns."""

    study: Any
    study_name: str
    settings: Any
    ran: int
    counted: int
    tracker: Any = None

def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    params = {}
    for name, rng in space.items():
        if "choices" in rng:
            params[name] = trial.suggest_categorical(name, rng["choices"])
        elif isinstance(rng["low"], int) and isinstance(rng["high"], int) and name != "dropout":
            params[name] = trial.suggest_int(name, rng["low"], rng["high"], log=bool(rng.get("log", False)))
        else:
            params[name] = trial.suggest_float(name, float(rng["low"]), float(rng["high"]), log=bool(rng.get("log", False)))
    return params

def read_splits(train_path: str, validation_path: str, *, seed: int = 42
                ) -> tuple[pd.DataFrame, pd.DataFrame, DatasetSpec]:
    """TensorFlow threads sized to the task's CPU limit, then the training and validation splits
    (what a tuning worker and the final training start from): stratified samples of
    `budget.TUNING_SAMPLE_ROWS` rows of larger splits, read in chunks."""
    tuning.configure_threads(0)
    train, spec = streaming.read_sample(train_path, TUNING_SAMPLE_ROWS, seed=seed)
    validation, _ = streaming.read_sample(validation_path, TUNING_SAMPLE_ROWS, seed=seed)
    return train, validation, spec

def check_constant_features(df: pd.DataFrame, spec: DatasetSpec, *, where: str = "the training split") -> None:
    """A feature with one value in every row (missing counts as a value) teaches nothing."""
    for name in spec.features:
        if name in df.columns and len(df) and df[name].nunique(dropna=False) <= 1:
            value = df[name].iloc[0]
            shown = "missing" if pd.isna(value) else repr(value)
            raise DataError(
                f"feature column '{name}' is constant in {where} (every row is {shown}): "
                "drop it with ignore_columns"
            )

@dataclass
class PreparedData:
    spec: DatasetSpec
    train_x: dict[str, np.ndarray]
    train_y: np.ndarray
    val_x: dict[str, np.ndarray]
    val_y: np.ndarray

def prepare(train: pd.DataFrame, validation: pd.DataFrame, spec: DatasetSpec) -> PreparedData:
    """Check the splits and turn them into the model's input arrays."""
    check_constant_features(train, spec)
    return PreparedData(spec, to_feature_arrays(train, spec), encode_labels(train, spec),
                        to_feature_arrays(validation, spec), encode_labels(validation, spec))

def make_objective(data: PreparedData, settings, *, worker: int = 0, tracker=None, n_trials: int | None = None):
    """The Optuna objective: build, fit (pruned by the Keras callback), score on validation."""
    import optuna
    from optuna_integration import KerasPruningCallback

    def objective(trial) -> float:
        params = suggest(trial, settings.search_space)
        trial.set_user_attr(tuning.WORKER_ATTR, worker)
        set_seeds(settings.seed + trial.number)
        started = time.perf_counter()
        try:
            model = build_model(data.spec, data.train_x, params)
            curves = _fit_trial(model, data, settings, params, trial, KerasPruningCallback)
            best_epoch, value = trial_scores.best_epoch(curves.get(settings.metric, []), settings.direction)
            if not np.isfinite(value):
                raise tuning.TrialFailed(f"the validation {settings.objective} is not finite (the loss diverged)")
            if len(data.spec.classes) == 2:  # the trial's best weights: its threshold on the validation split
                proba = unweight(np.asarray(model(as_model_inputs(data.val_x), training=False)),
                                 _class_weight(data.train_y, data.spec))
                trial.set_user_attr(THRESHOLD_KEY, choose_threshold(data.val_y, proba[:, 1]))
        except optuna.TrialPruned as pruned:
            curves = getattr(pruned, "curves", {})
            trial.set_user_attr("epochs", _epochs(curves))
            log.info("trial %d: pruned after %d epochs (%s %.4f)", trial.number, _epochs(curves), settings.metric,
                     (curves.get(settings.metric) or [float("nan")])[-1])
            if tracker:
                tracker.log_trial(trial, state="PRUNED", value=None, metric=settings.objective, curves=curves)
            raise
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            trial.set_user_attr(tuning.ERROR_ATTR, message[:500])
            log.warning("trial %d failed: %s", trial.number, message)
            if tracker:
                tracker.log_trial(trial, state="FAIL", value=None, metric=settings.objective,
                                  curves=getattr(exc, "curves", {}), error=message)
            if isinstance(exc, tuning.TrialFailed):
                raise
            raise tuning.TrialFailed(message) from exc
        trial.set_user_attr("epochs", _epochs(curves))
        trial.set_user_attr("best_epoch", best_epoch)
        trial.set_user_attr("curves", {k: [round(v, 6) for v in vs] for k, vs in curves.items()})
        log.info(
            "trial %d%s: validation %s %.4f (best epoch %d of %d) in %.1fs, params %s",
            trial.number, f" of {n_trials}" if n_trials else "", settings.objective, value, best_epoch,
            _epochs(curves), time.perf_counter() - started,
            {k: (round(v, 5) if isinstance(v, float) else v) for k, v in params.items()},
        )
        if tracker:
            tracker.log_trial(trial, state="COMPLETE", value=value, metric=settings.objective, curves=curves)
        return value

    return objective

def _epochs(curves: dict[str, list[float]]) -> int:
    return max((len(v) for v in curves.values()), default=0)

def _fit_trial(model, data, settings, params, trial, pruning_callback_class) -> dict[str, list[float]]:
    """Fit one trial with early stopping and pruning on the validation objective; return the
    curves per epoch (attached to the exception when the trial is pruned or fails)."""
    import keras

    weights = _class_weight(data.train_y, data.spec)
    epoch_log = trial_scores.epoch_log(settings.objective, data.val_x, data.val_y, weights)
    stop = keras.callbacks.EarlyStopping(monitor=settings.metric, mode="max" if settings.direction == "maximize" else "min",
                                         patience=3, restore_best_weights=True)
    # the log first: the others read the objective it adds. The pruning callback reports every
    # epoch's value to the study (with pruner "none" the study's NopPruner never prunes).
    callbacks = [epoch_log, stop, pruning_callback_class(trial, settings.metric)]
    steps = steps_per_epoch(len(data.train_y), int(params["batch_size"]))
    try:
        model.fit(
            make_dataset(data.train_x, data.train_y, params["batch_size"], shuffle_seed=settings.seed,
                         repeat=steps is not None),
            epochs=settings.max_epochs,
            steps_per_epoch=steps,
            class_weight=weights,
            callbacks=callbacks,
            shuffle=False,  # the dataset shuffles itself, seeded
            verbose=0,
        )
    except Exception as exc:  # optuna.TrialPruned included
        exc.curves = epoch_log.curves
        raise
    return epoch_log.curves

def tune(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    spec: DatasetSpec,
    *,
    settings: tuning.TuningSettings,
    worker: int = 0,
    pipeline_run: str = "",
    heartbeat_interval: float | None = None,
    grace_period: float | None = None,
) -> StudyRun:
    """Run this process's share of the study: trials until it holds `settings.n_trials`."""
    train, validation = tuning_rows(train, validation, spec.target, seed=settings.seed)
    return _tune_prepared(prepare(train, validation, spec), len(train), settings=settings, worker=worker,
                          pipeline_run=pipeline_run, heartbeat_interval=heartbeat_interval, grace_period=grace_period)

def _tune_prepared(data: PreparedData, train_rows: int, *, settings: tuning.TuningSettings, worker: int,
                   pipeline_run: str, heartbeat_interval: float | None, grace_period: float | None) -> StudyRun:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    storage = tuning_storage.open_storage(
        settings.storage_url,
        heartbeat_interval=heartbeat_interval or tuning_storage.HEARTBEAT_INTERVAL,
        grace_period=grace_period or tuning_storage.GRACE_PERIOD,
    )
    study_name = tuning.study_name_for(settings.study_name, pipeline_run)
    study = tuning.load_study(settings, storage, study_name=study_name)
    tracker = tuning_mlflow.MlflowTracker(settings.tracking_uri, study_name, settings) if settings.tracking_uri else None
    before = tuning.budget_state(study)
    where = f"study '{study_name}' in {tuning_storage.masked(settings.storage_url)}" if storage is not None else "an in-memory study"
    log.info(
        "tuning %s: %d of %d trials done already; %s objective %s, pruner %s, up to %d epochs per trial, "
        "%d training rows%s",
        where, before.counted, settings.n_trials, settings.direction, settings.objective, settings.pruner,
        settings.max_epochs, train_rows, f", worker {worker}" if worker else "",
    )
    objective = make_objective(data, settings, worker=worker, tracker=tracker, n_trials=settings.n_trials)
    ran = tuning.run_trials(study, objective, n_trials=settings.n_trials, timeout_seconds=settings.timeout_seconds)
    after = tuning.budget_state(study)
    log.info("tuning: this process ran %d trials; the study holds %d of %d", ran, after.counted, settings.n_trials)
    return StudyRun(study=study, study_name=study_name, settings=settings, ran=ran, counted=after.counted,
                    tracker=tracker)

def _class_weight(labels: np.ndarray, spec: DatasetSpec) -> dict[int, float] | None:
    return class_weights(labels, len(spec.classes))


def retrain(data: PreparedData, params: dict[str, Any], *, epochs: int, seed: int):
    """Fit a configuration on train + validation together; return the model and its curves."""
    full_x = {k: np.concatenate([data.train_x[k], data.val_x[k]]) for k in data.train_x}
    full_y = np.concatenate([data.train_y, data.val_y])
    set_seeds(seed)
    model = build_model(data.spec, full_x, params)
    epoch_log = trial_scores.epoch_log(None, None, None)
    import keras

    steps = steps_per_epoch(len(full_y), int(params["batch_size"]))
    progress.report("final training epochs", 0, epochs)
    shown = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: progress.report("final training epochs", epoch + 1, epochs))
    model.fit(make_dataset(full_x, full_y, params["batch_size"], shuffle_seed=seed, repeat=steps is not None),
              epochs=epochs, steps_per_epoch=steps, class_weight=_class_weight(full_y, data.spec),
              callbacks=[epoch_log, shown], shuffle=False, verbose=0)
    log.info("retrained the best configuration on %d rows for %d epochs%s", len(full_y), epochs,
             f" of {steps} steps" if steps else "")
    return model, epoch_log.curves

def retrain_streaming(data: PreparedData, params: dict[str, Any], *, epochs: int, seed: int, paths: list[str]):
    """Fit a configuration on every row of the Parquet files, streamed (`streaming`); the
    preprocessing (medians, scaling, vocabularies) and the class weights come from `data`,
    the samples tuning used."""
    sample_x = {k: np.concatenate([data.train_x[k], data.val_x[k]]) for k in data.train_x}
    sample_y = np.concatenate([data.train_y, data.val_y])
    set_seeds(seed)
    model = build_model(data.spec, sample_x, params)
    epoch_log = trial_scores.epoch_log(None, None, None)
    import keras

    progress.report("final training epochs", 0, epochs)
    shown = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: progress.report("final training epochs", epoch + 1, epochs))
    with warnings.catch_warnings():
        # The stream's length is unknown until its first epoch ends, which Keras 3 reports as
        # "Your input ran out of data"; every later epoch has that length.
        warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
        model.fit(streaming.parquet_dataset(paths, data.spec, int(params["batch_size"]), seed=seed), epochs=epochs,
                  class_weight=_class_weight(sample_y, data.spec), callbacks=[epoch_log, shown], shuffle=False,
                  verbose=0)
    rows = sum(streaming.count_rows(p) for p in paths)
    log.info("retrained the best configuration on %d rows streamed from %d files for %d epochs", rows, len(paths),
             epochs)
    return model, epoch_log.curves, rows


def tune_and_train(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    spec: DatasetSpec,
    *,
    settings: tuning.TuningSettings,
    export_dir: str | Path,
    pipeline_run: str = "",
    report_path: str | Path | None = None,
    heartbeat_interval: float | None = None,
    grace_period: float | None = None,
    stream_from: list[str] | None = None,
) -> TuningResult:
    """Tune with Optuna (seeded TPE, pruning, early stopping) until the study holds
    `settings.n_trials`, retrain the best configuration on train + validation, and export the
    SavedModel to `export_dir/<version>/` with the input schema and class labels.

    Trials use stratified samples of large splits (`budget`). With `stream_from` (the Parquet
    files of the whole training and validation splits, of which `train` and `validation` are
    samples) the final model trains on every row of the files, streamed.

    With `settings.storage_url` the study is loaded when it exists (a resumed run, or parallel
    workers that ran the trials already) and only the remaining trials run here.
    """
    tuned_train, tuned_validation = tuning_rows(train, validation, spec.target, seed=settings.seed)
    data = prepare(tuned_train, tuned_validation, spec)
    run = _tune_prepared(data, len(tuned_train), settings=settings, worker=0, pipeline_run=pipeline_run,
                         heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    study = run.study
    completed = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not completed:
        errors = sorted({t.user_attrs[tuning.ERROR_ATTR] for t in study.get_trials(deepcopy=False)
                         if tuning.ERROR_ATTR in t.user_attrs})
        reason = f": {errors[0]}" if errors else " (every trial was pruned or timed out)"
        raise LooplineError(f"tuning finished without a completed trial{reason}")
    best = study.best_trial
    log.info("best trial %d: validation %s %.4f", best.number, settings.objective, best.value)
    params = dict(best.params)
    epochs = int(best.user_attrs.get("best_epoch") or best.user_attrs.get("epochs") or settings.max_epochs)
    if stream_from:
        full_rows = sum(streaming.count_rows(p) for p in stream_from)
        epochs = final_epochs(epochs, tuned_rows=len(tuned_train) + len(tuned_validation), full_rows=full_rows)
        model, curves, final_rows = retrain_streaming(data, params, epochs=epochs, seed=settings.seed,
                                                      paths=stream_from)
    else:
        final_rows = len(train) + len(validation)
        sampled = len(tuned_train) < len(train) or len(tuned_validation) < len(validation)
        if sampled:  # the gradient steps of the best trial, over every row
            epochs = final_epochs(epochs, tuned_rows=len(tuned_train) + len(tuned_validation), full_rows=final_rows)
        model, curves = retrain(prepare(train, validation, spec) if sampled else data, params, epochs=epochs,
                                seed=settings.seed)
    decision = _decision_metadata(best, data)
    export_saved_model(model, spec, export_dir, params=params, decision=decision)
    trials = tuning.trial_summaries(study)
    result = TuningResult(
        best_params=params, best_value=float(best.value), trials=trials, export_dir=str(export_dir),
        objective=settings.objective, study_name=run.study_name, best_trial=best.number, epochs=epochs,
        trained_epochs=sum(t["epochs"] or 0 for t in trials), ran_here=run.ran, curves=curves,
        rows={"tuning_train": len(tuned_train), "tuning_validation": len(tuned_validation),
              "final_train": final_rows},
        decision=decision,
    )
    if report_path:
        tuning_report.report_html(study, settings=settings, study_name=run.study_name,
                           best_curves=best.user_attrs.get("curves", {}), final_curves=curves, path=report_path)
    if run.tracker:
        example = validation[list(spec.features)].head(3)
        result.model_uri = run.tracker.log_final(
            model_dir=str(export_dir), features=spec.features, classes=spec.classes,
            best={"metric": settings.objective, "value": result.best_value, "trial": best.number, "params": params,
                  "epochs": epochs, "study": run.study_name},
            curves=curves, input_example=example, report_path=str(report_path) if report_path else None,
        )
    return result


def _decision_metadata(best_trial, data: PreparedData) -> dict[str, Any]:
    """The decision threshold (binary: the best trial's, chosen on the validation split from its
    probabilities corrected for the class weights, as the exported model serves them) and the
    class weights training used, as the SavedModel's metadata keeps them."""
    weights = _class_weight(np.concatenate([data.train_y, data.val_y]), data.spec)
    out: dict[str, Any] = {"class_weight": weights}
    if weights:
        out["probabilities"] = "corrected for the class weights' prior shift (p_k / w_k, normalised)"
    if THRESHOLD_KEY in best_trial.user_attrs:
        out[THRESHOLD_KEY] = threshold_record(best_trial.user_attrs[THRESHOLD_KEY], data.spec.classes[1],
                                              rows=len(data.val_y))
        log.info("decision threshold %.4f (F1 of class '%s' on %d validation rows)",
                 out[THRESHOLD_KEY]["value"], data.spec.classes[1], len(data.val_y))
    return out
