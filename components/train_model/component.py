"""KFP component: Optuna-tuned Keras tabular classifier, exported as a TF Serving SavedModel."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from loopline.images import TRAINER_IMAGE


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def train_model(
    train: Input[Dataset],
    validation: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    n_trials: int = 4,
    max_epochs: int = 15,
    timeout_seconds: float = 0.0,
    search_space: dict = {},
    seed: int = 42,
):
    """Tunes a Keras classifier with Optuna and exports the best one, preprocessing included.

    The model normalises numeric columns, looks up categorical ones (with an out-of-vocabulary
    bucket) and handles missing values inside the graph, so it takes raw named features.

    Args:
        train: Training split.
        validation: Validation split; the tuning objective is its ROC AUC.
        n_trials: Number of Optuna trials.
        max_epochs: Upper bound of epochs per trial (early stopping and pruning cut it short).
        timeout_seconds: Wall-clock budget of the study; 0 means no limit.
        search_space: Overrides of the default search space, e.g. {"units": {"low": 16, "high": 64}}.
        seed: Seed of the sampler, the weights and the data order.

    Returns:
        model: SavedModel directory in TF Serving layout (<model>/1/saved_model.pb).
        metrics: Best validation AUC, number of trials and the best hyperparameters.
    """
    from loopline import steps

    steps.setup_logging()
    steps.train_model(
        train=train, validation=validation, model=model, metrics=metrics, n_trials=n_trials,
        max_epochs=max_epochs, timeout_seconds=timeout_seconds, search_space=search_space, seed=seed,
    )
