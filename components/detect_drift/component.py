"""KFP component: data drift between a reference and a current window.

The work is done by `loopline.executors.detect_drift` (src/loopline/executors/detect_drift.py).
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Markdown, Metrics, Output

from loopline.core.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def detect_drift(
    current_data_uri: str,
    target: str,
    report: Output[HTML],
    metrics: Output[Metrics],
    summary: Output[Markdown],
    table: Output[Artifact],
    reference_data_uri: str = "",
    tracking_uri: str = "",
    model_name: str = "",
    feature_kinds: dict = {},
    ignore_columns: list = [],
    drift_share: float = 0.5,
    numeric_test: str = "psi",
    categorical_test: str = "jensenshannon",
    thresholds: dict = {},
    critical_features: list = [],
    current_last_rows: int = 0,
    report_sample_rows: int = 50000,
) -> bool:
    """Compares the current window with the reference, feature by feature, on every row.

    Numeric features get PSI, KS and normed Wasserstein distance; categorical ones PSI,
    chi-squared and Jensen-Shannon; every feature its null-rate change. A feature drifts when
    its chosen test passes its threshold (or its null rate moves by more than 10 points); the
    dataset drifts when the share of drifted features reaches drift_share or a critical
    feature drifted.

    Args:
        current_data_uri: CSV or Parquet file of the current window.
        target: Label column; it is left out of the feature drift.
        reference_data_uri: CSV or Parquet file of the reference window; empty for the champion's training data.
        tracking_uri: MLflow tracking URI, to find the champion's training data.
        model_name: Registered model whose champion's training data is the default reference.
        feature_kinds: Optional kinds per column, "numeric" or "categorical".
        ignore_columns: Columns left out of the drift (ids, timestamps).
        drift_share: Share of drifted features at which the dataset counts as drifted.
        numeric_test: Test that judges numeric features: psi, ks or wasserstein.
        categorical_test: Test that judges categorical features: jensenshannon, chisquare or psi.
        thresholds: Thresholds per test, overriding psi 0.2, ks 0.05, wasserstein 0.1, jensenshannon 0.1, chisquare 0.05.
        critical_features: Features whose drift alone makes the dataset drifted.
        current_last_rows: Use only the last N rows of the current data; 0 for all.
        report_sample_rows: Rows per window given to Evidently for the visual report; 0 for all.

    Returns:
        report: Evidently HTML report, with Loopline's all-row verdicts at the top.
        metrics: Share of drifted features and each feature's drift score and PSI.
        summary: Markdown table of the most drifted features.
        table: JSON table of every feature's statistics and verdict.
        Output: True when the dataset drifted.
    """
    from loopline.core.logs import setup_logging
    from loopline.drift import DriftSettings
    from loopline.executors import detect_drift as executor

    setup_logging()
    settings = DriftSettings(
        drift_share=drift_share, numeric_test=numeric_test, categorical_test=categorical_test,
        thresholds=thresholds, critical_features=critical_features, feature_kinds=feature_kinds,
        ignore_columns=ignore_columns, current_last_rows=current_last_rows, report_sample_rows=report_sample_rows,
    )
    return executor.run(current_data_uri=current_data_uri, target=target, report=report, metrics=metrics,
                        summary=summary, table=table, reference_data_uri=reference_data_uri,
                        tracking_uri=tracking_uri, model_name=model_name, settings=settings)
