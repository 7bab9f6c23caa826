"""The `deploy_model` step: roll a registered version out (canary, smoke test, promote or roll
back) and move `champion` only when it serves."""

from __future__ import annotations

import logging

from loopline import data as data_lib
from loopline import registry, rollout, serving
from loopline.errors import DeploymentError
from loopline.files import write_text
from loopline.home import loopline_home, model_cache_dir
from loopline.logs import quiet_libraries
from loopline.model_contract import ServingModel

log = logging.getLogger(__name__)


def run(*, model_name: str, model_version: str, tracking_uri: str, holdout, manifest, report, pipeline_run: str,
        settings: rollout.DeploySettings) -> str:
    """Build the InferenceService, roll the version out (canary, smoke test, promote or roll
    back) and move `champion` only when the new version serves. Returns the rollout action."""
    quiet_libraries()
    target, namespace, storage_uri = settings.target, settings.namespace, settings.storage_uri
    home = loopline_home(settings.local_home)
    holdout_df, spec = data_lib.read_split(holdout.path)
    sample = holdout_df[list(spec.features)].head(max(1, settings.smoke_rows))
    rows = sample.astype(object).where(sample.notna(), None).to_dict(orient="records")

    # The registered files are what gets served; the smoke test compares the server's answers
    # with the same files' predictions in-process.
    local_dir = registry.saved_model_dir(tracking_uri, model_name, model_version, model_cache_dir(home, model_name, model_version))
    expected = ServingModel(local_dir).predict_rows(rows)
    if target == "kserve" and not storage_uri:
        storage_uri = registry.serving_storage_uri(tracking_uri, model_name, model_version, local_dir)
        if not storage_uri.startswith(("gs://", "s3://", "pvc://")):
            raise DeploymentError(
                f"the registry keeps version {model_version} at {storage_uri}, which KServe cannot read: "
                "give storage_uri (gs://, s3:// or pvc://) or use an MLflow server with object-store artifacts"
            )
    isvc = serving.build_inference_service(
        name=_isvc_name(model_name),
        namespace=namespace,
        storage_uri=storage_uri or local_dir.as_uri(),
        model_name=model_name,
        model_version=model_version,
        pipeline_run=pipeline_run,
        runtime_version=settings.runtime_version,
        service_account=settings.service_account,
        min_replicas=settings.min_replicas,
        max_replicas=settings.max_replicas,
        deployment_mode=settings.deployment_mode,
    )
    text = serving.manifest_yaml(isvc)
    write_text(manifest.path, text)
    manifest.metadata.update({"name": isvc.metadata.name, "namespace": namespace, "storage_uri": isvc.spec.predictor.model.storage_uri})
    manifests = home / "manifests"  # kept for `kubectl apply`
    manifests.mkdir(parents=True, exist_ok=True)
    (manifests / f"{isvc.metadata.name}-v{model_version}.yaml").write_text(text)

    limits = rollout.SmokeLimits(rows=len(rows), tolerance=settings.tolerance, max_p95_ms=settings.max_p95_ms)
    if target == "kserve":
        result = rollout.rollout_cluster(
            rollout.ClusterApi(), serving.to_manifest(isvc), rows=rows, expected=expected, limits=limits,
            canary_percent=settings.canary_percent, ready_timeout=settings.ready_timeout_seconds,
        )
    else:
        result = rollout.rollout_local(
            home=home, model_name=model_name, version=model_version, model_dir=str(local_dir), rows=rows,
            expected=expected, limits=limits, ready_timeout=min(settings.ready_timeout_seconds, 300.0),
        )
    write_text(report.path, result.markdown())
    report.metadata.update({"action": result.action, "reason": result.reason, "endpoint": result.endpoint,
                            "previous_version": result.previous_version})
    if result.serving_new_version:
        registry.set_alias(tracking_uri, model_name, registry.CHAMPION, model_version)
    else:
        log.warning("rollout of %s v%s rolled back: %s; champion stays at v%s",
                    model_name, model_version, result.reason, result.previous_version)
    return result.action


def _isvc_name(model_name: str) -> str:
    """A DNS-1035 label for the InferenceService name."""
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in model_name.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"m-{cleaned}"
    return cleaned[:45].rstrip("-")

