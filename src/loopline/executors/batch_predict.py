"""The `batch_predict` step: score a dataset with a registered version, write the predictions and
their distribution."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from loopline.core.errors import LooplineError
from loopline.core.files import write_text
from loopline.core.home import loopline_home
from loopline.core.logs import quiet_libraries
from loopline.serving import batch

log = logging.getLogger(__name__)


def run(*, data_uri: str, tracking_uri: str, model_name: str, predictions, metrics,
        settings: batch.BatchSettings) -> str:
    """Score `data_uri`; returns the version number that scored it ("" when skipped)."""
    quiet_libraries()
    if settings.skip_without_model:
        try:
            batch.resolve_version(tracking_uri, model_name, settings.version)
        except LooplineError as exc:
            log.warning("not scoring %s: %s (nothing to compare predictions with yet)", data_uri, exc)
            _write(pd.DataFrame(), predictions, settings)
            predictions.metadata.update({"model_name": model_name, "version": "", "rows": 0, "skipped": str(exc)})
            metrics.log_metric("rows", 0.0)
            return ""
    result = batch.predict(data_uri=data_uri, tracking_uri=tracking_uri, model_name=model_name,
                           version=settings.version, key_column=settings.key_column,
                           reference_data_uri=settings.reference_data_uri, home=loopline_home(settings.local_home))
    _write(result.predictions, predictions, settings)
    predictions.metadata.update({"model_name": model_name, "version": result.version, "rows": result.rows,
                                 "format": settings.output_format, "data_uri": data_uri,
                                 "key_column": settings.key_column})
    for name, value in result.metrics.items():
        metrics.log_metric(name, round(float(value), 6))
    metrics.log_metric("model_version", float(result.version))
    return result.version


def _write(frame: pd.DataFrame, predictions, settings: batch.BatchSettings) -> None:
    Path(predictions.path).parent.mkdir(parents=True, exist_ok=True)
    if settings.output_format == "parquet":
        frame.to_parquet(predictions.path, index=False)
    else:
        write_text(predictions.path, frame.to_csv(index=False))
