"""The `load_data` step: read a CSV/Parquet file, apply the dataset spec, split it."""

from __future__ import annotations

from loopline.data import tables as data_lib


def run(*, data_uri: str, target: str, train, validation, holdout, settings: data_lib.SplitSettings) -> None:
    """Read `data_uri`, apply the dataset spec, write the three splits with their metadata."""
    result = data_lib.load_and_split(data_uri, target=target, settings=settings, train_path=train.path,
                                     validation_path=validation.path, holdout_path=holdout.path)
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

