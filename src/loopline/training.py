"""Optuna-tuned Keras tabular classifier with its preprocessing inside the model.

The exported SavedModel has a `serving_default` signature that takes one 1-D tensor per raw
feature (float32 for numeric, string for categorical; NaN / "" mean missing) and returns
`probabilities` (batch x classes). It is laid out as TF Serving expects
(`<dir>/<version>/saved_model.pb`), so KServe's TensorFlow runtime serves it as is.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.data import DatasetSpec
from loopline.errors import DataError

log = logging.getLogger(__name__)

MISSING_TOKEN = ""  # categorical missing values are fed as the empty string
SERVING_VERSION = "1"
METADATA_FILE = "loopline_model.json"

DEFAULT_SEARCH_SPACE: dict[str, Any] = {
    "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
    "hidden_layers": {"low": 1, "high": 3},
    "units": {"low": 16, "high": 256, "log": True},
    "dropout": {"low": 0.0, "high": 0.5},
    "batch_size": {"choices": [64, 128, 256]},
}


@dataclass
class TuningResult:
    best_params: dict[str, Any]
    best_value: float
    trials: list[dict[str, Any]]
    export_dir: str


def _set_seeds(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)


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
    index = {c: i for i, c in enumerate(spec.classes)}
    labels = df[spec.target].astype(str)
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise DataError(f"target column '{spec.target}' has classes not seen in training: {unknown[:5]}")
    return labels.map(index).to_numpy(dtype=np.int32)


def build_model(spec: DatasetSpec, train_features: dict[str, np.ndarray], params: dict[str, Any]):
    """The Keras functional model: raw named inputs -> preprocessing -> MLP -> softmax."""
    import keras
    from keras import layers, ops

    inputs: dict[str, Any] = {}
    encoded = []
    for name in spec.numeric:
        values = train_features[name]
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise DataError(f"numeric column '{name}' has no values in the training split")
        fill = float(np.median(finite))
        inp = keras.Input(shape=(1,), name=name, dtype="float32")
        inputs[name] = inp
        missing = ops.cast(ops.logical_not(ops.isfinite(inp)), "float32")
        filled = ops.where(ops.isfinite(inp), inp, ops.full_like(inp, fill))
        norm = layers.Normalization(name=f"norm_{name}")
        norm.adapt(np.where(np.isfinite(values), values, fill).reshape(-1, 1))
        encoded.append(norm(filled))
        if (~np.isfinite(values)).any():
            encoded.append(missing)
    for name in spec.categorical:
        vocab = sorted({v for v in train_features[name] if v != MISSING_TOKEN})
        inp = keras.Input(shape=(1,), name=name, dtype="string")
        inputs[name] = inp
        lookup = layers.StringLookup(
            vocabulary=vocab, num_oov_indices=1, mask_token=None, output_mode="one_hot", name=f"lookup_{name}"
        )
        # missing ("") is out of vocabulary: it shares the OOV bucket with unseen categories
        encoded.append(lookup(inp))
    x = layers.Concatenate(name="features")(encoded) if len(encoded) > 1 else encoded[0]
    for i in range(int(params["hidden_layers"])):
        x = layers.Dense(int(params["units"]), activation="relu", name=f"dense_{i}")(x)
        if params["dropout"] > 0:
            x = layers.Dropout(float(params["dropout"]), name=f"dropout_{i}")(x)
    outputs = layers.Dense(len(spec.classes), activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="loopline_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=float(params["learning_rate"])),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _as_model_inputs(features: dict[str, np.ndarray]) -> dict[str, Any]:
    """Column arrays as (rows, 1) tensors: strings as tf.string, numbers as float32."""
    import tensorflow as tf

    return {
        k: tf.constant(v.reshape(-1, 1).astype(str) if v.dtype == object else v.reshape(-1, 1))
        for k, v in features.items()
    }


def _dataset(features: dict[str, np.ndarray], labels: np.ndarray | None, batch_size: int, *, shuffle_seed=None):
    import tensorflow as tf

    inputs = _as_model_inputs(features)
    ds = tf.data.Dataset.from_tensor_slices(inputs if labels is None else (inputs, labels))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(next(iter(features.values()))), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(int(batch_size)).prefetch(2)


def predict_proba(model, features: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(model.predict(_dataset(features, None, 1024), verbose=0))


def auc_score(labels: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if proba.shape[1] == 2:
        return float(roc_auc_score(labels, proba[:, 1]))
    return float(roc_auc_score(labels, proba, multi_class="ovr", average="macro", labels=list(range(proba.shape[1]))))


def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    params = {}
    for name, rng in space.items():
        if "choices" in rng:
            params[name] = trial.suggest_categorical(name, rng["choices"])
        elif isinstance(rng["low"], int) and isinstance(rng["high"], int) and name != "dropout":
            params[name] = trial.suggest_int(name, rng["low"], rng["high"], log=bool(rng.get("log", False)))
        else:
            params[name] = trial.suggest_float(name, float(rng["low"]), float(rng["high"]), log=bool(rng.get("log", False)))
    return params


def check_search_space(space: dict[str, Any]) -> dict[str, Any]:
    merged = {**DEFAULT_SEARCH_SPACE, **(space or {})}
    for name, rng in merged.items():
        if name not in DEFAULT_SEARCH_SPACE:
            raise ValueError(f"search_space: unknown hyperparameter '{name}' (known: {', '.join(DEFAULT_SEARCH_SPACE)})")
        if "choices" in rng:
            if not rng["choices"]:
                raise ValueError(f"search_space['{name}']: choices must not be empty")
            continue
        if rng["low"] > rng["high"]:
            raise ValueError(f"search_space['{name}']: low {rng['low']} is above high {rng['high']}")
        if rng.get("log") and rng["low"] <= 0:
            raise ValueError(f"search_space['{name}']: a log range needs low > 0, got {rng['low']}")
    return merged


def _fit(model, train_x, train_y, val_x, val_y, *, epochs: int, batch_size: int, callbacks: list, seed: int):
    import keras

    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True), *callbacks]
    return model.fit(
        _dataset(train_x, train_y, batch_size, shuffle_seed=seed),
        validation_data=_dataset(val_x, val_y, 1024),
        epochs=epochs,
        callbacks=callbacks,
        shuffle=False,  # the dataset shuffles itself, seeded
        verbose=0,
    )


def tune_and_train(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    spec: DatasetSpec,
    *,
    export_dir: str | Path,
    n_trials: int = 4,
    max_epochs: int = 15,
    timeout_seconds: float | None = None,
    search_space: dict[str, Any] | None = None,
    seed: int = 42,
) -> TuningResult:
    """Tune with Optuna (seeded TPE, median pruning), retrain the best on train + validation,
    export the SavedModel to `export_dir/<version>/` with the input schema and class labels."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be at least 1, got {max_epochs}")
    space = check_search_space(search_space or {})
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import optuna
    from optuna_integration import KerasPruningCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    train_x, val_x = to_feature_arrays(train, spec), to_feature_arrays(validation, spec)
    train_y, val_y = encode_labels(train, spec), encode_labels(validation, spec)

    def objective(trial) -> float:
        params = suggest(trial, space)
        _set_seeds(seed + trial.number)
        model = build_model(spec, train_x, params)
        started = time.perf_counter()
        history = _fit(
            model, train_x, train_y, val_x, val_y,
            epochs=max_epochs, batch_size=params["batch_size"],
            callbacks=[KerasPruningCallback(trial, "val_loss")], seed=seed,
        )
        value = auc_score(val_y, predict_proba(model, val_x))
        trial.set_user_attr("epochs", len(history.history["loss"]))
        log.info(
            "trial %d/%d: validation AUC %.4f after %d epochs in %.1fs, params %s",
            trial.number + 1, n_trials, value, len(history.history["loss"]), time.perf_counter() - started,
            {k: (round(v, 5) if isinstance(v, float) else v) for k, v in params.items()},
        )
        return value

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_warmup_steps=2),
    )
    log.info("tuning: %d trials, up to %d epochs each, %d training rows", n_trials, max_epochs, len(train))
    study.optimize(objective, n_trials=n_trials, timeout=timeout_seconds)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise RuntimeError("tuning finished without a completed trial")
    best = study.best_trial
    log.info("best trial %d: validation AUC %.4f", best.number, best.value)

    # Retrain the best configuration on train + validation, for as many epochs as it used.
    full = pd.concat([train, validation], ignore_index=True)
    full_x, full_y = to_feature_arrays(full, spec), encode_labels(full, spec)
    params = dict(best.params)
    _set_seeds(seed)
    model = build_model(spec, full_x, params)
    epochs = int(best.user_attrs.get("epochs", max_epochs))
    model.fit(_dataset(full_x, full_y, params["batch_size"], shuffle_seed=seed), epochs=epochs, shuffle=False, verbose=0)
    log.info("retrained best configuration on %d rows for %d epochs", len(full), epochs)
    export_saved_model(model, spec, export_dir, params=params)
    trials = [
        {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
         "epochs": t.user_attrs.get("epochs")}
        for t in study.trials
    ]
    return TuningResult(best_params=params, best_value=float(best.value), trials=trials, export_dir=str(export_dir))


