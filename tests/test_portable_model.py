"""The registered MLflow model loads, predicts and is served by `mlflow models serve` where
loopline cannot be imported (a sitecustomize refuses it), with only the model's own requirements;
its signature requires every feature column and accepts integers for numeric features."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pytest

from loopline import registry
from loopline.core import logs, mlflow_store
from loopline.data.tables import read_split
from loopline.model.contract import ServingModel
from loopline.serving import server as serving

from .conftest import ROOT

BLOCKER = """
import sys


class _NoLoopline:
    def find_spec(self, name, path=None, target=None):
        if name == "loopline" or name.startswith("loopline."):
            raise ModuleNotFoundError(f"No module named '{name}' (loopline is not installed here)")
        return None


sys.meta_path.insert(0, _NoLoopline())
"""


@pytest.fixture(scope="module")
def registered(trained_model, splits, tmp_path_factory):
    """A version registered as the loop registers it, downloaded as a client would."""
    logs.quiet_libraries()
    home = tmp_path_factory.mktemp("portable")
    tracking_uri = registry.local_tracking_uri(home / "home")
    holdout, spec = read_split(splits["holdout"])
    registry.register(str(trained_model), tracking_uri=tracking_uri, model_name="fraud", pipeline_run="run-1",
                      tags={}, params={}, metrics={"roc_auc": 0.9}, input_example=holdout[list(spec.features)].head(2))
    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.artifacts.download_artifacts("models:/fraud/1", dst_path=str(home / "model"))


@pytest.fixture(scope="module")
def without_loopline(tmp_path_factory):
    folder = tmp_path_factory.mktemp("no-loopline")
    (folder / "sitecustomize.py").write_text(BLOCKER)
    # this environment's commands first: `mlflow models serve` starts `uvicorn` from PATH
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return {**os.environ, "PYTHONPATH": str(folder), "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": path}


def _probe(splits, n=16):
    holdout, spec = read_split(splits["holdout"])
    frame = holdout[list(spec.features)].head(n).copy()
    numeric = [c for c, kind in spec.features.items() if kind == "numeric"]
    return frame, numeric


def test_the_model_declares_its_requirements_and_not_loopline(registered):
    text = (ROOT / "requirements.lock").read_text().lower().replace("_", "-")
    with open(os.path.join(registered, "requirements.txt")) as f:
        requirements = f.read()
    assert "loopline" not in requirements
    for pin in mlflow_store.MODEL_REQUIREMENTS:
        assert pin in requirements and pin.lower() in text.splitlines(), pin
    # the pyfunc model is code inside the model folder, not a pickle of a loopline class
    assert os.path.isfile(os.path.join(registered, "mlflow_pyfunc_code.py"))
    assert not any(name.endswith(".pkl") for name in os.listdir(registered))


def test_the_signature_requires_every_feature(registered, splits):
    model = mlflow.models.Model.load(registered)
    _, spec = read_split(splits["holdout"])
    inputs = {c.name: c for c in model.signature.inputs.inputs}
    assert set(inputs) == set(spec.features)
    assert all(c.required for c in inputs.values())


def test_it_loads_and_predicts_where_loopline_cannot_be_imported(registered, splits, trained_model, without_loopline,
                                                                  tmp_path):
    frame, numeric = _probe(splits)
    expected = ServingModel(trained_model).predict_frame(frame)
    whole = frame.copy()
    column = next(c for c in numeric if frame[c].notna().all())
    whole[column] = whole[column].round().astype("int64")  # a column of integers
    expected_int = ServingModel(trained_model).predict_frame(whole)
    frame.to_parquet(tmp_path / "rows.parquet")
    whole.to_parquet(tmp_path / "int_rows.parquet")
    script = textwrap.dedent(f"""
        import json, sys
        import pandas as pd
        try:
            import loopline
            sys.exit("loopline was importable")
        except ModuleNotFoundError:
            pass
        import mlflow.pyfunc
        model = mlflow.pyfunc.load_model({registered!r})
        out = {{"rows": model.predict(pd.read_parquet({str(tmp_path / 'rows.parquet')!r})).values.tolist(),
               "ints": model.predict(pd.read_parquet({str(tmp_path / 'int_rows.parquet')!r})).values.tolist()}}
        try:
            model.predict(pd.read_parquet({str(tmp_path / 'rows.parquet')!r}).drop(columns=[{column!r}]))
            out["missing"] = "accepted"
        except Exception as exc:
            out["missing"] = str(exc)
        print(json.dumps(out))
    """)
    result = subprocess.run([sys.executable, "-c", script], env=without_loopline, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(out["rows"], expected, atol=1e-6)
    np.testing.assert_allclose(out["ints"], expected_int, atol=1e-6)
    assert "missing inputs" in out["missing"] and column in out["missing"]


def test_mlflow_models_serve_serves_it_without_loopline(registered, splits, trained_model, without_loopline, tmp_path):
    frame, numeric = _probe(splits, n=4)
    frame = frame.fillna({c: 0 for c in numeric})
    column = numeric[0]
    frame[column] = frame[column].round().astype("int64")
    expected = ServingModel(trained_model).predict_frame(frame)
    port = serving.free_port()
    with open(tmp_path / "serve.log", "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", registered, "--env-manager", "local",
                                 "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
                                env=without_loopline, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        body = {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}
        deadline, answer = time.monotonic() + 240, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
                    answer = json.loads(resp.read())
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(1)
        assert answer is not None, (tmp_path / "serve.log").read_text()[-3000:]
        got = np.asarray([[row[c] for c in sorted(row)] for row in answer["predictions"]], dtype=float)
        np.testing.assert_allclose(got, expected, atol=1e-6)
        assert "No module named 'loopline'" not in (tmp_path / "serve.log").read_text()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
