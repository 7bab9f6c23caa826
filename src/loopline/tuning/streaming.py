"""Large splits without holding them in memory: a stratified sample read in chunks, and the final
training's batches streamed from the Parquet files through tf.data.

Memory stays bounded by the chunk size and the sample, not by the rows of the split: the
sample is chosen from the target column alone, then collected chunk by chunk; each epoch of the
final training reads the files again in chunks of `CHUNK_ROWS` rows and shuffles the rows of
every window of `WINDOW_CHUNKS` chunks anew. Splits keep the order of the source's rows, so a
source sorted (by time, by label) over many more rows than a window gives batches from one part
of it at a time; shuffle such a source before loading it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from loopline.core.errors import DataError
from loopline.data.spec import SPEC_KEY, DatasetSpec
from loopline.model.contract import MISSING_TOKEN
from loopline.model.feature_names import rename, signature_names
from loopline.tuning.budget import stratified_sample

log = logging.getLogger(__name__)

CHUNK_ROWS = 65_536
WINDOW_CHUNKS = 4


def _parquet(path: str | Path):
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise DataError(f"dataset file not found: {path}")
    return pq.ParquetFile(str(path))


def read_split_spec(path: str | Path) -> DatasetSpec:
    meta = _parquet(path).schema_arrow.metadata or {}
    if SPEC_KEY not in meta:
        raise DataError(f"{path} is not a Loopline dataset split (no spec in its metadata)")
    return DatasetSpec.from_json(meta[SPEC_KEY])


def count_rows(path: str | Path) -> int:
    return _parquet(path).metadata.num_rows


def read_sample(path: str | Path, rows: int, *, seed: int = 42) -> tuple[pd.DataFrame, DatasetSpec]:
    """A split, or a stratified sample of `rows` of its rows when it is larger, read chunk by chunk."""
    spec = read_split_spec(path)
    file = _parquet(path)
    total = file.metadata.num_rows
    if total <= rows:
        return file.read().to_pandas(), spec
    target = file.read(columns=[spec.target]).to_pandas()
    keep = np.sort(stratified_sample(target, spec.target, rows, seed=seed).index.to_numpy())
    parts, start = [], 0
    for batch in file.iter_batches(batch_size=CHUNK_ROWS):
        end = start + batch.num_rows
        lo, hi = np.searchsorted(keep, [start, end])
        if hi > lo:
            parts.append(batch.to_pandas().iloc[keep[lo:hi] - start])
        start = end
    sample = pd.concat(parts, ignore_index=True)
    log.info("read a stratified sample of %d of %d rows from %s", len(sample), total, path)
    return sample, spec


def _chunk_arrays(frame: pd.DataFrame, spec: DatasetSpec, index: dict[str, int]):
    features = {}
    for name in spec.numeric:
        features[name] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float32).reshape(-1, 1)
    for name in spec.categorical:
        col = frame[name]
        features[name] = col.where(col.notna(), MISSING_TOKEN).astype(str).to_numpy(dtype=object).reshape(-1, 1)
    labels = frame[spec.target].astype(str).map(index)
    if labels.isna().any():
        unknown = sorted(set(frame[spec.target].astype(str)) - set(index))[:5]
        raise DataError(f"target column '{spec.target}' has classes not seen in training: {unknown}")
    return features, labels.to_numpy(dtype=np.int32)


def batches(paths: list[str | Path], spec: DatasetSpec, batch_size: int, *, seed: int, epoch: int
            ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
    """One epoch of shuffled batches from the files: the rows of every window of
    `WINDOW_CHUNKS` chunks in a seeded random order, new every epoch."""
    rng = np.random.default_rng([seed, epoch])
    columns = [*spec.features, spec.target]
    index = {c: i for i, c in enumerate(spec.classes)}

    def windows():
        window = []
        for path in paths:
            for batch in _parquet(path).iter_batches(batch_size=CHUNK_ROWS, columns=columns):
                window.append(batch.to_pandas())
                if len(window) == WINDOW_CHUNKS:
                    yield pd.concat(window, ignore_index=True)
                    window = []
        if window:
            yield pd.concat(window, ignore_index=True)

    for frame in windows():
        features, labels = _chunk_arrays(frame, spec, index)
        order = rng.permutation(len(labels))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            yield {k: v[rows] for k, v in features.items()}, labels[rows]


def parquet_dataset(paths: list[str | Path], spec: DatasetSpec, batch_size: int, *, seed: int):
    """A tf.data dataset of (features, labels) batches streamed from the files, reshuffled every
    epoch; features as the model takes them ((rows, 1) float32 or string tensors, keyed by
    signature name)."""
    import tensorflow as tf

    internal = signature_names(spec.features)
    signature = (
        {internal[name]: tf.TensorSpec(shape=(None, 1), dtype=tf.float32 if kind == "numeric" else tf.string)
         for name, kind in spec.features.items()},
        tf.TensorSpec(shape=(None,), dtype=tf.int32),
    )
    epochs = iter(range(1 << 30))

    def generate():
        for features, labels in batches(paths, spec, int(batch_size), seed=seed, epoch=next(epochs)):
            yield rename(features), labels

    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(2)
