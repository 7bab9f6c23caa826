"""batch_predict on a real registered model: CSV, Parquet and s3:// input, the champion by default,
predictions as a Dataset and their distribution as Metrics; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kfp import dsl

from loopline import components, registry
from loopline.core import logs
from loopline.core.errors import DataError, LooplineError
from loopline.data.tables import read_split
from loopline.model.contract import ServingModel

from .conftest import art
from .test_version_uri import s3  # noqa: F401 - a fixture


@pytest.fixture(scope="module")
def model(trained_model, splits, tmp_path_factory):
    """Two registered versions of the trained model; `champion` points at version 2."""
    logs.quiet_libraries()
    home = tmp_path_factory.mktemp("batch") / "home"
    tracking_uri = registry.local_tracking_uri(home)
    holdout, spec = read_split(splits["holdout"])
    for run in ("run-1", "run-2"):
        registry.register(str(trained_model), tracking_uri=tracking_uri, model_name="fraud", pipeline_run=run,
                          tags={}, params={}, metrics={"roc_auc": 0.9}, input_example=holdout[list(spec.features)].head(2))
    registry.set_alias(tracking_uri, "fraud", registry.CHAMPION, "2")
    return {"home": home, "tracking_uri": tracking_uri}


@pytest.fixture(scope="module")
def batch(splits, tmp_path_factory):
    holdout, spec = read_split(splits["holdout"])
    frame = holdout[list(spec.features)].head(300).copy()
    frame.insert(0, "transaction_id", [f"t{i}" for i in range(len(frame))])
    folder = tmp_path_factory.mktemp("batch-data")
    frame.to_csv(folder / "batch.csv", index=False)
    frame.to_parquet(folder / "batch.parquet", index=False)
    return frame, folder


def _run(model, tmp_path, data_uri, **kwargs):
    predictions, metrics = art(dsl.Dataset, tmp_path, "predictions"), art(dsl.Metrics, tmp_path, "metrics")
    version = components.batch_predict.python_func(
        data_uri=str(data_uri), tracking_uri=model["tracking_uri"], model_name="fraud", predictions=predictions,
        metrics=metrics, local_home=str(model["home"]), **kwargs)
    return version, predictions, metrics


def test_scores_csv_with_the_champion_keyed_and_reports_the_distribution(model, batch, trained_model, tmp_path):
    frame, folder = batch
    version, predictions, metrics = _run(model, tmp_path, folder / "batch.csv", key_column="transaction_id")
    assert version == "2" and predictions.metadata["version"] == "2"
    out = pd.read_parquet(predictions.path)
    assert list(out.columns) == ["transaction_id", "predicted_class", "proba_0", "proba_1"]
    assert out["transaction_id"].tolist() == frame["transaction_id"].tolist()
    served = ServingModel(trained_model)
    expected = served.predict_frame(frame)
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), expected, atol=1e-6)
    # the class at the model's decision threshold (chosen on validation), as the holdout metrics count it
    threshold = served.metadata["decision_threshold"]["value"]
    predicted = (expected[:, 1] >= threshold).astype(int)
    assert out["predicted_class"].tolist() == np.asarray(["0", "1"])[predicted].tolist()
    logged = metrics.metadata
    assert logged["rows"] == 300 and logged["model_version"] == 2.0
    assert logged["predicted_share_0"] + logged["predicted_share_1"] == pytest.approx(1.0)
    assert logged["predicted_share_1"] == pytest.approx(float((predicted == 1).mean()), abs=1e-6)
    assert logged["mean_proba_1"] == pytest.approx(float(expected[:, 1].mean()), abs=1e-5)


def test_parquet_from_s3_with_a_version_number_and_a_reference(s3, model, batch, tmp_path):  # noqa: F811
    frame, folder = batch
    frame.to_parquet("s3://loopline-models/batch/current.parquet", index=False)
    frame.head(150).to_csv("s3://loopline-models/batch/reference.csv", index=False)
    version, predictions, metrics = _run(model, tmp_path, "s3://loopline-models/batch/current.parquet", version="1",
                                         reference_data_uri="s3://loopline-models/batch/reference.csv",
                                         output_format="csv")
    assert version == "1"
    out = pd.read_csv(predictions.path)
    assert len(out) == 300 and "transaction_id" not in out.columns
    assert 0.0 <= metrics.metadata["prediction_score_psi"] < 0.1  # the same population
    assert "prediction_class_jensenshannon" in metrics.metadata


def test_a_shifted_batch_shows_prediction_drift(model, batch, tmp_path):
    frame, folder = batch
    shifted = frame.copy()
    numeric = [c for c in frame.columns if c != "transaction_id" and pd.api.types.is_numeric_dtype(frame[c])]
    for c in numeric:
        shifted[c] = shifted[c] * 5 + 3
    shifted.to_parquet(folder / "shifted.parquet", index=False)
    _, _, metrics = _run(model, tmp_path, folder / "shifted.parquet", reference_data_uri=str(folder / "batch.parquet"))
    assert metrics.metadata["prediction_score_psi"] > 0.2


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"version": "9"}, LooplineError, "model 'fraud' has no version 9 (versions: 1, 2)"),
        ({"version": "blue"}, LooplineError, "model 'fraud' has no version with alias 'blue'"),
        ({"key_column": "order_id"}, DataError, "has no key column 'order_id'"),
        ({"output_format": "xlsx"}, DataError, "output_format must be one of parquet, csv, got 'xlsx'"),
    ],
)
def test_bad_arguments_are_one_line_errors(model, batch, tmp_path, kwargs, error, message):
    _, folder = batch
    with pytest.raises(error) as raised:
        _run(model, tmp_path, folder / "batch.csv", **kwargs)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert not (tmp_path / "predictions").exists()


def test_missing_feature_columns_are_named(model, batch, tmp_path):
    frame, folder = batch
    frame.drop(columns=["amount", "channel"]).to_csv(folder / "partial.csv", index=False)
    with pytest.raises(DataError) as raised:
        _run(model, tmp_path, folder / "partial.csv")
    assert str(raised.value).endswith("lacks the model's feature columns: amount, channel")
    assert "\n" not in str(raised.value)


def test_an_unknown_model_is_one_line(model, batch, tmp_path):
    _, folder = batch
    predictions, metrics = art(dsl.Dataset, tmp_path, "predictions"), art(dsl.Metrics, tmp_path, "metrics")
    with pytest.raises(LooplineError, match="^no registered model 'nope' at "):
        components.batch_predict.python_func(data_uri=str(folder / "batch.csv"), tracking_uri=model["tracking_uri"],
                                             model_name="nope", predictions=predictions, metrics=metrics, version="1",
                                             local_home=str(model["home"]))
    with pytest.raises(LooplineError, match="^model 'nope' has no version with alias 'champion'$"):
        components.batch_predict.python_func(data_uri=str(folder / "batch.csv"), tracking_uri=model["tracking_uri"],
                                             model_name="nope", predictions=predictions, metrics=metrics,
                                             local_home=str(model["home"]))


def test_the_drift_monitor_scores_the_current_window_with_the_champion():
    from loopline.cli.compile import pipeline_function

    spec = json.loads(json.dumps(_pipeline_spec(pipeline_function("drift_monitor"))))
    tasks = spec["root"]["dag"]["tasks"]
    branch = next(t for name, t in tasks.items() if name.startswith("condition") and "score" in json.dumps(t))
    component = spec["components"][branch["componentRef"]["name"]]
    (task,) = [t for t in component["dag"]["tasks"].values() if t["taskInfo"]["name"] == "batch-predict"]
    inputs = task["inputs"]["parameters"]
    assert inputs["version"]["runtimeValue"]["constant"] == "champion"
    assert inputs["data_uri"]["componentInputParameter"] == "pipelinechannel--current_data_uri"
    assert inputs["reference_data_uri"]["componentInputParameter"] == "pipelinechannel--reference_data_uri"


def _pipeline_spec(pipeline) -> dict:
    import tempfile

    import yaml
    from kfp import compiler

    with tempfile.NamedTemporaryFile(suffix=".yaml") as f:
        compiler.Compiler().compile(pipeline, f.name)
        return yaml.safe_load(Path(f.name).read_text())
