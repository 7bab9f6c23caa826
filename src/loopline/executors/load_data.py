"""The `load_data` step: check the run's parameters, read a CSV/Parquet file, apply the dataset
spec, split it."""

from __future__ import annotations

from typing import Any

from loopline.data import tables as data_lib
from loopline.ops import domains


def run(*, data_uri: str, target: str, train, validation, holdout, settings: data_lib.SplitSettings,
        run_parameters: dict[str, Any] | None = None) -> None:
    """Read `data_uri`, apply the dataset spec, write the three splits with their metadata.

    `run_parameters` are the parameters of the run's later steps (gate rules, model name, storage
    URI, deployment settings): checked against their rules first and against the data's columns
    before any split is written, so that a run that cannot succeed stops here, before training."""
    run_parameters = dict(run_parameters or {})
    domains.check(run_parameters)

    def check_spec(spec) -> None:
        domains.check_data(run_parameters, [*spec.features, spec.target], f"the features and target of {data_uri}")

    result = data_lib.load_and_split(data_uri, target=target, settings=settings, train_path=train.path,
                                     validation_path=validation.path, holdout_path=holdout.path, check_spec=check_spec)
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
