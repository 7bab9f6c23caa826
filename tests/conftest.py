"""Shared fixtures: small real data, splits and one trained model, made once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parents[1]
# A narrow search space that learns the demo data in a few epochs: keeps the suite quick.
FAST_SEARCH_SPACE = {"learning_rate": {"low": 3e-3, "high": 1e-2, "log": True}, "hidden_layers": {"low": 1, "high": 2}}
KSERVE_CRD = ROOT.parent / "shared" / "schemas" / "kserve" / "serving.kserve.io_inferenceservices.yaml"


@pytest.fixture(scope="session")
def demo_csv(tmp_path_factory) -> Path:
    from loopline.data import demo_transactions

    path = tmp_path_factory.mktemp("data") / "transactions.csv"
    demo_transactions(2000, seed=7).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def splits(demo_csv, tmp_path_factory) -> dict[str, Path]:
    from loopline.data import load_and_split

    folder = tmp_path_factory.mktemp("splits")
    paths = {name: folder / f"{name}.parquet" for name in ("train", "validation", "holdout")}
    load_and_split(
        str(demo_csv), target="is_fraud", ignore_columns=["transaction_id"],
        train_path=paths["train"], validation_path=paths["validation"], holdout_path=paths["holdout"],
    )
    return paths


@pytest.fixture(scope="session")
def trained_model(splits, tmp_path_factory) -> Path:
    """One real (small) Optuna + Keras training, exported as a SavedModel."""
    from loopline.data import read_split
    from loopline.training import tune_and_train

    train, spec = read_split(splits["train"])
    validation, _ = read_split(splits["validation"])
    export = tmp_path_factory.mktemp("model") / "model"
    tune_and_train(
        train, validation, spec, export_dir=export, n_trials=2, max_epochs=8, seed=3,
        search_space=FAST_SEARCH_SPACE,
    )
    return export


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
