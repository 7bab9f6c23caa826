"""MLflow model registry: register blessed models, tag their lineage, move aliases.

Champion and challenger are registry aliases (stages are deprecated in MLflow): a newly
registered model is the `challenger`; `champion` moves only after a successful deployment.

Every call to the registry goes through `with_retries`: transient errors (connection refused,
timeouts, 5xx, rate limits) are retried with exponential backoff and logged; when the registry
stays unavailable the operation ends with one `RegistryError` line. MLflow's own silent HTTP
retries are turned down so that this policy is the one in force.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from loopline.core import rules
from loopline.core.errors import LooplineError, RegistryError
from loopline.core.mlflow_store import (  # noqa: F401 - the registry's own API too
    DEFAULT_RETRY,
    EXPERIMENT,
    SAVED_MODEL_ARTIFACT,
    RetryPolicy,
    check_store,
    connect,
    ensure_experiment,
    is_transient,
    local_tracking_uri,
    model_signature,
    safe_uri,
    save_pyfunc,
    with_retries,
)

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
LOGGED_MODEL_NAME = "model"

# Lineage tags on every model version.
TAG_PIPELINE_RUN = "loopline.pipeline_run"  # the pipeline job name: what makes registration idempotent
TAG_PIPELINE_RUN_ID = "loopline.pipeline_run_id"
TAG_PIPELINE_NAME = "loopline.pipeline_name"
TAG_DATA_SHA256 = "loopline.data_sha256"
TAG_DATA_URI = "loopline.data_uri"
TAG_DATA_LINEAGE = "loopline.data_lineage"  # JSON: the dataset's files with sizes and ETags, or its query
TAG_HOLDOUT_SHA256 = "loopline.holdout_sha256"
TAG_MODEL_ARTIFACT = "loopline.model_artifact"
TAG_MODEL_SHA256 = "loopline.model_sha256"
TAG_GIT_COMMIT = "loopline.git_commit"
TAG_VERSION = "loopline.version"
TAG_HYPERPARAMETERS = "loopline.hyperparameters"
TAG_METRICS = "loopline.metrics"
TAG_GATE_REPORT = "loopline.gate_report"
TAG_GATE_CHAMPION = "loopline.gate_champion"
TAG_IMAGE_PREFIX = "loopline.image."
TAG_VERTEX_MODEL = "loopline.vertex_model"
TAG_VERTEX_VERSION = "loopline.vertex_model_version"
GIT_COMMIT_ENV = "LOOPLINE_GIT_COMMIT"

MAX_RUN_TAG = 8000  # MLflow's limit for run tag values
MAX_VERSION_TAG = 100_000  # and for model version tag values

@dataclass(frozen=True, kw_only=True)
class RegisterSettings:
    """What `register_model` records beside the model and where else it uploads it: the one
    declaration of these settings and their defaults."""

    pipeline_name: str = ""
    pipeline_run_id: str = ""
    image_refs: dict[str, str] = field(default_factory=dict)  # image role -> reference; empty: this version's
    extra_tags: dict[str, Any] = field(default_factory=dict)
    vertex_model_registry: dict[str, Any] = field(default_factory=dict)  # empty: no Vertex AI upload

    def __post_init__(self) -> None:
        """The checks of the registration settings (the Vertex AI target is checked with the model)."""
        for name in ("image_refs", "extra_tags", "vertex_model_registry"):
            rules.mapping(name, getattr(self, name), RegistryError)


@dataclass
class RegisteredVersion:
    name: str
    version: str
    model_uri: str  # models:/<name>/<version>
    source: str  # where the registry keeps the files
    created: bool  # False when an earlier attempt of the same pipeline run had registered it
    tags: dict[str, str] | None = None


def _registered_model(client, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def find_version_for_run(client, name: str, pipeline_run: str):
    """The version that this pipeline run registered already, if any (registration is idempotent)."""
    if _registered_model(client, name) is None:
        return None
    for mv in client.search_model_versions(f"name = '{name}'"):
        if mv.tags.get(TAG_PIPELINE_RUN) == pipeline_run:
            return mv
    return None


def _fit(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    note = "\n… (truncated)"
    return value[: limit - len(note)] + note


def git_commit() -> str:
    """The git commit of Loopline's code when known: $LOOPLINE_GIT_COMMIT (set in the images),
    else `git rev-parse HEAD` of the source tree this package runs from; "" when neither works."""
    from_env = os.environ.get(GIT_COMMIT_ENV, "").strip()
    if from_env:
        return from_env
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else ""


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
    texts: dict[str, str] | None = None,
    alias: str = CHALLENGER,
    retry: RetryPolicy | None = None,
) -> RegisteredVersion:
    """Log the SavedModel as an MLflow pyfunc model (signature and input example, saved without
    loading TensorFlow), register a version tagged with its lineage, and point `alias` at it.

    Idempotent per `pipeline_run`: a version already registered by the same pipeline run is
    returned (and given `alias`) instead of a second one. `texts` are logged as run artifacts.
    """
    from loopline.model.contract import METADATA_FILE

    meta_file = Path(model_dir) / METADATA_FILE
    if not meta_file.is_file():
        raise LooplineError(f"{model_dir} is not a Loopline model (no {METADATA_FILE}); nothing registered")
    meta = json.loads(meta_file.read_text())
    client = connect(tracking_uri)
    all_tags = {TAG_PIPELINE_RUN: pipeline_run, **{k: str(v) for k, v in tags.items()}}

    def attempt() -> RegisteredVersion:
        existing = find_version_for_run(client, model_name, pipeline_run)
        if existing is not None:
            log.info("pipeline run %s already registered %s version %s; not registering again",
                     pipeline_run, model_name, existing.version)
            client.set_registered_model_alias(model_name, alias, existing.version)
            return RegisteredVersion(model_name, str(existing.version), f"models:/{model_name}/{existing.version}",
                                     existing.source, False, dict(existing.tags))
        mv = _log_and_register(client, tracking_uri, model_dir, meta, model_name, pipeline_run, all_tags, params,
                               metrics, input_example, texts or {})
        client.set_registered_model_alias(model_name, alias, mv.version)
        log.info("registered %s version %s with alias '%s'", model_name, mv.version, alias)
        return RegisteredVersion(model_name, str(mv.version), f"models:/{model_name}/{mv.version}", mv.source, True,
                                 dict(mv.tags))

    return with_retries(attempt, what=f"registering {model_name} from pipeline run {pipeline_run}",
                        tracking_uri=tracking_uri, retry=retry)


def _log_and_register(client, tracking_uri, model_dir, meta, model_name, pipeline_run, tags, params, metrics,
                      input_example, texts):
    from mlflow.entities import LoggedModelOutput, Metric, Param, RunTag
    from mlflow.models import Model

    experiment_id = ensure_experiment(client, tracking_uri)
    run_tags = {k: _fit(v, MAX_RUN_TAG) for k, v in tags.items() if k != TAG_GATE_REPORT}
    run = client.create_run(experiment_id, run_name=f"register-{pipeline_run}"[:250], tags=run_tags)
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(f"holdout_{k}", float(v), now, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in run_tags.items()],
        )
        for name, text in texts.items():
            client.log_text(run_id, text, name)
        logged = client.create_logged_model(experiment_id, name=LOGGED_MODEL_NAME, source_run_id=run_id,
                                            params={k: str(v) for k, v in params.items()})
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / LOGGED_MODEL_NAME
            # log_model would load the model (and TensorFlow) to validate it; save_model does not.
            save_pyfunc(local, model_dir, meta, input_example=input_example,
                        mlflow_model=Model(artifact_path=LOGGED_MODEL_NAME, run_id=run_id, model_id=logged.model_id))
            client.log_model_artifacts(logged.model_id, str(local))
        client.finalize_logged_model(logged.model_id, "READY")
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, 0)])
        log.info("logged model %s in run %s", logged.model_id, run_id)
        mv = create_version(client, model_name, source=f"models:/{logged.model_id}", run_id=run_id,
                            model_id=logged.model_id, tags={k: _fit(v, MAX_VERSION_TAG) for k, v in tags.items()})
        client.set_terminated(run_id, "FINISHED")
        return mv
    except Exception:
        try:
            client.set_terminated(run_id, "FAILED")
        except Exception:  # the registry may be the thing that failed
            pass
        raise


def create_version(client, model_name: str, *, source: str, run_id: str, model_id: str, tags: dict[str, str]):
    """Create the registered model if needed, then a version of it."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    return client.create_model_version(model_name, source, run_id=run_id, tags=tags, model_id=model_id)


