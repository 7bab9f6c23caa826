"""Loopline's model server meets Vertex AI's custom-container contract: started with only the
AIP_* variables Vertex sets (port, health and predict routes, a gs:// storage URI on the Cloud
Storage stand-in), it fetches the model, answers Vertex's `{"instances": [...]}` with
`{"predictions": [...]}` on AIP_PREDICT_ROUTE, and still answers KServe's V1 and V2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopline.core.errors import DeploymentError
from loopline.data.tables import read_split
from loopline.model.contract import ServingModel
from loopline.serving import vertex_container

from .conftest import v2_inputs
from .standins.vertex_serving import start_container

BUCKET = "loopline-vertex"


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


@pytest.fixture()
def gcs(monkeypatch, trained_model):
    import gcsfs

    from .standins.gcs_api import GcsApiStandIn

    with GcsApiStandIn(buckets=(BUCKET,)) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        gcsfs.GCSFileSystem.clear_instance_cache()
        for path in Path(trained_model).rglob("*"):
            if path.is_file():
                server.put(BUCKET, f"models/fraud/v7/{path.relative_to(trained_model).as_posix()}", path.read_bytes())
        yield server
    gcsfs.GCSFileSystem.clear_instance_cache()


def test_the_server_honours_the_aip_variables_and_answers_vertex_requests(gcs, trained_model, splits, tmp_path):
    holdout, spec = read_split(splits["holdout"])
    features = holdout[list(spec.features)]
    sample = pd.concat([features[features.isna().any(axis=1)].head(3), features.head(5)])
    assert sample.isna().any(axis=1).sum() >= 1  # rows with missing values, sent as null
    rows = sample.astype(object).where(sample.notna(), None).to_dict(orient="records")
    expected = ServingModel(trained_model).predict_rows(rows)
    version = {"artifactUri": f"gs://{BUCKET}/models/fraud/v7",
               "containerSpec": {"args": ["--model_name", "fraud"], "predictRoute": "/predict", "healthRoute": "/health"}}
    url, stop = start_container(version, tmp_path)
    try:
        base = url.removesuffix("/predict")
        assert url.endswith("/predict")
        with urllib.request.urlopen(base + "/health", timeout=5) as health:  # noqa: S310 - loopback
            assert health.status == 200
        answer = _post(url, {"instances": rows, "parameters": {}})
        np.testing.assert_allclose(answer["predictions"], expected, atol=1e-5)
        # KServe's V1 and V2 on the same server
        np.testing.assert_allclose(_post(f"{base}/v1/models/fraud:predict", {"instances": rows})["predictions"],
                                   expected, atol=1e-5)
        (output,) = _post(f"{base}/v2/models/fraud/infer", {"inputs": v2_inputs(sample, spec.features)})["outputs"]
        np.testing.assert_allclose(np.asarray(output["data"]).reshape(output["shape"]), expected, atol=1e-5)
        with pytest.raises(urllib.error.HTTPError) as bad:
            _post(url, {"instances": [{"amount": 1.0}]})
        assert bad.value.code == 400
    finally:
        stop()
    fetched = [r.path for r in gcs.requests if r.query.get("alt") == "media"]
    assert any(p.endswith("saved_model.pb") for p in fetched)  # the model came from AIP_STORAGE_URI


def test_a_storage_uri_that_holds_nothing_is_one_line(gcs, tmp_path):
    env = {**os.environ, "AIP_STORAGE_URI": f"gs://{BUCKET}/models/absent/v1", "AIP_HTTP_PORT": "0"}
    done = subprocess.run([sys.executable, "-m", "loopline.serving", "--model_name", "fraud"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("loopline: error: ") and f"AIP_STORAGE_URI gs://{BUCKET}/models/absent/v1" in last


def test_the_contract_settings():
    assert vertex_container.http_port(["--model_name", "m"], {"AIP_HTTP_PORT": "9001"}, 8080) == 9001
    assert vertex_container.http_port(["--http_port", "7000"], {"AIP_HTTP_PORT": "9001"}, 7000) == 7000
    assert vertex_container.http_port(["--http_port=7000"], {"AIP_HTTP_PORT": "9001"}, 7000) == 7000
    assert vertex_container.http_port([], {}, 8080) == 8080
    with pytest.raises(DeploymentError, match="AIP_HTTP_PORT must be a port number, got 'x'"):
        vertex_container.http_port([], {"AIP_HTTP_PORT": "x"}, 8080)
    with pytest.raises(DeploymentError, match="give --model_dir, or AIP_STORAGE_URI"):
        vertex_container.model_dir(None, {})
    assert vertex_container.route_aliases("fraud", {"AIP_PREDICT_ROUTE": "/v1/models/fraud:predict",
                                                    "AIP_HEALTH_ROUTE": "/ping"}) == {"/ping": "/v1/models/fraud"}


@pytest.mark.containers
@pytest.mark.skipif(os.environ.get("LOOPLINE_TEST_CONTAINERS") != "1",
                    reason="container tests run with `make test-containers` (a container engine and `make images`)")
def test_the_serving_image_meets_the_contract_as_local_model_runs_it(gcs, trained_model, splits):
    """The serving image run the way `aiplatform.prediction.LocalModel` runs a custom container:
    only the AIP_* variables and the container args the Vertex model version declares."""
    import time

    from loopline.core import images
    from loopline.local import serving_container
    from loopline.serving import server as serving

    holdout, spec = read_split(splits["holdout"])
    sample = holdout[list(spec.features)].head(8)
    rows = sample.astype(object).where(sample.notna(), None).to_dict(orient="records")
    expected = ServingModel(trained_model).predict_rows(rows)
    engine, port = serving_container.engine(), serving.free_port()
    name = f"loopline-vertex-contract-{port}"
    variables = {"AIP_HTTP_PORT": str(port), "AIP_STORAGE_URI": f"gs://{BUCKET}/models/fraud/v7",
                 "AIP_PREDICT_ROUTE": "/predict", "AIP_HEALTH_ROUTE": "/health", "STORAGE_EMULATOR_HOST": gcs.url}
    env_args = [a for key, value in variables.items() for a in ("-e", f"{key}={value}")]
    run = subprocess.run([engine, "run", "-d", "--rm", "--name", name, "--network", "host", "--user", "10001:10001",
                          *env_args, images.image("serving"), "--model_name", "fraud", "--host", "127.0.0.1"],
                         capture_output=True, text=True, env=serving_container._env())
    assert run.returncode == 0, run.stderr
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):  # noqa: S310 - loopback
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, "the serving image never answered AIP_HEALTH_ROUTE"
                time.sleep(1)
        answer = _post(f"http://127.0.0.1:{port}/predict", {"instances": rows})
        np.testing.assert_allclose(answer["predictions"], expected, atol=1e-5)
    finally:
        subprocess.run([engine, "rm", "-f", name], capture_output=True, env=serving_container._env())
