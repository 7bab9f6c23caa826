"""Loopline's serving image in a container, as KServe runs it (`make test-containers`): a model
version published to its own URI on an S3-compatible server (moto, a stand-in), fetched by
KServe's storage code into the folder mounted at /mnt/models, served with the ServingRuntime's
arguments; V1 and V2 answer and the rollout's smoke test passes (its rows include missing values)."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pandas as pd
import pytest

from loopline.core import images
from loopline.data.tables import read_split
from loopline.local import serving_container
from loopline.model.contract import ServingModel
from loopline.serving import rollout, version_uri
from loopline.serving import server as serving
from tools.rehearsal import STANDIN_CREDENTIALS

from .test_serving_runtime import v2_inputs
from .test_version_uri import s3, storage_initializer_python  # noqa: F401 - s3 is a fixture

pytestmark = [
    pytest.mark.containers,
    pytest.mark.skipif(os.environ.get("LOOPLINE_TEST_CONTAINERS") != "1",
                       reason="container tests run with `make test-containers` (a container engine and `make images`)"),
]


def test_the_serving_image_serves_a_version_fetched_by_kserves_storage_code(s3, trained_model, splits, tmp_path):  # noqa: F811
    uri = version_uri.publish(trained_model, "s3://loopline-models/registry", "fraud", "3")
    mnt = tmp_path / "mnt" / "models"
    fetch = subprocess.run(
        [str(storage_initializer_python()), "-c",
         "import sys; from kserve_storage import Storage; Storage.download(sys.argv[1], sys.argv[2])", uri, str(mnt)],
        env={**os.environ, **STANDIN_CREDENTIALS, "AWS_ENDPOINT_URL": s3.url}, capture_output=True, text=True, timeout=300,
    )
    assert fetch.returncode == 0, fetch.stderr[-2000:]
    os.chmod(tmp_path, 0o755)
    for folder, _dirs, files in os.walk(tmp_path / "mnt"):  # readable by the image's user
        os.chmod(folder, 0o755)
        for f in files:
            os.chmod(os.path.join(folder, f), 0o644)

    holdout, spec = read_split(splits["holdout"])
    features = holdout[list(spec.features)]
    sample = pd.concat([features.head(12), features[features.isna().any(axis=1)].head(4)])
    assert sample.isna().any(axis=1).sum() >= 1  # the smoke test sends missing values as null
    rows = sample.astype(object).where(sample.notna(), None).to_dict(orient="records")
    expected = ServingModel(trained_model).predict_rows(rows)

    server = serving_container.start(images.image("serving"), mnt, model_name="fraud")
    try:
        info = server.info
        np.testing.assert_allclose(serving.predict(info, rows), expected, atol=1e-5)
        v2 = serving._http_json(f"{info.url}/v2/models/fraud/infer", {"inputs": v2_inputs(sample, spec.features)})
        (output,) = v2["outputs"]
        np.testing.assert_allclose(np.asarray(output["data"]).reshape(output["shape"]), expected, atol=1e-5)
        smoke = rollout.smoke_test(lambda r: serving.predict(info, r), rows, expected,
                                   rollout.SmokeLimits(rows=16, tolerance=1e-5, max_p95_ms=5000))
        assert smoke.passed and smoke.errors == 0, smoke.reason
    finally:
        server.stop()
