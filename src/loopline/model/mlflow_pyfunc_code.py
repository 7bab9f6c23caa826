"""The MLflow pyfunc model of a Loopline SavedModel, saved as code ("models from code").

MLflow copies this file into every registered model and runs it when the model is loaded, so the
model loads and predicts wherever its own requirements are installed (MLflow, pandas, NumPy,
TensorFlow): it never imports `loopline`. Loopline itself never imports this module either.

The feeding follows the SavedModel contract (loopline.model.contract): one 1-D tensor per raw
feature, float32 with NaN for a missing number, a string with "" for a missing category; the
output is one probability per class. Integer columns are numbers like any other.
"""

import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

SAVED_MODEL_ARTIFACT = "saved_model"
METADATA_FILE = "loopline_model.json"
MISSING_TOKEN = ""


class LooplineSavedModel(mlflow.pyfunc.PythonModel):
    """Raw named feature columns in; one probability column per class out."""

    def load_context(self, context):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        root = Path(context.artifacts[SAVED_MODEL_ARTIFACT])
        self.metadata = json.loads((root / METADATA_FILE).read_text())
        versions = sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
        self._tf = tf
        self._fn = tf.saved_model.load(str(versions[-1])).signatures[self.metadata["signature"]]

    def predict(self, context, model_input, params=None):
        frame = pd.DataFrame(model_input)
        features = self.metadata["features"]
        missing = [name for name in features if name not in frame.columns]
        if missing:
            raise ValueError(f"input lacks feature columns: {', '.join(missing)}")
        tensors = {}
        for name, kind in features.items():
            col = frame[name]
            if kind == "numeric":
                numbers = pd.to_numeric(col, errors="coerce")
                bad = col[numbers.isna() & col.notna()]
                if len(bad):
                    raise ValueError(f"column '{name}' is numeric but holds {bad.iloc[0]!r}")
                values = numbers.to_numpy(dtype=np.float32)
            else:
                values = col.where(col.notna(), MISSING_TOKEN).astype(str).to_numpy(dtype=object)
            tensors[name] = self._tf.constant(values)
        proba = self._fn(**tensors)[self.metadata["output"]].numpy()
        return pd.DataFrame(proba, columns=[str(c) for c in self.metadata["classes"]])


mlflow.models.set_model(LooplineSavedModel())
