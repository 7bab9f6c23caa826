"""The `tune_model` step: one worker of a study shared through its RDB storage."""

from __future__ import annotations

from loopline.core.errors import TuningConfigError
from loopline.tuning import study as tuning
from loopline.tuning import training


def run(*, train, validation, metrics, settings: tuning.TuningSettings, worker: int, pipeline_run: str) -> None:
    """One tuning worker: trials of the shared study until it holds `settings.n_trials` (no export)."""
    if not settings.storage_url:
        raise TuningConfigError(
            "tuning workers share their study through storage_url, which is empty: give a sqlite:/// or "
            "postgresql:// URL, or tune in train_model alone (no workers)"
        )
    train_df, val_df, spec = training.read_splits(train.path, validation.path, seed=settings.seed)
    study_run = training.tune(train_df, val_df, spec, settings=settings, worker=int(worker), pipeline_run=pipeline_run)
    mine = [t for t in study_run.study.get_trials(deepcopy=False) if t.user_attrs.get(tuning.WORKER_ATTR) == int(worker)]
    metrics.log_metric("trials_run_by_this_worker", study_run.ran)
    metrics.log_metric("trials_in_study", study_run.counted)
    metrics.log_metric("epochs_trained_by_this_worker", sum(t.user_attrs.get("epochs", 0) for t in mine))
    try:
        metrics.log_metric(f"study_best_{settings.objective}", round(float(study_run.study.best_value), 6))
    except ValueError:  # no completed trial yet
        pass

