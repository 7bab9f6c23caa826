"""KFP component: one worker of an Optuna study shared through an RDB storage.

The work is done by `loopline.executors.tune_model` (src/loopline/executors/tune_model.py).
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from loopline.core.images import TRAINER_IMAGE


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def tune_model(
    train: Input[Dataset],
    validation: Input[Dataset],
    metrics: Output[Metrics],
    storage_url: str,
    worker: int = 1,
    n_trials: int = 4,
    max_epochs: int = 15,
    timeout_seconds: float = 0.0,
    search_space: dict = {},
    seed: int = 42,
    objective: str = "roc_auc",
    pruner: str = "median",
    study_name: str = "",
    pipeline_run: str = "",
    tracking_uri: str = "",
):
    """Runs trials of a shared Optuna study until it holds n_trials; run several in a dsl.ParallelFor.

    Workers load the study by name from the storage (creating it if needed) and take trials until
    the study holds n_trials; a trial of a worker that died is marked failed after its heartbeat
    stops and replaced. train_model then retrains the best configuration.

    Args:
        train: Training split.
        validation: Validation split; the objective is measured on it.
        storage_url: Optuna RDB storage shared by the workers (sqlite:///path or postgresql://user@host/db).
        worker: This worker's number, recorded on the trials it runs.
        n_trials: Trials the study must hold in all workers together.
        max_epochs: Upper bound of epochs per trial.
        timeout_seconds: Wall-clock budget of this worker; 0 means no limit.
        search_space: Overrides of the default search space.
        seed: Seed of the sampler, the weights and the data order.
        objective: Validation metric to optimise: "roc_auc", "accuracy" or "log_loss".
        pruner: "median", "hyperband" or "none".
        study_name: Study name in the storage; empty derives it from pipeline_run.
        pipeline_run: The pipeline run's name (the pipeline passes its job name).
        tracking_uri: MLflow tracking URI for the study's runs; empty for none.

    Returns:
        metrics: Trials and epochs run by this worker, trials in the study, the study's best value.
    """
    from loopline.core.logs import setup_logging
    from loopline.executors import tune_model as executor
    from loopline.tuning.study import TuningSettings

    setup_logging()
    settings = TuningSettings(n_trials=n_trials, max_epochs=max_epochs, timeout_seconds=timeout_seconds,
                              search_space=search_space, seed=seed, objective=objective, pruner=pruner,
                              storage_url=storage_url, study_name=study_name, tracking_uri=tracking_uri)
    executor.run(train=train, validation=validation, metrics=metrics, settings=settings, worker=worker,
                 pipeline_run=pipeline_run)
