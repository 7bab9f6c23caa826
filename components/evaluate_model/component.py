"""KFP component: holdout evaluation beside the champion, and the fail-closed gate.

The work is done by `loopline.executors.evaluate_model` (src/loopline/executors/evaluate_model.py).
"""

from kfp import dsl
from kfp.dsl import (
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
    Output,
)

from loopline.core.images import TRAINER_IMAGE


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def evaluate_model(
    model: Input[Model],
    holdout: Input[Dataset],
    thresholds: dict,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[Markdown],
    blessing: Output[Artifact],
    tracking_uri: str = "",
    model_name: str = "",
    train: Input[Dataset] = None,
) -> bool:
    """Evaluates the model on the golden holdout beside the current champion and a baseline, and applies the gate.

    Metrics: accuracy; precision, recall and F1 per class and macro; ROC AUC (one-vs-rest macro
    for multiclass); average precision (PR AUC); log loss; Brier score; the decision threshold
    the classes are counted with (a binary model's own, chosen on the validation split); p50/p95
    latency for single rows and batches; model size; per-slice metrics when a fairness slice column is set. The champion (alias `champion`
    of model_name) is downloaded and evaluated on the same holdout. The gate fails closed: no
    rule at all is an error, a metric that cannot be computed fails its rule, and a champion
    that cannot be loaded fails the gate unless allow_champion_load_failure is true. A baseline
    (logistic regression on the same features, fitted on the training split) is evaluated on
    the same holdout; the baseline rule, on by default, fails a challenger that is worse than it
    on roc_auc by more than 0.005.

    Args:
        model: SavedModel to judge (the challenger).
        holdout: Holdout split.
        thresholds: Gate rules. Metric rules alone, e.g. {"roc_auc": 0.8, "log_loss": {"max": 0.4}} (a bare number is a floor, a ceiling for lower-is-better metrics), or sections: {"absolute": {metric rules}, "relative": {"primary": "roc_auc", "min_improvement": 0.0, "min_improvement_relative": 0.01, "max_regression": {"log_loss": 0.02}, "max_regression_relative": {"accuracy": 0.01}}, "latency": {"max_single_row_p95_ms": 50, "max_batch_p95_ms": 500}, "fairness": {"slice_column": "channel", "max_demographic_parity_difference": 0.1, "max_auc_gap": 0.1, "min_slice_rows": 20}, "allow_champion_load_failure": false, "baseline": {"metric": "roc_auc", "tolerance": 0.005}}. Relative rules are skipped for the first model. The baseline rule is on by default; "baseline": false turns it off.
        tracking_uri: MLflow tracking URI where the champion is registered; empty to judge without a champion (then relative rules are an error).
        model_name: Registered model name whose `champion` alias is the model to beat.
        train: Training split the baseline is fitted on; required while the baseline rule is on.

    Returns:
        metrics: Holdout metrics of the challenger, of the champion prefixed champion_ and of the baseline prefixed baseline_.
        classification_metrics: Confusion matrix and ROC curve.
        report: Markdown gate report: one row per gate (metric, challenger, champion, baseline, threshold, verdict, reason), then the models' metrics, slices and the confusion matrix.
        blessing: JSON record of the verdict with the exact model URI, model and holdout SHA-256 it judged; registration checks it.
        Output: True when every gate passed.
    """
    from loopline.core.logs import setup_logging
    from loopline.evaluation.gate import GateSettings
    from loopline.executors import evaluate_model as executor

    setup_logging()
    settings = GateSettings(thresholds=thresholds, tracking_uri=tracking_uri, model_name=model_name)
    return executor.run(model=model, holdout=holdout, metrics=metrics, classification_metrics=classification_metrics,
                        report=report, blessing=blessing, settings=settings, train=train)
