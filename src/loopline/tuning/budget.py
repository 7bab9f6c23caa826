"""A training budget that fits the data: enough gradient steps on small data, a sample to tune
on for large data.

- Small data: an epoch is at least `MIN_STEPS_PER_EPOCH` gradient steps. A split smaller than
  that many batches is repeated (reshuffled) within the epoch, so `max_epochs` epochs of 240
  rows at batch 64 are 15 x 50 = 750 steps rather than 60.
- Large data: tuning trials train on a stratified sample of at most `TUNING_SAMPLE_ROWS`
  training rows (and as many validation rows); the final model trains on every row, for the
  gradient steps the best trial took on the sample (`final_epochs`), and at least one pass.
"""

from __future__ import annotations

import logging
import math

import pandas as pd

from loopline.core.errors import DataError

log = logging.getLogger(__name__)

MIN_STEPS_PER_EPOCH = 50
TUNING_SAMPLE_ROWS = 20_000


def steps_per_epoch(rows: int, batch_size: int) -> int | None:
    """Gradient steps of one epoch when a pass over `rows` is too short, else None (one pass)."""
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
    passes = math.ceil(rows / batch_size)
    return MIN_STEPS_PER_EPOCH if passes < MIN_STEPS_PER_EPOCH else None


def stratified_sample(frame: pd.DataFrame, target: str, rows: int, *, seed: int = 42) -> pd.DataFrame:
    """At most `rows` rows of `frame`, every class of `target` in its share (at least one row of
    each class), in the frame's order; the frame itself when it is small enough."""
    if rows < 1:
        raise DataError(f"the tuning sample needs at least 1 row, got {rows}")
    if len(frame) <= rows:
        return frame
    if target not in frame.columns:
        raise DataError(f"the split lacks the target column '{target}'")
    share = rows / len(frame)
    parts = []
    for _, group in frame.groupby(frame[target].astype(str), sort=True):
        take = max(1, round(len(group) * share))
        parts.append(group.sample(n=min(take, len(group)), random_state=seed))
    return pd.concat(parts).sort_index()


def tuning_rows(train: pd.DataFrame, validation: pd.DataFrame, target: str, *, cap: int | None = None,
                seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training and validation rows tuning trials use: stratified samples above `cap`
    (default `TUNING_SAMPLE_ROWS`)."""
    cap = TUNING_SAMPLE_ROWS if cap is None else cap
    sampled_train = stratified_sample(train, target, cap, seed=seed)
    sampled_validation = stratified_sample(validation, target, cap, seed=seed)
    if len(sampled_train) < len(train) or len(sampled_validation) < len(validation):
        log.info("tuning on a stratified sample: %d of %d training rows, %d of %d validation rows",
                 len(sampled_train), len(train), len(sampled_validation), len(validation))
    return sampled_train, sampled_validation


def final_epochs(tuned_epochs: int, *, tuned_rows: int, full_rows: int) -> int:
    """Epochs of the final training on `full_rows` rows: as many gradient steps as `tuned_epochs`
    epochs took on the `tuned_rows` rows of the sample (rounded up), and at least one epoch."""
    if tuned_rows < 1 or full_rows < 1:
        raise DataError(f"rows must be positive, got {tuned_rows} tuned and {full_rows} in all")
    return max(1, math.ceil(tuned_epochs * tuned_rows / full_rows))
