"""KFP component: read a dataset (CSV/Parquet file, Parquet folder or prefix, SQL table) and split it into train / validation / holdout.

The work is done by `loopline.executors.load_data` (src/loopline/executors/load_data.py).
"""

from kfp import dsl
from kfp.dsl import Dataset, Output

from loopline.core.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def load_data(
    data_uri: str,
    target: str,
    train: Output[Dataset],
    validation: Output[Dataset],
    holdout: Output[Dataset],
    feature_kinds: dict = {},
    ignore_columns: list = [],
    validation_fraction: float = 0.15,
    holdout_fraction: float = 0.15,
    seed: int = 42,
    thresholds: dict = {},
    tracking_uri: str = "",
    model_name: str = "",
    storage_uri: str = "",
    partition_filter: str = "",
):
    """Reads a dataset, applies the dataset spec and splits it deterministically.

    The run's later settings it is given (gate rules, model name, storage URI) are checked first,
    so that a run that cannot succeed stops before anything is trained.

    Args:
        data_uri: Path or URI (file://, gs://, s3://) of a CSV or Parquet file; a folder, prefix or glob of
            Parquet files (Hive partitions such as dt=2026-12-01/ become columns); or a SQL table or query,
            postgresql://host/db?table=NAME or ?query=SELECT... (password from PGPASSWORD or
            ?password_env=VARIABLE, never in the URI).
        target: Name of the label column.
        feature_kinds: Optional kinds per column, "numeric" or "categorical"; others are inferred.
        ignore_columns: Columns that are neither features nor the target (ids, timestamps).
        validation_fraction: Share of rows for the validation split, stratified by target.
        holdout_fraction: Share of rows for the golden holdout split, stratified by target.
        seed: Seed of the split.
        thresholds: The run's gate rules (evaluate_model), checked against the data's columns before any split is written; empty: none.
        tracking_uri: The run's MLflow tracking URI, for checking relative gate rules; empty: none.
        model_name: The run's registered model name, checked against MLflow's naming rules; empty: none.
        storage_uri: The run's model storage prefix (deploy_model), checked for a scheme; empty: none.
        partition_filter: Rows to read, e.g. "dt >= 2026-11-01 and region = eu"; pushed down to the
            Parquet partitions (other partitions are not read) or to the database's WHERE clause.

    Returns:
        train: Training split (Parquet, with the dataset spec in its metadata).
        validation: Validation split used for tuning.
        holdout: Holdout split used only by evaluation.
    """
    from loopline.core.logs import setup_logging
    from loopline.data.tables import SplitSettings
    from loopline.executors import load_data as executor

    setup_logging()
    settings = SplitSettings(feature_kinds=feature_kinds, ignore_columns=ignore_columns,
                             validation_fraction=validation_fraction, holdout_fraction=holdout_fraction, seed=seed,
                             partition_filter=partition_filter)
    later = {"thresholds": thresholds, "tracking_uri": tracking_uri, "model_name": model_name, "storage_uri": storage_uri}
    executor.run(data_uri=data_uri, target=target, train=train, validation=validation, holdout=holdout,
                 settings=settings, run_parameters={k: v for k, v in later.items() if v})
