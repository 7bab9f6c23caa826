"""Any column name works: features named with spaces, dots, slashes, `<`, non-ASCII letters, a
name of the model's own layers and names that differ only in case are trained, exported, served
(V1 and V2, by the user's names, through the real KServe model server), batch-scored and
registered with an MLflow signature of the user's names."""

from __future__ import annotations

import json
import re
import urllib.error

import mlflow
import numpy as np
import pandas as pd
import pytest
from kfp import dsl

from loopline import components, registry
from loopline.core import logs
from loopline.data.tables import SplitSettings, load_and_split, read_split
from loopline.model import feature_names
from loopline.model.contract import ServingModel, read_metadata
from loopline.serving import server as serving
from loopline.tuning import study as tuning
from loopline.tuning.training import tune_and_train

from .conftest import FAST_SEARCH_SPACE, art, v2_inputs

ODD = {"hour of day": "numeric", "amount.usd": "numeric", "fee/tax": "numeric", "größe": "numeric",
       "a<b": "categorical", "Channel": "categorical", "channel": "categorical", "features": "numeric",
       "norm_amount": "numeric"}
# what TensorFlow takes as an op name, and Keras as a layer name (no `/`)
TF_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-]*")


def odd_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hour = rng.integers(0, 24, rows).astype(float)
    amount = rng.gamma(2.0, 50.0, rows)
    amount[rng.random(rows) < 0.05] = np.nan  # missing numbers travel as NaN / null
    channel = rng.choice(["web", "pos", "app"], rows)
    upper = rng.choice(["A", "B"], rows)
    score = 0.03 * (amount - 100) + (channel == "web") * 1.5 - (upper == "B") * 1.0 + rng.normal(0, 1, rows)
    score = np.where(np.isnan(score), 0.0, score)
    return pd.DataFrame({
        "hour of day": hour, "amount.usd": amount, "fee/tax": rng.normal(3, 1, rows),
        "größe": rng.normal(170, 10, rows), "a<b": rng.choice(["x", "y", None], rows), "Channel": upper,
        "channel": channel, "features": rng.normal(0, 1, rows), "norm_amount": rng.normal(0, 1, rows),
        "label": (score > np.median(score)).astype(int),
    })


def test_plain_names_stay_and_others_get_safe_distinct_names():
    assert feature_names.signature_name("amount") == "amount"
    assert feature_names.signature_name("Channel") == "Channel"
    names = feature_names.signature_names(ODD)
    assert set(names) == set(ODD)
    assert len(set(names.values())) == len(ODD)  # none meet, not even names that differ only in case
    for name, internal in names.items():
        assert TF_NAME.fullmatch(internal), (name, internal)
    assert feature_names.signature_names(reversed(list(ODD))) == names  # the same names in every model
    assert names["Channel"] != "Channel" and names["channel"] != "channel"  # TensorFlow's names ignore case
    for reserved in ("hour of day", "features", "norm_amount", "größe"):
        assert names[reserved] != reserved
    assert names["hour of day"].endswith("_hour_of_day") and names["größe"].endswith("_groe")


def test_a_model_exported_before_the_map_takes_its_features_by_their_own_names():
    assert feature_names.model_inputs({"features": {"amount": "numeric", "channel": "categorical"}}) == {
        "amount": "amount", "channel": "channel"}
    recorded = {"features": {"hour of day": "numeric"}, "inputs": {"hour of day": "f_1_hour_of_day"}}
    assert feature_names.model_inputs(recorded) == {"hour of day": "f_1_hour_of_day"}


@pytest.fixture(scope="module")
def odd_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd-names")
    odd_frame(900, seed=5).to_csv(folder / "odd.csv", index=False)
    paths = {name: folder / f"{name}.parquet" for name in ("train", "validation", "holdout")}
    load_and_split(str(folder / "odd.csv"), target="label", settings=SplitSettings(),
                   train_path=paths["train"], validation_path=paths["validation"], holdout_path=paths["holdout"])
    train, spec = read_split(paths["train"])
    validation, _ = read_split(paths["validation"])
    assert spec.features == ODD
    export = folder / "model"
    # the final training streams its batches from the split files, as large splits do
    tune_and_train(train, validation, spec, export_dir=export, settings=tuning.TuningSettings(
        n_trials=1, max_epochs=4, seed=3, search_space=FAST_SEARCH_SPACE),
        stream_from=[str(paths["train"]), str(paths["validation"])])
    holdout, _ = read_split(paths["holdout"])
    return {"dir": export, "spec": spec, "holdout": holdout, "folder": folder}