def set_version_tags(tracking_uri: str, model_name: str, version: str, tags: dict[str, str],
                     retry: RetryPolicy | None = None) -> None:
    client = connect(tracking_uri)

    def attempt() -> None:
        for key, value in tags.items():
            client.set_model_version_tag(model_name, version, key, _fit(str(value), MAX_VERSION_TAG))

    with_retries(attempt, what=f"tagging {model_name} version {version}", tracking_uri=tracking_uri, retry=retry)


def version_tags(tracking_uri: str, model_name: str, version: str) -> dict[str, str]:
    client = connect(tracking_uri)
    return dict(client.get_model_version(model_name, str(version)).tags)


def saved_model_dir(tracking_uri: str, model_name: str, version: str, dst: str | Path) -> Path:
    """Download a registered version's SavedModel directory (TF Serving layout) to `dst`."""
    import mlflow

    connect(tracking_uri)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{model_name}/{version}", dst_path=str(dst)
    )
    from loopline.model.contract import METADATA_FILE

    found = sorted((Path(local) / "artifacts").glob(f"*/{METADATA_FILE}"))
    if not found:
        raise LooplineError(f"{model_name} version {version} holds no Loopline SavedModel artifact")
    return found[0].parent


def serving_storage_uri(tracking_uri: str, model_name: str, version: str, saved_model_dir: Path) -> str:
    """Where the registry keeps a version's SavedModel (for KServe's storageUri)."""
    client = connect(tracking_uri)
    root = client.get_model_version_download_uri(model_name, version).rstrip("/")
    return f"{root}/artifacts/{Path(saved_model_dir).name}"


