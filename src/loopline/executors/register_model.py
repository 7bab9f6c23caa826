"""The `register_model` step: a blessed model becomes an MLflow model version with its lineage
(alias `challenger`), optionally uploaded to Vertex AI Model Registry."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from loopline import __version__, registry
from loopline.core.files import json_dump
from loopline.core.images import ROLES, image
from loopline.core.logs import quiet_libraries
from loopline.data import tables as data_lib
from loopline.evaluation import blessing as blessing_lib
from loopline.model.contract import METADATA_FILE
from loopline.registry import vertex as vertex_lib

log = logging.getLogger(__name__)


def run(*, model, blessing, train, holdout, tracking_uri: str, model_name: str, pipeline_run: str,
        settings: registry.RegisterSettings) -> str:
    """Check the blessing, register the model version with its lineage (alias `challenger`),
    and optionally upload it to Vertex AI Model Registry. Returns the MLflow version."""
    quiet_libraries()
    record = blessing_lib.read(blessing.path)
    holdout_sha256 = data_lib.file_sha256(holdout.path)
    blessing_lib.verify(
        record, model_uri=model.uri, model_sha256=blessing_lib.directory_sha256(model.path),
        holdout_sha256=holdout_sha256,
    )
    target = vertex_lib.parse_target(settings.vertex_model_registry, model_name=model_name, model_uri=model.uri)
    holdout_df, spec = data_lib.read_split(holdout.path)
    train_meta = dict(getattr(train, "metadata", {}) or {})
    params = _hyperparameters(model)
    images = {role: settings.image_refs.get(role) or image(role) for role in ROLES}
    tags = {
        registry.TAG_DATA_SHA256: spec.source_sha256,
        registry.TAG_DATA_URI: spec.source_uri,
        registry.TAG_DATA_LINEAGE: json_dump(spec.source_lineage) if spec.source_lineage else "",
        registry.TAG_HOLDOUT_SHA256: holdout_sha256,
        registry.TAG_MODEL_ARTIFACT: model.uri,
        registry.TAG_MODEL_SHA256: record["model_sha256"],
        registry.TAG_PIPELINE_NAME: settings.pipeline_name,
        registry.TAG_PIPELINE_RUN_ID: settings.pipeline_run_id,
        registry.TAG_VERSION: __version__,
        registry.TAG_HYPERPARAMETERS: json_dump(params),
        registry.TAG_METRICS: json_dump({k: round(v, 6) for k, v in record["metrics"].items()}),
        registry.TAG_GATE_REPORT: record["gate_report"],
        registry.TAG_GATE_CHAMPION: str(record.get("champion", {}).get("version") or "none"),
        "loopline.train_rows": str(train_meta.get("rows", "")),
        **{f"{registry.TAG_IMAGE_PREFIX}{role}": ref for role, ref in images.items()},
        **{k: str(v) for k, v in settings.extra_tags.items()},
    }
    commit = registry.git_commit()
    if commit:
        tags[registry.TAG_GIT_COMMIT] = commit
    tags = {k: v for k, v in tags.items() if v != ""}
    version = registry.register(
        model.path,
        tracking_uri=tracking_uri,
        model_name=model_name,
        pipeline_run=pipeline_run,
        tags=tags,
        params=params,
        metrics=record["metrics"],
        input_example=holdout_df[list(spec.features)].head(3),
        texts={"gate_report.md": record["gate_report"], "blessing.json": json_dump(record)},
    )
    if target is not None:
        done = (version.tags or {}).get(registry.TAG_VERTEX_MODEL)
        if done:
            log.info("pipeline run %s already uploaded version %s to Vertex as %s", pipeline_run, version.version, done)
        else:
            uploaded = vertex_lib.upload(
                target, model_name=model_name, mlflow_version=version.version, pipeline_run=pipeline_run,
                labels={"loopline-pipeline-run": pipeline_run, "mlflow-version": version.version},
            )
            registry.set_version_tags(tracking_uri, model_name, version.version, {
                registry.TAG_VERTEX_MODEL: uploaded["resource_name"],
                registry.TAG_VERTEX_VERSION: uploaded["version_id"],
            })
    return version.version


def _hyperparameters(model) -> dict:
    """The model's hyperparameters as training exported them (their types intact), else as the
    artifact's metadata carries them."""
    exported = Path(model.path) / METADATA_FILE
    if exported.is_file():
        params = json.loads(exported.read_text()).get("params")
        if isinstance(params, dict):
            return params
    return dict((getattr(model, "metadata", {}) or {}).get("best_params", {}))

