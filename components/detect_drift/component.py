"""KFP component: data drift between a reference and a current window (Evidently)."""

from kfp import dsl
from kfp.dsl import HTML, Markdown, Metrics, Output

from loopline.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def detect_drift(
    reference_data_uri: str,
    current_data_uri: str,
    target: str,
    report: Output[HTML],
    metrics: Output[Metrics],
    summary: Output[Markdown],
    feature_kinds: dict = {},
    ignore_columns: list = [],
    drift_share: float = 0.5,
) -> bool:
    """Compares the current window with the reference using Evidently's DataDriftPreset.

    Args:
        reference_data_uri: CSV or Parquet file of the reference window (the training data).
        current_data_uri: CSV or Parquet file of the current window.
        target: Label column; it is left out of the feature drift.
        feature_kinds: Optional kinds per column, "numeric" or "categorical".
        ignore_columns: Columns left out of the drift (ids, timestamps).
        drift_share: Share of drifted features at which the dataset counts as drifted.

    Returns:
        report: Evidently HTML report.
        metrics: Share of drifted features and each feature's drift score.
        summary: Markdown table of the features, most drifted first.
        Output: True when the dataset drifted.
    """
    from loopline import steps

    steps.setup_logging()
    return steps.detect_drift(
        reference_data_uri=reference_data_uri, current_data_uri=current_data_uri, target=target,
        report=report, metrics=metrics, summary=summary, feature_kinds=feature_kinds,
        ignore_columns=ignore_columns, drift_share=drift_share,
    )
