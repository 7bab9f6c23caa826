"""The `evaluate_model` step: the model and the champion on the holdout, the fail-closed gate,
the report and the blessing."""

from __future__ import annotations

import logging
import tempfile

from loopline.core.errors import GateConfigError
from loopline.core.files import write_text
from loopline.core.logs import quiet_libraries
from loopline.data import tables as data_lib
from loopline.evaluation import baseline as baseline_lib
from loopline.evaluation import blessing as blessing_lib
from loopline.evaluation import evaluate as evaluation
from loopline.evaluation import gate as gate_config
from loopline.evaluation import metrics as holdout_metrics
from loopline.model.contract import encode_labels

log = logging.getLogger(__name__)


def run(*, model, holdout, metrics, classification_metrics, report, blessing,
        settings: gate_config.GateSettings, train=None) -> bool:
    """Judge the model on the holdout, beside the registered champion and a baseline fitted on
    the training split (`train`); write the report and the blessing. Returns whether the gate passed."""
    config, tracking_uri, model_name = settings.config, settings.tracking_uri, settings.model_name
    if config.baseline is not None and train is None:
        raise GateConfigError(
            "the baseline gate fits a logistic regression on the training split: connect train, "
            "or turn the rule off with thresholds {..., \"baseline\": false}"
        )
    holdout_df, spec = data_lib.read_split(holdout.path)
    holdout_sha256 = data_lib.file_sha256(holdout.path)
    log.info("judging %s on the holdout %s (%d rows)", model.uri, holdout.uri, len(holdout_df))
    result = holdout_metrics.evaluate_model_dir(
        model.path, holdout_df, spec, slice_column=config.slice_column, min_slice_rows=config.min_slice_rows,
        what="challenger",
    )
    champion = evaluation.Champion(status="not_looked_up")
    if tracking_uri and model_name:

        quiet_libraries()
        with tempfile.TemporaryDirectory(prefix="loopline-champion-") as workdir:
            champion = evaluation.evaluate_champion(
                tracking_uri=tracking_uri, model_name=model_name, holdout=holdout_df, spec=spec, workdir=workdir,
                slice_column=config.slice_column, min_slice_rows=config.min_slice_rows,
            )
    baseline = _evaluate_baseline(train, holdout_df, spec) if config.baseline is not None else None
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
    write_text(report.path,
               evaluation.gate_report_markdown(result, decision, model_uri=model.uri, holdout_sha256=holdout_sha256))
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
        gate_config=settings.thresholds,
    )
    blessing.metadata.update({"blessed": decision.passed, "model_uri": model.uri, "holdout_sha256": holdout_sha256,
                              "champion_version": champion_record.get("version", "")})
    return decision.passed



def _evaluate_baseline(train, holdout_df, spec) -> holdout_metrics.Evaluation:
    """The logistic-regression baseline, fitted on the training split, on the same holdout."""
    train_df, _ = data_lib.read_split(train.path)
    fitted = baseline_lib.fit_baseline(train_df, spec)
    result = holdout_metrics.evaluate_predictions(encode_labels(holdout_df, spec),
                                                  fitted.predict_proba(holdout_df), spec.classes)
    log.info("baseline (%s, %d training rows) on the holdout: %s", baseline_lib.NAME, fitted.rows,
             ", ".join(f"{k}={result.metrics[k]:.4f}" for k in ("roc_auc", "average_precision", "accuracy")))
    return result
