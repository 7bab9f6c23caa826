"""KFP component: score a dataset with a registered model version.

The work is done by `loopline.executors.batch_predict` (src/loopline/executors/batch_predict.py).
"""

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from loopline.core.images import TRAINER_IMAGE


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def batch_predict(
    data_uri: str,
    tracking_uri: str,
    model_name: str,
    predictions: Output[Dataset],
    metrics: Output[Metrics],
    version: str = "champion",
    key_column: str = "",
    reference_data_uri: str = "",
    output_format: str = "parquet",
    local_home: str = "",
    skip_without_model: bool = False,
) -> str:
    """Scores a CSV or Parquet dataset with a registered model version and reports what it predicted.

    The data and the reference are read from a path, s3:// or gs://. Missing feature columns, a
    missing key column or a version that does not exist fail with one line before any scoring.

    Args:
        data_uri: CSV or Parquet file to score (path, s3:// or gs://).
        tracking_uri: MLflow tracking URI.
        model_name: Registered model name.
        version: Version number or alias of the registered model.
        key_column: Column copied from the input to each prediction row, to join them back; empty for none.
        reference_data_uri: Optional dataset scored the same way; its predictions are compared with these (prediction drift).
        output_format: "parquet" or "csv".
        local_home: Local state directory where model files are kept (default $LOOPLINE_HOME or ./.loopline).
        skip_without_model: When the version does not exist (a drift monitor before any champion), write no
            predictions and log why instead of failing.

    Returns:
        predictions: One row per input row: the key column when named, predicted_class, and proba_<class> per class.
        metrics: Rows, share of each predicted class, mean probability of each class, the version used and, with a reference, the prediction drift (PSI and KS of the score, PSI and Jensen-Shannon distance of the class).
        Output: The version number that scored the data (empty when skipped).
    """
    from loopline.core.logs import setup_logging
    from loopline.executors import batch_predict as executor
    from loopline.serving.batch import BatchSettings

    setup_logging()
    settings = BatchSettings(version=version, key_column=key_column, reference_data_uri=reference_data_uri,
                             output_format=output_format, local_home=local_home,
                             skip_without_model=skip_without_model)
    return executor.run(data_uri=data_uri, tracking_uri=tracking_uri, model_name=model_name,
                        predictions=predictions, metrics=metrics, settings=settings)
