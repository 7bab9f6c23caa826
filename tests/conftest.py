"""Shared fixtures: small real data, splits and one trained model, made once per session."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The PostgreSQL server fixture (`postgres_url`), started once per session where PostgreSQL is installed.
pytest_plugins = ["tests.postgres"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parents[1]
# A narrow search space that learns the demo data in a few epochs: keeps the suite quick.
FAST_SEARCH_SPACE = {"learning_rate": {"low": 3e-3, "high": 1e-2, "log": True}, "hidden_layers": {"low": 1, "high": 2}}
# KServe's InferenceService CRD, kept in the repository as test data (source and licence in its README).
KSERVE_CRD = ROOT / "tests" / "data" / "kserve" / "serving.kserve.io_inferenceservices.yaml"
DOCKERFILE = ROOT / "containers" / "Dockerfile"
# Small, quick trainings: an absolute floor and a comparison with the champion that tolerates a lot.
LENIENT_GATES = {"absolute": {"roc_auc": 0.6}, "relative": {"max_regression": {"roc_auc": 0.5}}}


def step_images() -> dict[str, str]:
    """Step function -> the image its compiled component YAML names."""
    import re

    out = {}
    for path in sorted((ROOT / "compiled" / "components").glob("*.yaml")):
        refs = set(re.findall(r"^\s*image:\s*(\S+)", path.read_text(), flags=re.M))
        assert len(refs) == 1, (path.name, refs)
        out[path.stem] = refs.pop()
    return out


@dataclasses.dataclass(frozen=True)
class DemoLoop:
    home: Path
    result: subprocess.CompletedProcess
    refused: list[dict]  # imports the image guard refused, one record per step and module


@pytest.fixture(scope="session")
def demo_loop(tmp_path_factory) -> DemoLoop:
    """One small demo `loopline run` of the whole loop (both pipelines through kfp.local), made once
    and looked at by the end-to-end tests: every step runs under the import guard that limits it to
    its image's packages (containers/Dockerfile's target for the image its compiled YAML names)."""
    from loopline.core import image_contract

    tmp_path = tmp_path_factory.mktemp("demo-loop")
    report = tmp_path / "refused.jsonl"
    env = image_contract.write_contract(tmp_path / "contract.json", DOCKERFILE, step_images(), report)
    home = tmp_path / "home"
    result = subprocess.run(
        [sys.executable, "-m", "loopline.cli", "run", "--home", str(home), "--rows", "1500", "--trials", "1",
         "--max-epochs", "6", "--thresholds", json.dumps(LENIENT_GATES)],
        cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=1500,
    )
    refused = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    return DemoLoop(home, result, refused)


@pytest.fixture(scope="session")
def demo_csv(tmp_path_factory) -> Path:
    from loopline.data.demo import demo_transactions

    path = tmp_path_factory.mktemp("data") / "transactions.csv"
    demo_transactions(2000, seed=7).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def splits(demo_csv, tmp_path_factory) -> dict[str, Path]:
    from loopline.data.tables import SplitSettings, load_and_split

    folder = tmp_path_factory.mktemp("splits")
    paths = {name: folder / f"{name}.parquet" for name in ("train", "validation", "holdout")}
    load_and_split(
        str(demo_csv), target="is_fraud", settings=SplitSettings(ignore_columns=["transaction_id"]),
        train_path=paths["train"], validation_path=paths["validation"], holdout_path=paths["holdout"],
    )
    return paths


@pytest.fixture(scope="session")
def trained_model(splits, tmp_path_factory) -> Path:
    """One real (small) Optuna + Keras training, exported as a SavedModel."""
    from loopline.data.tables import read_split
    from loopline.tuning import study as tuning
    from loopline.tuning.training import tune_and_train

    train, spec = read_split(splits["train"])
    validation, _ = read_split(splits["validation"])
    export = tmp_path_factory.mktemp("model") / "model"
    tune_and_train(train, validation, spec, settings=tuning.TuningSettings(n_trials=2, max_epochs=8, seed=3, search_space=FAST_SEARCH_SPACE), export_dir=export)
    return export


# ---------------------------------------------------------------------------------------------
# Components called as plain functions with real KFP artifacts on a tmp path.


def art(cls, tmp_path: Path, name: str):
    return cls(name=name, uri=str(tmp_path / name), metadata={})


@pytest.fixture()
def loaded(tmp_path, demo_csv):
    """The demo data through the load_data component: train, validation and holdout artifacts."""
    from kfp import dsl

    from loopline import components as loopline_components

    outs = {n: art(dsl.Dataset, tmp_path, n) for n in ("train", "validation", "holdout")}
    loopline_components.load_data.python_func(
        data_uri=str(demo_csv), target="is_fraud", ignore_columns=["transaction_id"], feature_kinds={},
        validation_fraction=0.15, holdout_fraction=0.15, seed=42, **outs,
    )
    return outs


def evaluate_step(model_dir, loaded, tmp_path, thresholds, **kwargs):
    from kfp import dsl

    from loopline import components as loopline_components

    model = dsl.Model(name="model", uri=str(model_dir), metadata={"best_params": {"units": 32}})
    outs = {
        "metrics": art(dsl.Metrics, tmp_path, "metrics"),
        "classification_metrics": art(dsl.ClassificationMetrics, tmp_path, "cm"),
        "report": art(dsl.Markdown, tmp_path, "report"),
        "blessing": art(dsl.Artifact, tmp_path, "blessing"),
    }
    kwargs.setdefault("train", loaded["train"])  # the baseline is fitted on it
    passed = loopline_components.evaluate_model.python_func(
        model=model, holdout=loaded["holdout"], thresholds=thresholds, **outs, **kwargs
    )
    return passed, outs


def register_step(model_dir, loaded, tmp_path, tracking_uri, blessing, *, model_name="fraud", pipeline_run="test-run",
                  **kwargs):
    from kfp import dsl

    from loopline import components as loopline_components

    model = dsl.Model(name="model", uri=str(model_dir), metadata={"best_params": {"units": 32}})
    return loopline_components.register_model.python_func(
        model=model, blessing=blessing, train=loaded["train"], holdout=loaded["holdout"], tracking_uri=tracking_uri,
        model_name=model_name, pipeline_run=pipeline_run, **kwargs,
    )


# ---------------------------------------------------------------------------------------------
# A real MLflow tracking server on loopback (SQLite backend, proxied artifacts).


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """`mlflow server` as a child process in its own session, so stop() ends it and its workers."""

    def __init__(self, root: Path, port: int | None = None):
        self.root = Path(root)
        self.port = port or free_port()
        self.process = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def start(self, timeout: float = 120.0) -> MlflowServer:
        import subprocess
        import sys
        import time
        import urllib.request

        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the server writes to it until stop()
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(self.root / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer on {self.uri} within {timeout}s")

    def stop(self) -> None:
        from loopline.core.processes import stop_group

        if self.process is None:
            return
        # the whole session: the server and the workers it started (until they have freed the port)
        stop_group(self.process, wait_for_group=True)
        self.process = None


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """One server for the session; tests keep apart by using their own model names."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    yield server
    server.stop()


