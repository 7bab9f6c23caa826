"""KFP component: Optuna-tuned Keras tabular classifier, exported as a TF Serving SavedModel.

The work is done by `loopline.executors.train_model` (src/loopline/executors/train_model.py).
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from loopline.core.images import TRAINER_IMAGE


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def train_model(
    train: Input[Dataset],
    validation: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    best_params: Output[Artifact],
    report: Output[HTML],
    n_trials: int = 4,
    max_epochs: int = 15,
    timeout_seconds: float = 0.0,
    search_space: dict = {},
    seed: int = 42,
    objective: str = "roc_auc",
    pruner: str = "median",
    storage_url: str = "",
    study_name: str = "",
    pipeline_run: str = "",
    tracking_uri: str = "",
):
    """Tunes a Keras classifier with Optuna, retrains the best on train + validation and exports it.

    The model normalises numeric columns, looks up categorical ones (with an out-of-vocabulary
    bucket) and handles missing values inside the graph, so it takes raw named features. With
    a storage URL the study is resumable and shared: this step runs only the trials the study
    still lacks (none when tune_model workers ran them all). An epoch is at least 50 gradient
    steps; splits above 20,000 rows are tuned on a stratified sample of 20,000 rows and the final
    model trains on every row, streamed from Parquet. Classes are weighed when the largest
    outnumbers the smallest by more than 3; a binary model stores a decision threshold chosen on
    the validation split (F1 of the positive class). The model directory also holds the drift
    monitor's reference profile.

    Args:
        train: Training split.
        validation: Validation split; the objective is measured on it.
        n_trials: Trials the study must hold (complete, pruned or failed), counting earlier runs and workers.
        max_epochs: Upper bound of epochs per trial (early stopping and pruning cut it short).
        timeout_seconds: Wall-clock budget of this step's tuning; 0 means no limit.
        search_space: Overrides of the default search space, e.g. {"units": {"low": 16, "high": 64}}.
        seed: Seed of the sampler, the weights and the data order.
        objective: Validation metric to optimise: "roc_auc" (default), "accuracy" (both maximised) or "log_loss" (minimised).
        pruner: "median", "hyperband" or "none".
        storage_url: Optuna RDB storage (sqlite:///path or postgresql://user@host/db; the password may come from $LOOPLINE_TUNING_STORAGE_PASSWORD); empty for in-memory.
        study_name: Study name in the storage; empty derives it from pipeline_run, so a rerun of the run resumes.
        pipeline_run: The pipeline run's name (the pipeline passes its job name).
        tracking_uri: MLflow tracking URI for a parent run of the study and a run per trial; empty for none.

    Returns:
        model: SavedModel directory in TF Serving layout (<model>/1/saved_model.pb), with its metadata (decision threshold, class weights) and reference_profile.json.
        metrics: Best validation objective, trial counts by state, epochs, final training figures, the best hyperparameters, the rows of each phase (rows_tuning_train, rows_tuning_validation, rows_final_train) and the decision threshold.
        best_params: JSON file with the best hyperparameters, objective, study and the final training curves.
        report: HTML (opens offline) with the optimization history, parameter importances, intermediate values and training curves.
    """
    from loopline.core.logs import setup_logging
    from loopline.executors import train_model as executor
    from loopline.tuning.study import TuningSettings

    setup_logging()
    settings = TuningSettings(n_trials=n_trials, max_epochs=max_epochs, timeout_seconds=timeout_seconds,
                              search_space=search_space, seed=seed, objective=objective, pruner=pruner,
                              storage_url=storage_url, study_name=study_name, tracking_uri=tracking_uri)
    executor.run(train=train, validation=validation, model=model, metrics=metrics, best_params=best_params,
                 report=report, settings=settings, pipeline_run=pipeline_run)
