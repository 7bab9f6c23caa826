"""KFP component: read a CSV/Parquet dataset and split it into train / validation / holdout.

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
):
    """Reads a CSV or Parquet file, applies the dataset spec and splits it deterministically.

    Args:
        data_uri: Path or URI (file://, gs://, s3://) of a CSV or Parquet file.
        target: Name of the label column.
        feature_kinds: Optional kinds per column, "numeric" or "categorical"; others are inferred.
        ignore_columns: Columns that are neither features nor the target (ids, timestamps).
        validation_fraction: Share of rows for the validation split, stratified by target.
        holdout_fraction: Share of rows for the golden holdout split, stratified by target.
        seed: Seed of the split.

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
                             validation_fraction=validation_fraction, holdout_fraction=holdout_fraction, seed=seed)
    executor.run(data_uri=data_uri, target=target, train=train, validation=validation, holdout=holdout,
                 settings=settings)
