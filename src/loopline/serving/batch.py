"""Batch prediction: score a CSV or Parquet dataset (a path, s3:// or gs://) with a registered
model version, and describe what the model predicted.

The version is a number or an alias (default `champion`). The output has one row per input row:
the row key when one is named, the predicted class, and one probability column per class
(`proba_<class>`). The distribution of the predictions (share of each predicted class, mean
probability of each class) is a set of metrics; with a reference dataset, the prediction drift
between the two (PSI and KS of the score, PSI and Jensen-Shannon distance of the class; the
same statistics as the drift monitor's) is added.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from loopline.core.errors import DataError, LooplineError
from loopline.core.home import model_cache_dir
from loopline.model import decision

log = logging.getLogger(__name__)

PREDICTED_CLASS = "predicted_class"
PROBA_PREFIX = "proba_"
BATCH_ROWS = 8192  # rows per TensorFlow call


@dataclass(frozen=True, kw_only=True)
class BatchSettings:
    """What `batch_predict` scores with and writes: the one declaration of these settings and their
    defaults. Checked on construction."""

    version: str = "champion"  # a version number or an alias
    key_column: str = ""  # copied from the input to each prediction row; empty for none
    reference_data_uri: str = ""  # scored the same way for the prediction drift; empty for none
    output_format: str = "parquet"  # or csv
    local_home: str = ""  # empty: $LOOPLINE_HOME or ./.loopline
    skip_without_model: bool = False  # no such version yet (a monitor before any champion): score nothing

    def __post_init__(self) -> None:
        if self.output_format not in FORMATS:
            raise DataError(f"output_format must be one of {', '.join(FORMATS)}, got '{self.output_format}'")
        if not str(self.version).strip():
            raise DataError("version is empty: give a version number or an alias such as 'champion'")


FORMATS = ("parquet", "csv")


@dataclass
class BatchResult:
    model_name: str
    version: str
    rows: int
    predictions: pd.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)


def resolve_version(tracking_uri: str, model_name: str, version: str) -> str:
    """A version number that exists, from a number or an alias; otherwise one line saying which."""
    from mlflow.exceptions import MlflowException

    from loopline import registry

    wanted = str(version or registry.CHAMPION)
    if wanted.isdigit():
        try:
            known = {v["version"] for v in registry.versions(tracking_uri, model_name)}
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise LooplineError(f"no registered model '{model_name}' at {registry.safe_uri(tracking_uri)}") from None
        if wanted not in known:
            raise LooplineError(f"model '{model_name}' has no version {wanted} (versions: {', '.join(sorted(known, key=int)) or 'none'})")
        return wanted
    found = registry.alias_version(tracking_uri, model_name, wanted)
    if not found:
        raise LooplineError(f"model '{model_name}' has no version with alias '{wanted}'")
    return str(found)


def score_frame(model, frame: pd.DataFrame, *, key_column: str = "", source: str = "the data") -> pd.DataFrame:
    """Predictions of a loaded ServingModel for `frame`, with the key column first when named."""
    missing = [name for name in model.features if name not in frame.columns]
    if missing:
        raise DataError(f"{source} lacks the model's feature columns: {', '.join(missing)}")
    if key_column and key_column not in frame.columns:
        raise DataError(f"{source} has no key column '{key_column}'")
    parts = [model.predict_frame(frame.iloc[i:i + BATCH_ROWS]) for i in range(0, len(frame), BATCH_ROWS)]
    proba = np.concatenate(parts) if parts else np.zeros((0, len(model.classes)))
    classes = np.asarray(model.classes, dtype=object)
    out = pd.DataFrame({f"{PROBA_PREFIX}{c}": proba[:, i].astype(np.float64) for i, c in enumerate(model.classes)})
    # the model's decision threshold (binary models), else the arg-max: the class holdout metrics count
    threshold = decision.stored_threshold(model.metadata)
    out.insert(0, PREDICTED_CLASS, classes[decision.classify(proba, threshold)] if len(proba) else [])
    if key_column:
        out.insert(0, key_column, frame[key_column].to_numpy())
    return out


def _score(predictions: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """The positive class's probability (two classes) or the top class's (more)."""
    proba = predictions[[f"{PROBA_PREFIX}{c}" for c in classes]].to_numpy()
    return proba[:, -1] if proba.shape[1] == 2 else proba.max(axis=1)


def distribution(predictions: pd.DataFrame, classes: list[str]) -> dict[str, float]:
    metrics: dict[str, float] = {"rows": float(len(predictions))}
    shares = predictions[PREDICTED_CLASS].astype(str).value_counts(normalize=True)
    for c in classes:
        metrics[f"predicted_share_{c}"] = float(shares.get(str(c), 0.0))
        metrics[f"mean_proba_{c}"] = float(predictions[f"{PROBA_PREFIX}{c}"].mean()) if len(predictions) else float("nan")
    return metrics


def prediction_drift(reference: pd.DataFrame, current: pd.DataFrame, classes: list[str]) -> dict[str, float]:
    from loopline import drift

    numeric = drift.numeric_statistics(_score(reference, classes), _score(current, classes))
    categorical = drift.categorical_statistics(reference[PREDICTED_CLASS].astype(str), current[PREDICTED_CLASS].astype(str))
    return {
        "prediction_score_psi": numeric["psi"],
        "prediction_score_ks_statistic": numeric["ks_statistic"],
        "prediction_class_psi": float(categorical["psi"]),
        "prediction_class_jensenshannon": float(categorical["jensenshannon"]),
    }


def predict(*, data_uri: str, tracking_uri: str, model_name: str, version: str = "champion", key_column: str = "",
            reference_data_uri: str = "", home: str | Path) -> BatchResult:
    """Score `data_uri` with a registered version; bad input fails before any model is loaded."""
    from loopline import registry
    from loopline.data import tables as data_lib
    from loopline.model.contract import ServingModel, read_metadata

    number = resolve_version(tracking_uri, model_name, version)
    frame = data_lib.read_table(data_uri)
    reference = data_lib.read_table(reference_data_uri) if reference_data_uri else None
    model_dir = registry.saved_model_dir(tracking_uri, model_name, number, model_cache_dir(Path(home), model_name, number))
    features = read_metadata(model_dir)["features"]
    for uri, table in ((data_uri, frame), (reference_data_uri, reference)):
        if table is not None:
            missing = [name for name in features if name not in table.columns]
            if missing:
                raise DataError(f"{uri} lacks the model's feature columns: {', '.join(missing)}")
    if key_column and key_column not in frame.columns:
        raise DataError(f"{data_uri} has no key column '{key_column}'")
    model = ServingModel(model_dir)
    predictions = score_frame(model, frame, key_column=key_column, source=data_uri)
    metrics = distribution(predictions, model.classes)
    if reference is not None:
        metrics.update(prediction_drift(score_frame(model, reference, source=reference_data_uri), predictions,
                                        model.classes))
    log.info("scored %d rows of %s with %s v%s", len(predictions), data_uri, model_name, number)
    return BatchResult(model_name, number, len(predictions), predictions, metrics)
