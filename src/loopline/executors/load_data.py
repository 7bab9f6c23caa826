"""The `load_data` step: read a CSV/Parquet file, apply the dataset spec, split it."""

from __future__ import annotations

from loopline import data as data_lib


def run(
    *,
    data_uri: str,
    target: str,
    train,
    validation,
    holdout,
    feature_kinds: dict | None = None,
    ignore_columns: list | None = None,
    validation_fraction: float = 0.15,
    holdout_fraction: float = 0.15,
    seed: int = 42,
) -> None:
    result = data_lib.load_and_split(
        data_uri,
        target=target,
        train_path=train.path,
        validation_path=validation.path,
        holdout_path=holdout.path,
        feature_kinds=feature_kinds,
        ignore_columns=ignore_columns,
        validation_fraction=validation_fraction,
        holdout_fraction=holdout_fraction,
        seed=seed,
    )
    for name, artifact in (("train", train), ("validation", validation), ("holdout", holdout)):
        artifact.metadata.update(
            {
                "rows": result.rows[name],
                "format": "parquet",
                "target": result.spec.target,
                "source_uri": data_uri,
                "source_sha256": result.spec.source_sha256,
            }
        )

