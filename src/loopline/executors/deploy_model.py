"""The `deploy_model` step: roll a registered version out (canary, smoke test, promote or roll
back) and move `champion` only when it serves."""

from __future__ import annotations

import logging

from loopline import registry
from loopline.core.files import write_text
from loopline.core.home import loopline_home, model_cache_dir
from loopline.core.logs import quiet_libraries
from loopline.data import tables as data_lib
from loopline.model.contract import ServingModel
from loopline.registry import promotion
from loopline.serving import inference_service, rollout, targets, version_uri

log = logging.getLogger(__name__)


def run(*, model_name: str, model_version: str, tracking_uri: str, holdout, manifest, report, pipeline_run: str,
        settings: targets.DeploySettings) -> str:
    """Roll the version out holding the model's champion lease: the champion moves only from the
    version the gate compared with (fail closed when it moved, or another run is moving it), and
    only when the new version serves. Returns the rollout action."""
    holder = f"pipeline run {pipeline_run}" if pipeline_run else ""
    with promotion.champion_move(tracking_uri, model_name, str(model_version), holder=holder,
                                 ttl_seconds=2 * settings.ready_timeout_seconds + 900) as move:
        return _run(move=move, model_name=model_name, model_version=str(model_version), tracking_uri=tracking_uri,
                    holdout=holdout, manifest=manifest, report=report, pipeline_run=pipeline_run, settings=settings)


def _run(*, move: promotion.ChampionMove, model_name: str, model_version: str, tracking_uri: str, holdout, manifest,
         report, pipeline_run: str, settings: targets.DeploySettings) -> str:
    """Build the InferenceService, roll the version out (canary, smoke test, promote or roll
    back) and move `champion` only when the new version serves. Returns the rollout action."""
    quiet_libraries()
    target = targets.target(settings.target)
    namespace, storage_uri = settings.namespace, settings.storage_uri
    home = loopline_home(settings.local_home)
    holdout_df, spec = data_lib.read_split(holdout.path)
    sample = holdout_df[list(spec.features)].head(max(1, settings.smoke_rows))
    rows = sample.astype(object).where(sample.notna(), None).to_dict(orient="records")

    # The registered files are what gets served; the smoke test compares the server's answers
    # with the same files' predictions in-process.
    local_dir = registry.saved_model_dir(tracking_uri, model_name, model_version, model_cache_dir(home, model_name, model_version))
    expected = ServingModel(local_dir).predict_rows(rows)
    # Each version at its own immutable URI: under the prefix `storage_uri`, or where the registry keeps it.
    if storage_uri:
        model_uri = version_uri.publish(local_dir, storage_uri, model_name, model_version)
    else:
        model_uri = registry.serving_storage_uri(tracking_uri, model_name, model_version, local_dir)
    target.check_model_uri(model_uri, model_version)
    isvc = inference_service.build_inference_service(
        name=_isvc_name(model_name),
        namespace=namespace,
        storage_uri=model_uri,
        model_name=model_name,
        model_version=model_version,
        pipeline_run=pipeline_run,
        runtime=settings.runtime,
        runtime_version=settings.runtime_version,
        service_account=settings.service_account,
        min_replicas=settings.min_replicas,
        max_replicas=settings.max_replicas,
        cpu=settings.cpu,
        memory=settings.memory,
        deployment_mode=settings.deployment_mode,
    )
    text = inference_service.manifest_yaml(isvc)
    for_cluster = version_uri.is_cluster_readable(model_uri)
    if not for_cluster:
        text = (f"# Local record, not for a cluster: storageUri {model_uri} is a path on this machine.\n"
                "# For a cluster, deploy with storage_uri set to a gs:// or s3:// prefix, or with an MLflow\n"
                "# server whose artifacts are in object storage.\n") + text
    write_text(manifest.path, text)
    manifest.metadata.update({"name": isvc.metadata.name, "namespace": namespace, "storage_uri": model_uri,
                              "for_cluster": for_cluster})
    manifests = home / "manifests"  # `<name>-v<version>.yaml` for `kubectl apply`, or `.local-record.yaml`
    manifests.mkdir(parents=True, exist_ok=True)
    suffix = ".yaml" if for_cluster else ".local-record.yaml"
    (manifests / f"{isvc.metadata.name}-v{model_version}{suffix}").write_text(text)

    limits = rollout.SmokeLimits(rows=len(rows), tolerance=settings.tolerance, max_p95_ms=settings.max_p95_ms)
    result = target.roll_out(targets.Rollout(
        home=home, model_name=model_name, version=model_version, model_dir=str(local_dir), model_uri=model_uri,
        manifest=inference_service.to_manifest(isvc), rows=rows, expected=expected, limits=limits,
        canary_percent=settings.canary_percent, ready_timeout=settings.ready_timeout_seconds, settings=settings,
    ))
    write_text(report.path, result.markdown())
    report.metadata.update({"action": result.action, "reason": result.reason, "endpoint": result.endpoint,
                            "previous_version": result.previous_version})
    if result.serving_new_version:
        move.commit()
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