def export_saved_model(model, spec: DatasetSpec, export_dir: str | Path, *, params: dict[str, Any]) -> Path:
    """Export a TF Serving SavedModel whose signature takes one 1-D tensor per raw feature."""
    import tensorflow as tf
    from keras.export import ExportArchive

    signature = {
        name: tf.TensorSpec(shape=(None,), dtype=tf.float32 if kind == "numeric" else tf.string, name=name)
        for name, kind in spec.features.items()
    }

    def serve(features):
        batch = {k: tf.reshape(v, (-1, 1)) for k, v in features.items()}
        return {"probabilities": model(batch, training=False)}

    archive = ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=[signature])
    target = Path(export_dir) / SERVING_VERSION
    target.parent.mkdir(parents=True, exist_ok=True)
    archive.write_out(str(target), verbose=False)
    metadata = {
        "features": spec.features,
        "classes": spec.classes,
        "target": spec.target,
        "signature": "serving_default",
        "output": "probabilities",
        "params": params,
    }
    (Path(export_dir) / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    log.info("exported SavedModel to %s", target)
    return target


class ServingModel:
    """A loaded Loopline SavedModel: raw rows in, class probabilities out."""

    def __init__(self, model_dir: str | Path):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        self._tf = tf
        root = Path(model_dir)
        meta_path = root / METADATA_FILE
        if not meta_path.is_file():
            raise DataError(f"{model_dir} is not a Loopline model (no {METADATA_FILE})")
        self.metadata = json.loads(meta_path.read_text())
        versions = sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
        if not versions or not (versions[-1] / "saved_model.pb").is_file():
            raise DataError(f"{model_dir} holds no SavedModel version directory with saved_model.pb")
        self._loaded = tf.saved_model.load(str(versions[-1]))
        self._fn = self._loaded.signatures[self.metadata["signature"]]
        self.features: dict[str, str] = self.metadata["features"]
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
            col = frame[name]
            if kind == "numeric":
                tensors[name] = tf.constant(pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float32))
            else:
                tensors[name] = tf.constant(col.where(col.notna(), MISSING_TOKEN).astype(str).to_numpy(dtype=object))
        return self._fn(**tensors)[self.metadata["output"]].numpy()
