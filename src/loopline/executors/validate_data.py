"""The `validate_data` step: the splits against a Great Expectations suite; every output written
before a blocked outcome fails the step."""

from __future__ import annotations

import json

from loopline.core.errors import ValidationFailed
from loopline.core.files import write_text
from loopline.data import spec as dataset_spec
from loopline.data import tables as data_lib
from loopline.validation import report as validation_report
from loopline.validation import suite as validation_suite
from loopline.validation import validate as validation_lib


def run(*, train, validation, holdout, report, metrics, summary, result,
        settings: validation_lib.ValidationSettings) -> bool:
    """Validate the three splits against a suite inferred from the training split (or from
    `settings.reference_data_uri`), merged with the user's suite file; write every output, then
    fail when blocked and `settings.fail_on_error`."""
    reference_data_uri, suite_uri = settings.reference_data_uri, settings.suite_uri
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
        reference = dataset_spec.conform(raw, spec)
    user_suite = validation_suite.load_suite_file(suite_uri) if suite_uri else None
    outcome = validation_lib.validate_splits(
        frames, spec, settings=settings, report_path=report.path, fail_on_error=False, reference=reference,
        suite_expectations=user_suite,
    )
    metrics.log_metric("success_percent", outcome.success_percent)
    metrics.log_metric("skew_score", round(outcome.skew_score, 6))
    metrics.log_metric("rows", outcome.rows)
    metrics.log_metric("failed_critical", outcome.failed_critical)
    metrics.log_metric("failed_warning", outcome.failed_warning)
    metrics.log_metric("expectations_evaluated", outcome.evaluated)
    metrics.log_metric("expectations_failed", outcome.failed)
    write_text(summary.path, validation_report.summary_markdown(outcome))
    write_text(result.path, json.dumps(outcome.to_dict(), indent=1, default=str))
    for artifact in (report, result):
        artifact.metadata.update({"outcome": outcome.outcome, "passed": outcome.passed,
                                  "skew_score": round(outcome.skew_score, 6)})
    if not outcome.passed and settings.fail_on_error:
        raise ValidationFailed(f"data validation failed ({outcome.outcome}): {outcome.failure_summary()}")
    return outcome.passed

