"""The SavedModel contract: what a Loopline model directory holds and how it is fed.

Training writes it; evaluation, the registry, serving and drift read it. A model directory is
laid out as TF Serving expects (`<dir>/<SERVING_VERSION>/saved_model.pb`) beside
`METADATA_FILE` (features, classes, target, signature, output, hyperparameters). Its
`serving_default` signature takes one 1-D tensor per raw feature: float32 for numeric (NaN for
missing), string for categorical ("" for missing), and returns `probabilities`. Its inputs are
named by the features' signature names (the metadata's `inputs`, `loopline.model.feature_names`);
`ServingModel` takes rows and frames by the user's column names.
TensorFlow is imported only when a model is loaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.core.errors import DataError
from loopline.data.plain_types import plain_series
from loopline.data.spec import DatasetSpec
from loopline.model.feature_names import model_inputs

MISSING_TOKEN = ""  # categorical missing values are fed as the empty string
SERVING_VERSION = "1"
METADATA_FILE = "loopline_model.json"


def to_feature_arrays(df: pd.DataFrame, spec: DatasetSpec) -> dict[str, np.ndarray]:
    """Raw features as the model takes them: float32 with NaN, or strings with "" for missing."""
    arrays: dict[str, np.ndarray] = {}
    for name in spec.numeric:
        arrays[name] = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float32)
    for name in spec.categorical:
        col = df[name]
        arrays[name] = col.where(col.notna(), MISSING_TOKEN).astype(str).to_numpy(dtype=object)
    return arrays


def encode_labels(df: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """The target column as class indices in the order of `spec.classes`."""
    index = {c: i for i, c in enumerate(spec.classes)}
    labels = df[spec.target].astype(str)
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise DataError(f"target column '{spec.target}' has classes not seen in training: {unknown[:5]}")
    return labels.map(index).to_numpy(dtype=np.int32)


def read_metadata(model_dir: str | Path) -> dict[str, Any]:
    """The model's metadata file; a directory without one is not a Loopline model."""
    meta_path = Path(model_dir) / METADATA_FILE
    if not meta_path.is_file():
        raise DataError(f"{model_dir} is not a Loopline model (no {METADATA_FILE})")
    return json.loads(meta_path.read_text())


class ServingModel:
    """A loaded Loopline SavedModel: raw rows in, class probabilities out."""

    def __init__(self, model_dir: str | Path):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        self._tf = tf
        root = Path(model_dir)
        self.metadata = read_metadata(root)
        versions = sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
        if not versions or not (versions[-1] / "saved_model.pb").is_file():
            raise DataError(f"{model_dir} holds no SavedModel version directory with saved_model.pb")
        self._loaded = tf.saved_model.load(str(versions[-1]))
        self._fn = self._loaded.signatures[self.metadata["signature"]]
        self.features: dict[str, str] = self.metadata["features"]
        self.inputs: dict[str, str] = model_inputs(self.metadata)  # feature name -> signature name
        self.classes: list[str] = self.metadata["classes"]

    def predict_rows(self, rows: list[dict[str, Any]]) -> np.ndarray:
        frame = pd.DataFrame.from_records(rows)
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise DataError(f"input rows lack feature columns: {', '.join(missing)}")
        return self.predict_frame(frame)

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        tf = self._tf
        tensors = {}
        for name, kind in self.features.items():
            if name not in frame.columns:
                raise DataError(f"column '{name}' is missing from the data the model was given")
            col = plain_series(frame[name])  # nullable and categorical types as plain ones
            if kind == "numeric":
                values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float32)
            else:
                values = col.where(col.notna(), MISSING_TOKEN).astype(str).to_numpy(dtype=object)
            tensors[self.inputs[name]] = tf.constant(values)
        return self._fn(**tensors)[self.metadata["output"]].numpy()
