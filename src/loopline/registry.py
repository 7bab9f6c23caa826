"""MLflow model registry: register blessed models, tag their lineage, move aliases.

Champion and challenger are registry aliases (stages are deprecated in MLflow): a newly
registered model is the `challenger`; `champion` moves only after a successful deployment.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from loopline.errors import LooplineError

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
EXPERIMENT = "loopline"
TAG_PIPELINE_RUN = "loopline.pipeline_run"
TAG_DATA_SHA256 = "loopline.data_sha256"
TAG_DATA_URI = "loopline.data_uri"
SAVED_MODEL_ARTIFACT = "saved_model"


@dataclass
class RegisteredVersion:
    name: str
    version: str
    model_uri: str  # models:/<name>/<version>
    source: str  # where the registry keeps the files
    created: bool  # False when an earlier attempt of the same pipeline run had registered it


def _pyfunc_class():
    import mlflow.pyfunc

    class LooplineTFModel(mlflow.pyfunc.PythonModel):
        """Serves the Loopline SavedModel through MLflow's pyfunc interface (probabilities per class)."""

        def load_context(self, context):
            from loopline.training import ServingModel

            self.model = ServingModel(context.artifacts[SAVED_MODEL_ARTIFACT])

        def predict(self, context, model_input, params=None):
            proba = self.model.predict_frame(pd.DataFrame(model_input))
            return pd.DataFrame(proba, columns=self.model.classes)

    return LooplineTFModel


def _signature(features: dict[str, str], classes: list[str]):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema(
        [ColSpec("double" if kind == "numeric" else "string", name, required=False) for name, kind in features.items()]
    )
    outputs = Schema([ColSpec("double", str(c)) for c in classes])
    return ModelSignature(inputs=inputs, outputs=outputs)


def connect(tracking_uri: str):
    import mlflow
    from mlflow import MlflowClient

    if not tracking_uri:
        raise LooplineError("tracking_uri is empty: give the MLflow tracking server URI or a sqlite:/// path")
    mlflow.set_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_experiment(client, tracking_uri: str, name: str = EXPERIMENT) -> str:
    """Use the experiment `name` and return its id; with a SQLite store, keep its artifacts
    beside the database file rather than in the working directory."""
    import mlflow
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = None
        if tracking_uri.startswith("sqlite:///"):
            location = (Path(tracking_uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
        try:
            client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created by a parallel worker in the meantime
            pass
        experiment = client.get_experiment_by_name(name)
    mlflow.set_experiment(name)
    return experiment.experiment_id


def pyfunc_model():
    """The MLflow pyfunc wrapper of a Loopline SavedModel."""
    return _pyfunc_class()()


def model_signature(features: dict[str, str], classes: list[str]):
    """The MLflow signature of a Loopline model: raw named features in, one probability per class out."""
    return _signature(features, classes)


def find_version_for_run(client, name: str, pipeline_run: str):
    """The version that this pipeline run registered already, if any (registration is idempotent)."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        return None
    for mv in client.search_model_versions(f"name = '{name}'"):
        if mv.tags.get(TAG_PIPELINE_RUN) == pipeline_run:
            return mv
    return None


def register(
    model_dir: str,
    *,
    tracking_uri: str,
    model_name: str,
    pipeline_run: str,
    tags: dict[str, str],
    params: dict[str, Any],
    metrics: dict[str, float],
    input_example: pd.DataFrame | None = None,
    alias: str = CHALLENGER,
) -> RegisteredVersion:
    """Log the SavedModel as an MLflow pyfunc model, register a version, set `alias`."""
    import mlflow

    from loopline import __version__
    from loopline.training import METADATA_FILE

    meta_file = Path(model_dir) / METADATA_FILE
    if not meta_file.is_file():
        raise LooplineError(f"{model_dir} is not a Loopline model (no {METADATA_FILE}); nothing registered")
    import json

    meta = json.loads(meta_file.read_text())
    client = connect(tracking_uri)
    existing = find_version_for_run(client, model_name, pipeline_run)
    if existing is not None:
        log.info("pipeline run %s already registered %s version %s; not registering again", pipeline_run, model_name, existing.version)
        client.set_registered_model_alias(model_name, alias, existing.version)
        return RegisteredVersion(model_name, str(existing.version), f"models:/{model_name}/{existing.version}", existing.source, False)

    ensure_experiment(client, tracking_uri)
    all_tags = {TAG_PIPELINE_RUN: pipeline_run, **{k: str(v) for k, v in tags.items()}}
    with mlflow.start_run(run_name=f"register-{pipeline_run}"[:250]) as run:
        mlflow.set_tags(all_tags)
        mlflow.log_params({k: v for k, v in params.items()})
        mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=pyfunc_model(),
            artifacts={SAVED_MODEL_ARTIFACT: str(model_dir)},
            signature=model_signature(meta["features"], meta["classes"]),
            pip_requirements=[f"loopline=={__version__}"],
        )
        if input_example is not None:
            # Kept beside the model rather than passed to log_model, which would load the
            # model (and TensorFlow) in the registry step only to predict on the example.
            mlflow.log_dict(input_example.to_dict(orient="split"), "model_input_example.json")
        log.info("logged model %s in run %s", info.model_uri, run.info.run_id)
    mv = mlflow.register_model(info.model_uri, model_name, tags=all_tags)
    client.set_registered_model_alias(model_name, alias, mv.version)
    log.info("registered %s version %s with alias '%s'", model_name, mv.version, alias)
    return RegisteredVersion(model_name, str(mv.version), f"models:/{model_name}/{mv.version}", mv.source, True)


def saved_model_dir(tracking_uri: str, model_name: str, version: str, dst: str | Path) -> Path:
    """Download a registered version's SavedModel directory (TF Serving layout) to `dst`."""
    import mlflow

    connect(tracking_uri)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{model_name}/{version}", dst_path=str(dst)
    )
    from loopline.training import METADATA_FILE

    found = sorted((Path(local) / "artifacts").glob(f"*/{METADATA_FILE}"))
    if not found:
        raise LooplineError(f"{model_name} version {version} holds no Loopline SavedModel artifact")
    return found[0].parent


def serving_storage_uri(tracking_uri: str, model_name: str, version: str, saved_model_dir: Path) -> str:
    """Where the registry keeps a version's SavedModel (for KServe's storageUri)."""
    client = connect(tracking_uri)
    root = client.get_model_version_download_uri(model_name, version).rstrip("/")
    return f"{root}/artifacts/{Path(saved_model_dir).name}"


def set_alias(tracking_uri: str, model_name: str, alias: str, version: str) -> None:
    client = connect(tracking_uri)
    client.set_registered_model_alias(model_name, alias, version)
    log.info("alias '%s' of %s now points to version %s", alias, model_name, version)


def aliases(tracking_uri: str, model_name: str) -> dict[str, str]:
    client = connect(tracking_uri)
    return {alias: str(version) for alias, version in client.get_registered_model(model_name).aliases.items()}


def local_tracking_uri(home: str | Path) -> str:
    """The SQLite store Loopline uses on one machine."""
    path = Path(home).resolve() / "mlflow.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def quiet() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
