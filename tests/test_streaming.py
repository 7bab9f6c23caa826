"""Large splits: the stratified sample read in chunks, the streamed epochs, and a final model
trained on every row of the files while tuning used a sample."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from loopline.data.checks import build_spec
from loopline.data.demo import demo_transactions
from loopline.data.spec import conform
from loopline.data.tables import read_split, write_split
from loopline.tuning import streaming
from loopline.tuning.budget import stratified_sample

from .conftest import FAST_SEARCH_SPACE


@pytest.fixture(scope="module")
def split_files(tmp_path_factory):
    frame = demo_transactions(3000, seed=11)
    spec = build_spec(frame, target="is_fraud", ignore_columns=["transaction_id"])
    folder = tmp_path_factory.mktemp("stream")
    rows = conform(frame, spec)
    paths = {"train": folder / "train.parquet", "validation": folder / "validation.parquet"}
    write_split(rows.iloc[:2400], spec, paths["train"])
    write_split(rows.iloc[2400:], spec, paths["validation"])
    return paths, spec


def test_the_sample_read_in_chunks_is_the_stratified_sample_of_the_whole_split(split_files, monkeypatch):
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 256)  # many chunks
    paths, spec = split_files
    whole, _ = read_split(paths["train"])
    sample, sample_spec = streaming.read_sample(paths["train"], 500, seed=3)
    expected = stratified_sample(whole, spec.target, 500, seed=3).reset_index(drop=True)
    pd.testing.assert_frame_equal(sample, expected)
    assert sample_spec == spec
    small, _ = streaming.read_sample(paths["validation"], 10_000)
    assert len(small) == 600 and streaming.count_rows(paths["train"]) == 2400


def test_every_epoch_streams_every_row_once_in_a_new_order(split_files, monkeypatch):
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 300)
    monkeypatch.setattr(streaming, "WINDOW_CHUNKS", 2)
    paths, spec = split_files
    files = [paths["train"], paths["validation"]]

    def epoch(number):
        amounts, labels = [], []
        for features, y in streaming.batches(files, spec, 128, seed=1, epoch=number):
            assert all(v.shape == (len(y), 1) for v in features.values()) and len(y) <= 128
            amounts.append(features["amount"][:, 0])
            labels.append(y)
        return np.concatenate(amounts), np.concatenate(labels)

    first, labels = epoch(0)
    second, _ = epoch(1)
    whole = pd.concat([read_split(p)[0] for p in files])
    assert len(first) == len(whole) == 3000
    assert np.array_equal(np.sort(np.nan_to_num(first, nan=-1)), np.sort(np.nan_to_num(whole["amount"].to_numpy(dtype=np.float32), nan=-1)))
    assert labels.sum() == (whole["is_fraud"].astype(str) == spec.classes[1]).sum()
    assert not np.array_equal(np.nan_to_num(first), np.nan_to_num(second))  # reshuffled
    assert np.array_equal(np.nan_to_num(first), np.nan_to_num(epoch(0)[0]))  # seeded


def test_tuning_on_a_sample_and_the_final_model_on_every_row(split_files, monkeypatch, tmp_path):
    from loopline.model.contract import METADATA_FILE, ServingModel
    from loopline.tuning import study as tuning
    from loopline.tuning import training

    monkeypatch.setattr(training, "TUNING_SAMPLE_ROWS", 800)
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 512)
    paths, spec = split_files
    train, validation, read_spec = training.read_splits(str(paths["train"]), str(paths["validation"]), seed=2)
    assert (len(train), len(validation)) == (800, 600) and read_spec == spec
    settings = tuning.TuningSettings(n_trials=1, max_epochs=3, seed=2, search_space=FAST_SEARCH_SPACE)
    result = training.tune_and_train(
        train, validation, spec, settings=settings, export_dir=tmp_path / "m",
        stream_from=[str(paths["train"]), str(paths["validation"])],
    )
    assert result.rows == {"tuning_train": 800, "tuning_validation": 600, "final_train": 3000}
    assert len(result.curves["loss"]) == result.epochs and np.isfinite(result.curves["loss"]).all()
    holdout = demo_transactions(400, seed=12)
    proba = ServingModel(tmp_path / "m").predict_frame(holdout)
    assert proba.shape == (400, 2) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert "decision_threshold" in json.loads((tmp_path / "m" / METADATA_FILE).read_text())
