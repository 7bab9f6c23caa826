"""s3:// through the code path a cluster uses (fsspec/s3fs, boto3), against moto's server mode on
loopback: a stand-in for an S3-compatible store. And the faults: no container engine, an
unreachable store, refused credentials."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import fsspec
import pytest

from loopline.data import demo as demo_data
from loopline.data import tables as data_lib
from loopline.registry import object_store
from tools.rehearsal import STANDIN_CREDENTIALS, s3_standin

from .conftest import s3_standin_env

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The S3 stand-in for this module."""
    with s3_standin_env(tmp_path_factory.mktemp("s3"), "loopline-test") as server:
        yield server


def test_csv_and_parquet_read_from_s3_and_the_hash_streams(s3, tmp_path):
    frame = demo_data.demo_transactions(300, seed=3)
    local = tmp_path / "t.csv"
    frame.to_csv(local, index=False)
    frame.to_csv("s3://loopline-test/t.csv", index=False)
    frame.to_parquet("s3://loopline-test/t.parquet", index=False)
    assert data_lib.read_table("s3://loopline-test/t.csv").shape == frame.shape
    assert data_lib.read_table("s3://loopline-test/t.parquet").shape == frame.shape
    assert data_lib.file_sha256("s3://loopline-test/t.csv") == hashlib.sha256(local.read_bytes()).hexdigest()
    object_store.check_readable("s3://loopline-test/t.parquet")
    object_store.check_writable("s3://loopline-test/artifacts")


@pytest.fixture()
def gcs(monkeypatch):
    """The Cloud Storage stand-in, with gcsfs (the client a cluster uses) pointed at it."""
    import gcsfs

    from .standins.gcs_api import GcsApiStandIn

    with GcsApiStandIn(buckets=("loopline-gcs",)) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        gcsfs.GCSFileSystem.clear_instance_cache()
        yield server
    gcsfs.GCSFileSystem.clear_instance_cache()


def test_csv_and_parquet_read_from_gs_through_gcsfs_and_the_hash_streams(gcs, tmp_path):
    frame = demo_data.demo_transactions(300, seed=3)
    local = tmp_path / "t.csv"
    frame.to_csv(local, index=False)
    gcs.put("loopline-gcs", "demo/t.csv", local.read_bytes())
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    with fsspec.open("gs://loopline-gcs/demo/t.parquet", "wb") as out:  # written through gcsfs
        out.write((tmp_path / "t.parquet").read_bytes())
    assert gcs.object_names("loopline-gcs") == ["demo/t.csv", "demo/t.parquet"]
    assert data_lib.read_table("gs://loopline-gcs/demo/t.csv").equals(data_lib.read_table(str(local)))
    assert data_lib.read_table("gs://loopline-gcs/demo/t.parquet").shape == frame.shape
    assert data_lib.file_sha256("gs://loopline-gcs/demo/t.csv") == hashlib.sha256(local.read_bytes()).hexdigest()
    object_store.check_readable("gs://loopline-gcs/demo/t.parquet")
    object_store.check_writable("gs://loopline-gcs/artifacts")
    assert gcs.object_names("loopline-gcs") == ["demo/t.csv", "demo/t.parquet"]  # the write probe is removed
    reads = [unquote(r.path) for r in gcs.requests if r.method == "GET" and r.query.get("alt") == "media"]
    assert {"/download/storage/v1/b/loopline-gcs/o/demo/t.csv",
            "/download/storage/v1/b/loopline-gcs/o/demo/t.parquet"} <= set(reads)  # the bytes came from gcsfs
    with pytest.raises(object_store.ObjectStoreError, match=r"^cannot read gs://loopline-gcs/absent.csv: not found"):
        object_store.check_readable("gs://loopline-gcs/absent.csv")


def test_the_drift_check_reads_its_current_batch_from_gs(gcs, tmp_path, capsys):
    from loopline.cli import app as cli

    reference = tmp_path / "reference.csv"
    demo_data.demo_transactions(2000, shift=0.0, seed=7).to_csv(reference, index=False)
    demo_data.demo_transactions(2000, shift=1.0, seed=8).to_parquet(tmp_path / "current.parquet", index=False)
    gcs.put("loopline-gcs", "batches/current.parquet", (tmp_path / "current.parquet").read_bytes())
    code = cli.main(["drift", "--reference", str(reference), "--current", "gs://loopline-gcs/batches/current.parquet",
                     "--ignore", *demo_data.DEMO_IGNORE, demo_data.DEMO_TARGET, "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 1 and result["drifted"] is True
    assert any(unquote(r.path).endswith("/o/batches/current.parquet") for r in gcs.requests if r.method == "GET")


def test_a_missing_object_is_named(s3):
    with pytest.raises(object_store.ObjectStoreError, match=r"^cannot read s3://loopline-test/absent.csv: not found"):
        object_store.check_readable("s3://loopline-test/absent.csv")


def _run(tmp_path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loopline.cli", "run", "--home", str(tmp_path / "home"), "--target", "is_fraud", *args],
        cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
    )


def test_an_unreachable_store_is_one_line_naming_the_uri_before_any_training(tmp_path):
    env = {**STANDIN_CREDENTIALS, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
    result = _run(tmp_path, env, "--data", "s3://loopline-data/transactions.csv")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors == [f"loopline: error: cannot read s3://loopline-data/transactions.csv: the store does not answer "
                      f"{errors[0].split('does not answer ', 1)[1]}"]
    assert not (tmp_path / "home" / "pipeline_root").exists()


def test_refused_credentials_are_one_line_naming_the_uri(tmp_path):
    # moto checks credentials when told to: every key is unknown to it
    server = s3_standin(tmp_path / "s3")
    server.env = {"INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    server.start()
    try:
        env = {"AWS_ACCESS_KEY_ID": "wrong", "AWS_SECRET_ACCESS_KEY": "wrong", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": server.url}
        result = _run(tmp_path, env, "--data", "s3://loopline-data/transactions.csv")
    finally:
        server.stop()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        "loopline: error: cannot read s3://loopline-data/transactions.csv: the store refused the credentials")


def test_no_container_engine_is_one_line_saying_what_to_install(tmp_path, monkeypatch):
    from loopline.local.container_runner import ContainerError, Engine

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ContainerError, match=r"^no container engine answers: install Docker .*podman"):
        Engine(tmp_path).__enter__()


def test_make_images_without_an_engine_says_what_to_install(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sed", "git", "dirname", "python3"):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    result = subprocess.run([str(ROOT / "containers" / "engine.sh"), "images"], cwd=ROOT, capture_output=True,
                            text=True, env={"PATH": str(bin_dir), "HOME": str(tmp_path)}, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "engine: no container engine: install Docker, or podman (apt-get install podman buildah runc), "
        "or run 'sudo containers/engine.sh install'"]
