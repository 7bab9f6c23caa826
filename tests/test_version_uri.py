"""One immutable URI per model version, fetched by KServe's own storage code (kserve-storage, what
the storage initializer container runs) from an S3-compatible server (moto's server mode, a
stand-in for S3) and served by Loopline's model server."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from loopline.core.errors import DeploymentError
from loopline.data.tables import read_split
from loopline.model.contract import ServingModel
from loopline.serving import server as serving
from loopline.serving import version_uri
from tests.standins.kserve_controller import storage_initializer_python  # noqa: F401 - also used by the serving-image tests
from tools.rehearsal import STANDIN_CREDENTIALS

from .conftest import s3_standin_env


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The S3 stand-in for this module."""
    with s3_standin_env(tmp_path_factory.mktemp("s3"), "loopline-models") as server:
        yield server


def test_each_version_gets_its_own_uri_which_is_never_overwritten(trained_model, tmp_path):
    prefix = str(tmp_path / "models")
    first = version_uri.publish(trained_model, prefix, "fraud", "1")
    assert first == f"{prefix}/fraud/v1"
    assert (Path(first) / version_uri.MARKER).is_file()
    assert version_uri.digest(first) == version_uri.digest(trained_model)
    assert version_uri.publish(trained_model, prefix, "fraud", "1") == first  # a rerun: the same files
    other = tmp_path / "other"
    shutil.copytree(trained_model, other)
    (other / "extra.txt").write_text("another model")
    assert version_uri.publish(other, prefix, "fraud", "2") == f"{prefix}/fraud/v2"
    with pytest.raises(DeploymentError, match=r"fraud/v1 already holds another model .*: a version's URI is never overwritten"):
        version_uri.publish(other, prefix, "fraud", "1")
    assert version_uri.digest(first) == version_uri.digest(trained_model)


def test_cluster_readable_uris():
    assert version_uri.is_cluster_readable("s3://b/fraud/v1") and version_uri.is_cluster_readable("gs://b/x")
    assert not version_uri.is_cluster_readable("file:///home/me/.loopline/mlruns/1")
    assert not version_uri.is_cluster_readable("/home/me/models/fraud/v1")


def test_kserve_storage_initializer_fetches_a_version_from_s3_and_it_serves(s3, trained_model, splits, tmp_path):
    uri = version_uri.publish(trained_model, "s3://loopline-models/registry", "fraud", "7")
    assert uri == "s3://loopline-models/registry/fraud/v7"
    python = storage_initializer_python()
    mnt = tmp_path / "mnt" / "models"  # the predictor's /mnt/models
    fetch = subprocess.run(
        [str(python), "-c", "import sys; from kserve_storage import Storage; Storage.download(sys.argv[1], sys.argv[2])",
         uri, str(mnt)],
        env={**os.environ, **STANDIN_CREDENTIALS, "AWS_ENDPOINT_URL": s3.url}, capture_output=True, text=True,
        timeout=300,
    )
    assert fetch.returncode == 0, fetch.stderr[-2000:]
    assert version_uri.digest(mnt) == version_uri.digest(trained_model)

    holdout, spec = read_split(splits["holdout"])
    sample = holdout[list(spec.features)].head(8)
    rows = sample.astype(object).where(sample.notna(), None).to_dict(orient="records")
    info = serving.start_server(str(mnt), model_name="fraud", version="7", log_dir=tmp_path / "logs")
    try:
        np.testing.assert_allclose(serving.predict(info, rows), ServingModel(trained_model).predict_rows(rows),
                                   atol=1e-5)
    finally:
        serving.stop_server(info)
