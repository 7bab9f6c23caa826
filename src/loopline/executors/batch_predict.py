"""The `batch_predict` step: score a dataset with a registered version, write the predictions and
their distribution."""

from __future__ import annotations

from pathlib import Path

from loopline import batch
from loopline.files import write_text
from loopline.home import loopline_home
from loopline.logs import quiet_libraries


def run(*, data_uri: str, tracking_uri: str, model_name: str, predictions, metrics,
        settings: batch.BatchSettings) -> str:
    """Score `data_uri`; returns the version number that scored it."""
    quiet_libraries()
    result = batch.predict(data_uri=data_uri, tracking_uri=tracking_uri, model_name=model_name,
                           version=settings.version, key_column=settings.key_column,
                           reference_data_uri=settings.reference_data_uri, home=loopline_home(settings.local_home))
    Path(predictions.path).parent.mkdir(parents=True, exist_ok=True)
    if settings.output_format == "parquet":
        result.predictions.to_parquet(predictions.path, index=False)
    else:
        write_text(predictions.path, result.predictions.to_csv(index=False))
    predictions.metadata.update({"model_name": model_name, "version": result.version, "rows": result.rows,
                                 "format": settings.output_format, "data_uri": data_uri,
                                 "key_column": settings.key_column})
    for name, value in result.metrics.items():
        metrics.log_metric(name, round(float(value), 6))
    metrics.log_metric("model_version", float(result.version))
    return result.version