def _rows(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def test_the_model_takes_and_reports_the_users_names(odd_model):
    meta = read_metadata(odd_model["dir"])
    assert meta["features"] == ODD  # what people see: the user's names and kinds
    assert meta[feature_names.INPUTS_KEY] == feature_names.signature_names(ODD)
    model = ServingModel(odd_model["dir"])
    signature = model._fn.structured_input_signature[1]
    assert set(signature) == set(meta[feature_names.INPUTS_KEY].values())
    sample = odd_model["holdout"][list(ODD)].head(32)
    proba = model.predict_rows(_rows(sample))
    assert proba.shape == (32, 2) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(model.predict_frame(sample), proba, atol=1e-6)
    # the case of a name matters: the two channel columns are two features
    swapped = sample.rename(columns={"Channel": "channel", "channel": "Channel"})
    assert not np.allclose(model.predict_frame(swapped), proba, atol=1e-4)
    with pytest.raises(Exception, match="hour of day"):
        model.predict_rows(_rows(sample.drop(columns=["hour of day"])))


def test_the_kserve_server_answers_v1_and_v2_by_the_users_names(odd_model, tmp_path):
    sample = odd_model["holdout"][list(ODD)].head(12)
    expected = ServingModel(odd_model["dir"]).predict_frame(sample)
    info = serving.start_server(str(odd_model["dir"]), model_name="odd", version="1", log_dir=tmp_path)
    try:
        np.testing.assert_allclose(np.asarray(serving.predict(info, _rows(sample))), expected, atol=1e-6)
        v2 = serving._http_json(f"{info.url}/v2/models/odd/infer", {"inputs": v2_inputs(sample, ODD)})
        (output,) = v2["outputs"]
        np.testing.assert_allclose(np.asarray(output["data"]).reshape(12, 2), expected, atol=1e-6)
        with pytest.raises(urllib.error.HTTPError) as bad:
            serving.predict(info, _rows(sample.drop(columns=["fee/tax"])))
        assert bad.value.code == 400 and "fee/tax" in json.loads(bad.value.read())["error"]
    finally:
        serving.stop_server(info)


def test_registered_batch_scored_and_signed_by_the_users_names(odd_model, tmp_path):
    logs.quiet_libraries()
    home = tmp_path / "home"
    tracking_uri = registry.local_tracking_uri(home)
    holdout = odd_model["holdout"]
    registry.register(str(odd_model["dir"]), tracking_uri=tracking_uri, model_name="odd", pipeline_run="run-1",
                      tags={}, params={}, metrics={"roc_auc": 0.9}, input_example=holdout[list(ODD)].head(2))
    registry.set_alias(tracking_uri, "odd", registry.CHAMPION, "1")
    mlflow.set_tracking_uri(tracking_uri)
    downloaded = mlflow.artifacts.download_artifacts("models:/odd/1", dst_path=str(tmp_path / "model"))
    signature = mlflow.models.Model.load(downloaded).signature
    assert sorted(c.name for c in signature.inputs.inputs) == sorted(ODD)
    sample = holdout[list(ODD)].head(20)
    expected = ServingModel(odd_model["dir"]).predict_frame(sample)
    pyfunc = mlflow.pyfunc.load_model(downloaded)
    np.testing.assert_allclose(pyfunc.predict(sample).to_numpy(), expected, atol=1e-6)

    batch = holdout.head(50).copy()
    batch.insert(0, "row id", [f"r{i}" for i in range(len(batch))])
    batch.to_parquet(tmp_path / "batch.parquet", index=False)
    predictions, metrics = art(dsl.Dataset, tmp_path, "predictions"), art(dsl.Metrics, tmp_path, "metrics")
    components.batch_predict.python_func(
        data_uri=str(tmp_path / "batch.parquet"), tracking_uri=tracking_uri, model_name="odd", key_column="row id",
        predictions=predictions, metrics=metrics, local_home=str(home))
    out = pd.read_parquet(predictions.path)
    assert list(out.columns) == ["row id", "predicted_class", "proba_0", "proba_1"]
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy()[:20], expected, atol=1e-6)


def test_validation_and_drift_report_the_users_names(odd_model, capsys, tmp_path):
    from loopline.cli import app as cli

    csv = str(odd_model["folder"] / "odd.csv")
    # Channel and channel hold different values: each is checked against its own
    assert cli.main(["validate", "--reference", csv, "--data", csv, "--json", "--report", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["passed"]
    page = (tmp_path / "validation.html").read_text()
    assert "Channel__" not in page and "channel__" not in page and "hour of day" in page
    swapped = odd_model["folder"] / "swapped.csv"
    pd.read_csv(csv).rename(columns={"Channel": "channel", "channel": "Channel"}).to_csv(swapped, index=False)
    assert cli.main(["validate", "--reference", csv, "--data", str(swapped), "--json"]) == 1
    failures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["failures"]
    assert {f["column"] for f in failures if f["expectation"] == "expect_column_values_to_be_in_set"} == {
        "Channel", "channel"}
    shifted = odd_model["folder"] / "shifted.csv"
    frame = odd_frame(600, seed=9)
    frame["hour of day"] = frame["hour of day"] + 30
    frame.to_csv(shifted, index=False)
    assert cli.main(["drift", "--reference", csv, "--current", str(shifted), "--json", "--ignore", "label",
                     "--drift-share", "0.1", "--report", str(tmp_path / "drift"), "--model", str(odd_model["dir"])]) == 1
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(ODD) <= set(result["features"]) and result["features"]["hour of day"]["drifted"]
    page = (tmp_path / "drift" / "drift.html").read_text()
    internal = [n for n in feature_names.signature_names(ODD).values() if n.startswith("f_")]
    assert not [n for n in internal if n in page]  # the report shows the user's names, never the model's
