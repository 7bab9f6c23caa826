"""KFP component: validate the splits with a Great Expectations suite inferred from training data."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from loopline.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def validate_data(
    train: Input[Dataset],
    validation: Input[Dataset],
    holdout: Input[Dataset],
    report: Output[HTML],
    metrics: Output[Metrics],
    fail_on_error: bool = True,
) -> bool:
    """Infers an expectation suite from the training split and runs it on every split.

    The suite covers the column set, types, null fractions, numeric ranges and categorical
    value sets. With fail_on_error the step fails with a message naming each failed expectation.

    Args:
        train: Training split; the suite is inferred from it.
        validation: Validation split.
        holdout: Holdout split.
        fail_on_error: Fail the step when an expectation fails.

    Returns:
        report: HTML report of every expectation on every split.
        metrics: Counts of evaluated and failed expectations and the success percentage.
        Output: True when every expectation was met.
    """
    from loopline import steps

    steps.setup_logging()
    return steps.validate_data(
        train=train, validation=validation, holdout=holdout, report=report, metrics=metrics,
        fail_on_error=fail_on_error,
    )
