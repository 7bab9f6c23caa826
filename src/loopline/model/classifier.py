"""The Keras classifier: its preprocessing inside the model (normalised numeric columns, looked-up
categorical ones, missing values in the graph), its input pipeline, and its export as a TF
Serving SavedModel with the serving signature of `loopline.model.contract`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from loopline.core.errors import DataError
from loopline.data.spec import DatasetSpec
from loopline.model.contract import (
    METADATA_FILE,
    MISSING_TOKEN,
    SERVING_VERSION,
)
from loopline.model.decision import weight_vector
from loopline.model.feature_names import INPUTS_KEY, rename, signature_names

log = logging.getLogger(__name__)


STEPS_PER_EXECUTION = 32

def set_seeds(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)

def build_model(spec: DatasetSpec, train_features: dict[str, np.ndarray], params: dict[str, Any]):
    """The Keras functional model: raw named inputs -> preprocessing -> MLP -> softmax. Its
    inputs and layers are named by the features' signature names (`loopline.model.feature_names`)."""
    import keras
    from keras import layers, ops

    inputs: dict[str, Any] = {}
    encoded = []
    internal = signature_names(spec.features)
    for name in spec.numeric:
        values = train_features[name]
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise DataError(f"numeric column '{name}' has no values in the training split")
        fill = float(np.median(finite))
        inp = keras.Input(shape=(1,), name=internal[name], dtype="float32")
        inputs[internal[name]] = inp
        missing = ops.cast(ops.logical_not(ops.isfinite(inp)), "float32")
        filled = ops.where(ops.isfinite(inp), inp, ops.full_like(inp, fill))
        norm = layers.Normalization(name=f"norm_{internal[name]}")
        norm.adapt(np.where(np.isfinite(values), values, fill).reshape(-1, 1))
        encoded.append(norm(filled))
        if (~np.isfinite(values)).any():
            encoded.append(missing)
    for name in spec.categorical:
        vocab = sorted({v for v in train_features[name] if v != MISSING_TOKEN})
        inp = keras.Input(shape=(1,), name=internal[name], dtype="string")
        inputs[internal[name]] = inp
        lookup = layers.StringLookup(
            vocabulary=vocab, num_oov_indices=1, mask_token=None, output_mode="one_hot",
            name=f"lookup_{internal[name]}"
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
        # several batches per call into TensorFlow: the same updates, far less Python per batch
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model

def as_model_inputs(features: dict[str, np.ndarray]) -> dict[str, Any]:
    """Column arrays (keyed by feature name) as the model's (rows, 1) tensors, keyed by signature
    name: strings as tf.string, numbers as float32."""
    import tensorflow as tf

    return rename({
        k: tf.constant(v.reshape(-1, 1).astype(str) if v.dtype == object else v.reshape(-1, 1))
        for k, v in features.items()
    })

def make_dataset(features: dict[str, np.ndarray], labels: np.ndarray | None, batch_size: int, *, shuffle_seed=None,
                 repeat: bool = False):
    import tensorflow as tf

    inputs = as_model_inputs(features)
    ds = tf.data.Dataset.from_tensor_slices(inputs if labels is None else (inputs, labels))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(next(iter(features.values()))), seed=shuffle_seed, reshuffle_each_iteration=True)
    if repeat:  # epochs of a fixed number of steps (small data: `budget.steps_per_epoch`)
        ds = ds.repeat()
    ds = ds.batch(int(batch_size))
    if tf.config.threading.get_intra_op_parallelism_threads() == 1:
        # a worker limited to one core (a tuning pod with a CPU limit of 1): batches are made in
        # the training thread; a prefetch thread would only take turns with it on the one core
        options = tf.data.Options()
        options.threading.private_threadpool_size = 1
        options.threading.max_intra_op_parallelism = 1
        options.autotune.enabled = False
        return ds.with_options(options)
    return ds.prefetch(2)

def export_saved_model(model, spec: DatasetSpec, export_dir: str | Path, *, params: dict[str, Any],
                       decision: dict[str, Any] | None = None) -> Path:
    """Export a TF Serving SavedModel whose signature takes one 1-D tensor per raw feature, named
    by its signature name (the metadata's `inputs` maps the features to them);
    `decision` (the decision threshold, the class weights) goes into its metadata. A model fitted
    with class weights serves probabilities corrected for them (`decision.unweight`)."""
    import tensorflow as tf
    from keras.export import ExportArchive

    weights = (decision or {}).get("class_weight")
    inverse = (tf.constant(1.0 / weight_vector(weights, len(spec.classes)), dtype=tf.float32)
               if weights else None)

    internal = signature_names(spec.features)
    signature = {
        internal[name]: tf.TensorSpec(shape=(None,), dtype=tf.float32 if kind == "numeric" else tf.string,
                                      name=internal[name])
        for name, kind in spec.features.items()
    }

    def serve(features):
        batch = {k: tf.reshape(v, (-1, 1)) for k, v in features.items()}
        proba = model(batch, training=False)
        if inverse is not None:  # undo the prior shift of the class weights, normalised per row
            proba = tf.cast(proba, tf.float32) * inverse
            proba = proba / tf.reduce_sum(proba, axis=1, keepdims=True)
        return {"probabilities": proba}

    archive = ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=[signature])
    target = Path(export_dir) / SERVING_VERSION
    target.parent.mkdir(parents=True, exist_ok=True)
    archive.write_out(str(target), verbose=False)
    metadata = {
        "features": spec.features,
        INPUTS_KEY: internal,
        "classes": spec.classes,
        "target": spec.target,
        "signature": "serving_default",
        "output": "probabilities",
        "params": params,
        **(decision or {}),
    }
    (Path(export_dir) / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    log.info("exported SavedModel to %s", target)
    return target
