"""The training budget: steps per epoch on small data, the stratified tuning sample on large data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopline.core.errors import DataError
from loopline.tuning.budget import (
    MIN_STEPS_PER_EPOCH,
    steps_per_epoch,
    stratified_sample,
    tuning_rows,
)


def test_small_splits_get_a_minimum_of_steps_per_epoch():
    assert steps_per_epoch(240, 64) == MIN_STEPS_PER_EPOCH  # 4 batches a pass: repeated to 50 steps
    assert steps_per_epoch(64 * MIN_STEPS_PER_EPOCH, 64) is None  # one pass is enough
    assert steps_per_epoch(64 * MIN_STEPS_PER_EPOCH - 64, 64) == MIN_STEPS_PER_EPOCH
    with pytest.raises(DataError, match="batch_size must be at least 1"):
        steps_per_epoch(100, 0)


def _frame(n: int, positives: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=n), "y": np.where(rng.random(n) < positives, "1", "0")})


def test_the_tuning_sample_keeps_every_class_share():
    frame = _frame(20_000, 0.03)
    sample = stratified_sample(frame, "y", 2_000, seed=5)
    assert abs(len(sample) - 2_000) <= 2 and sample.index.is_monotonic_increasing
    share = (frame["y"] == "1").mean()
    assert (sample["y"] == "1").mean() == pytest.approx(share, abs=0.001)
    assert sample.equals(stratified_sample(frame, "y", 2_000, seed=5))  # seeded
    # a class rarer than one row in the sample still has one
    rare = pd.concat([_frame(5_000, 0.0), pd.DataFrame({"x": [0.0], "y": ["1"]})], ignore_index=True)
    assert (stratified_sample(rare, "y", 100)["y"] == "1").sum() == 1


def test_small_splits_are_used_whole_and_bad_caps_are_errors():
    train, validation = _frame(300, 0.1), _frame(100, 0.1)
    same_train, same_validation = tuning_rows(train, validation, "y", cap=1_000)
    assert same_train is train and same_validation is validation
    small_train, small_validation = tuning_rows(train, validation, "y", cap=150)
    assert len(small_train) == 150 and small_validation is validation
    with pytest.raises(DataError, match="at least 1 row"):
        stratified_sample(train, "y", 0)
    with pytest.raises(DataError, match="lacks the target column 'label'"):
        stratified_sample(train, "label", 10)


def test_the_final_training_keeps_the_tuned_gradient_steps_and_sees_every_row():
    from loopline.tuning.budget import final_epochs

    assert final_epochs(12, tuned_rows=100_000, full_rows=1_000_000) == 2  # 1.2 passes, rounded up
    assert final_epochs(3, tuned_rows=100_000, full_rows=1_000_000) == 1  # at least one pass
    assert final_epochs(10, tuned_rows=1_000, full_rows=1_000) == 10
    with pytest.raises(DataError, match="rows must be positive"):
        final_epochs(3, tuned_rows=0, full_rows=10)