def alias_version(tracking_uri: str, model_name: str, alias: str, *, retry: RetryPolicy | None = None) -> str | None:
    """The version an alias points to; None when the model or the alias does not exist."""
    client = connect(tracking_uri)

    def attempt() -> str | None:
        model = _registered_model(client, model_name)
        if model is None:
            return None
        version = model.aliases.get(alias)
        return None if version is None else str(version)

    return with_retries(attempt, what=f"looking up the '{alias}' alias of {model_name}", tracking_uri=tracking_uri,
                        retry=retry)


def set_alias(tracking_uri: str, model_name: str, alias: str, version: str) -> None:
    client = connect(tracking_uri)
    with_retries(lambda: client.set_registered_model_alias(model_name, alias, version),
                 what=f"moving the '{alias}' alias of {model_name}", tracking_uri=tracking_uri)
    log.info("alias '%s' of %s now points to version %s", alias, model_name, version)


def aliases(tracking_uri: str, model_name: str) -> dict[str, str]:
    client = connect(tracking_uri)
    return {alias: str(version) for alias, version in client.get_registered_model(model_name).aliases.items()}


def champion_data_uri(tracking_uri: str, model_name: str, alias: str = CHAMPION) -> str:
    """The training data the `alias` version was trained on, as recorded at registration."""
    from mlflow.exceptions import MlflowException

    if not tracking_uri or not model_name:
        raise LooplineError("no reference data given: name it, or give tracking_uri and model_name so that "
                            "the champion's training data can be used")
    client = connect(tracking_uri)
    try:
        version = client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        raise LooplineError(f"model '{model_name}' has no '{alias}' version in {safe_uri(tracking_uri)}: "
                            "give the reference data explicitly") from None
    uri = version.tags.get(TAG_DATA_URI, "")
    if not uri:
        raise LooplineError(f"{model_name} version {version.version} records no training data ({TAG_DATA_URI})")
    return uri


def versions(tracking_uri: str, model_name: str) -> list[dict[str, Any]]:
    """Every version of a registered model, oldest first: version, aliases and tags."""
    client = connect(tracking_uri)
    by_version: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(model_name).aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    out = []
    for mv in sorted(client.search_model_versions(f"name = '{model_name}'"), key=lambda m: int(m.version)):
        out.append({"version": str(mv.version), "aliases": sorted(by_version.get(str(mv.version), [])),
                    "tags": dict(mv.tags), "source": mv.source})
    return out
