"""KFP component: holdout evaluation and the fail-closed threshold gate."""

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from loopline.images import TRAINER_IMAGE


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def evaluate_model(
    model: Input[Model],
    holdout: Input[Dataset],
    thresholds: dict,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[Markdown],
) -> bool:
    """Evaluates the model on the golden holdout and applies the gate.

    The gate fails closed: an empty thresholds mapping is an error, and a metric that cannot be
    computed fails its check.

    Args:
        model: SavedModel to judge.
        holdout: Holdout split.
        thresholds: Metric rules, e.g. {"roc_auc": 0.8, "log_loss": {"max": 0.4}}; a bare number is a floor (a ceiling for log_loss and brier).

    Returns:
        metrics: Holdout accuracy, precision, recall, F1, ROC AUC, log loss and Brier score.
        classification_metrics: Confusion matrix and ROC curve.
        report: Markdown gate report, one row per rule.
        Output: True when every gate passed.
    """
    from loopline import steps

    steps.setup_logging()
    return steps.evaluate_model(
        model=model, holdout=holdout, thresholds=thresholds, metrics=metrics,
        classification_metrics=classification_metrics, report=report,
    )
