"""pandas' nullable and categorical types (`Int64`, `Float64`, `string`, `boolean`, `category`),
here in a Parquet file written from such a frame, read as their plain kinds in every step:
validation, drift, the run's checks, loading and training splits, batch prediction and serving.
Each step is compared with the same values read from a CSV file."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from kfp import dsl

from loopline import components, registry
from loopline.cli import app as cli
from loopline.core import logs
from loopline.data.demo import demo_transactions
from loopline.data.plain_types import plain_frame
from loopline.data.tables import SplitSettings, check_input, load_and_split, read_split, read_table
from loopline.model.contract import ServingModel

from .conftest import art


def nullable_frame(rows: int = 1200, seed: int = 11) -> pd.DataFrame:
    """The demo transactions in pandas' nullable types, a `category` column and a nullable
    boolean one; some values of each are missing."""
    frame = demo_transactions(rows, seed=seed)
    frame["weekend"] = (frame["hour"] % 7 < 2).astype(object)
    frame.loc[frame.index % 17 == 3, "weekend"] = None
    frame = frame.convert_dtypes()  # Int64, Float64, string, boolean
    frame["merchant_category"] = frame["merchant_category"].astype("category")
    frame["tx_last_24h"] = frame["tx_last_24h"].astype("Int64")
    frame.loc[frame.index % 23 == 5, "tx_last_24h"] = pd.NA
    frame["account_age_days"] = frame["account_age_days"].astype("Float64")
    return frame


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nullable")
    frame = nullable_frame()
    kinds = {str(t) for t in frame.dtypes}
    assert {"Int64", "Float64", "string", "boolean", "category"} <= kinds, kinds
    frame.to_parquet(folder / "nullable.parquet", index=False)
    frame.to_csv(folder / "plain.csv", index=False)
    assert str(pd.read_parquet(folder / "nullable.parquet")["merchant_category"].dtype) == "category"
    return {"parquet": folder / "nullable.parquet", "csv": folder / "plain.csv", "folder": folder}


def test_every_type_reads_as_the_same_values_from_csv(files):
    nullable, plain = read_table(str(files["parquet"])), read_table(str(files["csv"]))
    pd.testing.assert_frame_equal(nullable, plain)
    assert str(nullable["tx_last_24h"].dtype) == "float64" and str(nullable["transaction_id"].dtype) == "int64"
    assert nullable["weekend"].dtype == object and nullable["merchant_category"].dtype == object


def test_plain_kinds_of_each_type():
    frame = pd.DataFrame({
        "i": pd.array([1, 2, 3], dtype="Int64"), "i_na": pd.array([1, None, 3], dtype="Int64"),
        "b": pd.array([True, False, True], dtype="boolean"), "s": pd.array(["a", None, "c"], dtype="string"),
        "c_num": pd.Categorical([1.5, None, 2.5]), "c_int": pd.Categorical([1, 2, 1]),
        "c_text": pd.Categorical(["x", "y", None]), "f": pd.array([0.5, None, 1.5], dtype="Float64"),
        "t": pd.to_datetime(["2026-01-01", "2026-01-02", None]),
    })
    out = plain_frame(frame)
    assert {c: str(t) for c, t in out.dtypes.items()} == {
        "i": "int64", "i_na": "float64", "b": "bool", "s": "object", "c_num": "float64", "c_int": "int64",
        "c_text": "object", "f": "float64", "t": "datetime64[ns]"}
    assert out["s"].tolist()[::2] == ["a", "c"] and pd.isna(out["s"][1])
    assert out["c_text"].tolist()[:2] == ["x", "y"] and pd.isna(out["c_text"][2])
    assert plain_frame(out) is out  # plain frames pass through untouched


def test_validation_passes_the_file_against_itself(files, capsys):
    code = cli.main(["validate", "--reference", str(files["parquet"]), "--data", str(files["parquet"]), "--json"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and result["passed"] and not result["failures"], result
    cli.main(["validate", "--reference", str(files["csv"]), "--data", str(files["parquet"]), "--json"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["passed"]


def test_drift_reads_the_types_as_the_csv_reads_its_values(files, capsys):
    code = cli.main(["drift", "--reference", str(files["csv"]), "--current", str(files["parquet"]), "--json",
                     "--ignore", "transaction_id", "is_fraud"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and not result["drifted"], result
    assert set(result["features"]) >= {"merchant_category", "weekend", "tx_last_24h", "channel"}
    assert all(f["psi"] < 1e-9 for f in result["features"].values()), result["features"]


def test_the_runs_checks_and_the_splits_take_the_file(files, tmp_path):
    settings = SplitSettings(ignore_columns=["transaction_id"])
    spec = check_input(str(files["parquet"]), target="is_fraud", settings=settings)
    assert spec.features["merchant_category"] == "categorical" and spec.features["weekend"] == "categorical"
    assert spec.features["tx_last_24h"] == "numeric" and spec.classes == ["0", "1"]
    for name in ("parquet", "csv"):
        load_and_split(str(files[name]), target="is_fraud", settings=settings,
                       train_path=tmp_path / name / "train.parquet",
                       validation_path=tmp_path / name / "validation.parquet",
                       holdout_path=tmp_path / name / "holdout.parquet")
    for part in ("train", "validation", "holdout"):
        nullable, nullable_spec = read_split(tmp_path / "parquet" / f"{part}.parquet")
        plain, plain_spec = read_split(tmp_path / "csv" / f"{part}.parquet")
        pd.testing.assert_frame_equal(nullable, plain)  # training takes the same rows and values
        assert nullable_spec.features == plain_spec.features


def _as_nullable(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.convert_dtypes()
    out["merchant_category"] = out["merchant_category"].astype("category")
    out["channel"] = out["channel"].astype("category")
    return out


def test_serving_and_batch_prediction_score_the_types(trained_model, splits, tmp_path):
    holdout, spec = read_split(splits["holdout"])
    plain = holdout[list(spec.features)].head(200).reset_index(drop=True)
    nullable = _as_nullable(plain)
    assert any(isinstance(t, pd.CategoricalDtype) for t in nullable.dtypes)
    model = ServingModel(trained_model)
    expected = model.predict_frame(plain)
    np.testing.assert_allclose(model.predict_frame(nullable), expected, atol=1e-6)  # in-process serving, V2

    logs.quiet_libraries()
    home = tmp_path / "home"
    tracking_uri = registry.local_tracking_uri(home)
    registry.register(str(trained_model), tracking_uri=tracking_uri, model_name="fraud", pipeline_run="run-1",
                      tags={}, params={}, metrics={"roc_auc": 0.9}, input_example=plain.head(2))
    registry.set_alias(tracking_uri, "fraud", registry.CHAMPION, "1")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    pyfunc = mlflow.pyfunc.load_model("models:/fraud/1")  # the registered model, as a client loads it
    # MLflow's own schema check refuses `category` for a string column before the model is asked;
    # the nullable types reach the model, which reads them as plain ones
    np.testing.assert_allclose(pyfunc.predict(plain.convert_dtypes()).to_numpy(), expected, atol=1e-6)
    nullable.to_parquet(tmp_path / "batch.parquet", index=False)
    predictions, metrics = art(dsl.Dataset, tmp_path, "predictions"), art(dsl.Metrics, tmp_path, "metrics")
    components.batch_predict.python_func(
        data_uri=str(tmp_path / "batch.parquet"), tracking_uri=tracking_uri, model_name="fraud",
        predictions=predictions, metrics=metrics, local_home=str(home))
    out = pd.read_parquet(predictions.path)
    np.testing.assert_allclose(out[[f"proba_{c}" for c in spec.classes]].to_numpy(), expected, atol=1e-6)


def test_the_model_server_answers_rows_read_from_the_file(trained_model, splits, tmp_path):
    from loopline.serving import server as serving

    holdout, spec = read_split(splits["holdout"])
    plain = holdout[list(spec.features)].head(16).reset_index(drop=True)
    _as_nullable(plain).to_parquet(tmp_path / "rows.parquet", index=False)
    rows = read_table(str(tmp_path / "rows.parquet"))
    records = rows.astype(object).where(rows.notna(), None).to_dict(orient="records")
    json.dumps(records)  # plain values: JSON takes them (pandas' NA it does not)
    expected = ServingModel(trained_model).predict_frame(plain)
    info = serving.start_server(str(trained_model), model_name="fraud", version="1", log_dir=tmp_path)
    try:
        np.testing.assert_allclose(np.asarray(serving.predict(info, records)), expected, atol=1e-6)
    finally:
        serving.stop_server(info)
