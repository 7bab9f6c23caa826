"""KFP component: validate the splits with a Great Expectations suite inferred from reference data.

The work is done by `loopline.executors.validate_data` (src/loopline/executors/validate_data.py).
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Output

from loopline.core.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def validate_data(
    train: Input[Dataset],
    validation: Input[Dataset],
    holdout: Input[Dataset],
    report: Output[HTML],
    metrics: Output[Metrics],
    summary: Output[Markdown],
    result: Output[Artifact],
    fail_on_error: bool = True,
    reference_data_uri: str = "",
    suite_uri: str = "",
    max_null_fraction: float = 0.1,
    skew_threshold: float = 0.1,
) -> bool:
    """Validates every split with a Great Expectations suite inferred from reference data.

    The suite covers the column set, types, null fractions, numeric ranges, finite values,
    categorical value sets, duplicate rows and row counts; a user suite file adds to it or
    overrides it. Each expectation is critical or warning. The outcome is pass, evolve (a new
    nullable column or new categories within tolerance) or block (a missing, retyped or extra
    column, a failed critical expectation, or a skew score above the threshold).

    Args:
        train: Training split; the suite is inferred from it unless reference_data_uri is given.
        validation: Validation split.
        holdout: Holdout split.
        fail_on_error: Fail the step when the outcome is block.
        reference_data_uri: CSV or Parquet file to infer the suite from instead of the training split.
        suite_uri: Great Expectations suite JSON whose expectations are added or override inferred ones.
        max_null_fraction: Largest null fraction allowed in a column without nulls in the reference.
        skew_threshold: Largest share of failed expectations that does not block.

    Returns:
        report: Great Expectations Data Docs of every split, viewable offline.
        metrics: Success percentage, skew score, rows and the counts of failed critical and warning expectations.
        summary: Markdown summary of the outcome, schema changes and failures.
        result: JSON result with the outcome, skew score, failures and every check, for other steps to read.
        Output: True unless the outcome is block.
    """
    from loopline.core.logs import setup_logging
    from loopline.executors import validate_data as executor
    from loopline.validation.validate import ValidationSettings

    setup_logging()
    settings = ValidationSettings(fail_on_error=fail_on_error, reference_data_uri=reference_data_uri,
                                  suite_uri=suite_uri, max_null_fraction=max_null_fraction,
                                  skew_threshold=skew_threshold)
    return executor.run(train=train, validation=validation, holdout=holdout, report=report, metrics=metrics,
                        summary=summary, result=result, settings=settings)