@pytest.fixture()
def kfp_api():
    """The KFP API stand-in on loopback (records requests)."""
    from .standins.kfp_api import KfpApiStandIn

    with KfpApiStandIn() as api:
        yield api


@pytest.fixture()
def vertex_api(monkeypatch):
    """The Vertex AI API stand-in on loopback. Cloud Storage calls, if any were made, would go to
    it too (and be recorded), never to the internet."""
    from .standins.vertex_api import VertexApiStandIn

    with VertexApiStandIn() as api:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", api.url)
        yield api


@contextlib.contextmanager
def s3_standin_env(folder: Path, bucket: str):
    """The S3 stand-in with one bucket, the AWS_* variables pointing the clients at it. fsspec keeps
    S3 clients across tests, each bound to the endpoint it was made for: they are dropped when the
    server changes."""
    import boto3
    import s3fs

    from tools.rehearsal import STANDIN_CREDENTIALS, s3_standin

    s3fs.S3FileSystem.clear_instance_cache()
    server = s3_standin(folder).start()
    saved = {k: os.environ.get(k) for k in (*STANDIN_CREDENTIALS, "AWS_ENDPOINT_URL")}
    os.environ.update({**STANDIN_CREDENTIALS, "AWS_ENDPOINT_URL": server.url})
    try:
        boto3.client("s3").create_bucket(Bucket=bucket)
        yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()


def v2_inputs(sample, features: dict) -> list[dict]:
    """One V2 (Open Inference Protocol) tensor per feature; a missing number is null."""
    inputs = []
    for name, kind in features.items():
        col = sample[name]
        if kind == "numeric":
            inputs.append({"name": name, "shape": [len(col)], "datatype": "FP32",
                           "data": [None if v != v else float(v) for v in col]})
        else:
            inputs.append({"name": name, "shape": [len(col)], "datatype": "BYTES",
                           "data": ["" if v is None else str(v) for v in col]})
    return inputs
