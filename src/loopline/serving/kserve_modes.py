"""KServe's deployment modes and the Standard-mode canary (`spec.canary`, KServe 0.20 and later).

KServe 0.16 renamed the modes: `Serverless` is now `Knative` and `RawDeployment` is `Standard`;
both names of each are accepted. A Knative canary is the predictor's `canaryTrafficPercent`
(rollout.py). A Standard canary is an entry of `spec.canary`: a second, named predictor
(`{isvc}-{name}-predictor`) that gets `trafficPercent` of the requests. KServe documents the two
ends of it: promote by making the canary's predictor (with its name) the InferenceService's
predictor and removing the entry; roll back by removing the entry. A cluster whose KServe has no
`spec.canary` (older than 0.20) is refused before anything changes: its API server rejects the
field in a strict dry run.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

from loopline.core.errors import DeploymentError

log = logging.getLogger(__name__)

KNATIVE, STANDARD = "Knative", "Standard"
MODES = {"Knative": KNATIVE, "Serverless": KNATIVE, "Standard": STANDARD, "RawDeployment": STANDARD}
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"


def canonical_mode(mode: str) -> str:
    """`Knative` or `Standard` for either name of a mode; an unknown mode is an error."""
    try:
        return MODES[mode]
    except KeyError:
        raise DeploymentError(
            f"deployment_mode '{mode}' is not a KServe mode: use Knative (or Serverless) or Standard (or RawDeployment)"
        ) from None


def variant_name(version: str) -> str:
    """The canary predictor's name for a model version: a DNS label, `v<version>`."""
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in str(version).lower()).strip("-")
    return f"v{cleaned}"[:20].rstrip("-")


def canary_predictor(manifest: dict, version: str) -> dict:
    """The new version's predictor as a named canary (no `canaryTrafficPercent`: Knative's field)."""
    predictor = copy.deepcopy(manifest["spec"]["predictor"])
    predictor.pop("canaryTrafficPercent", None)
    predictor["name"] = variant_name(version)
    return predictor


def is_canary_pending(obj: dict) -> bool:
    return bool((obj.get("spec") or {}).get("canary"))


def refuse_without_spec_canary(api, name: str, namespace: str, body: dict) -> None:
    """A strict dry run of the canary patch: KServe older than 0.20 has no `spec.canary`."""
    from kubernetes.client.rest import ApiException

    reason = ""
    try:
        answer = api.patch(name, namespace, body, dry_run=True)
        if not is_canary_pending(answer):  # an API server that prunes instead of rejecting
            reason = "the API server dropped spec.canary"
    except ApiException as exc:
        if exc.status not in (400, 422):
            raise
        reason = "the API server rejects spec.canary"
    if reason:
        raise DeploymentError(
            f"InferenceService {namespace}/{name} runs in Standard (RawDeployment) mode and {reason}: "
            "this KServe is older than 0.20, which has no Standard-mode canary; refusing to send all traffic "
            "to an untested version (upgrade KServe to 0.20 or later, or use Knative mode)"
        )


def wait_canary_ready(api, name: str, namespace: str, variant: str, *, generation: int | None,
                      timeout: float) -> dict:
    """Wait until the status has observed `generation` and lists the canary `variant` as ready."""
    deadline = time.monotonic() + timeout
    last = "no canary status yet"
    while True:
        obj = api.get(name, namespace) or {}
        status = obj.get("status") or {}
        observed = status.get("observedGeneration")
        entry = next((c for c in status.get("canaryStatuses") or [] if c.get("name") == variant), None)
        if entry and entry.get("ready") and (generation is None or observed == generation):
            return obj
        if entry and not entry.get("ready"):
            failure = ((entry.get("modelStatus") or {}).get("lastFailureInfo") or {})
            last = failure.get("message") or failure.get("reason") or f"canary {variant} not ready"
        if time.monotonic() >= deadline:
            raise TimeoutError(f"canary {variant} of InferenceService {namespace}/{name} not Ready after {timeout:.0f}s: {last}")
        time.sleep(api.poll_seconds)


def canary_body(manifest: dict, version: str, percent: int) -> dict[str, Any]:
    meta = manifest["metadata"]
    return {
        "metadata": {"labels": meta["labels"]},
        "spec": {"canary": [{"predictor": canary_predictor(manifest, version), "trafficPercent": percent}]},
    }


def promote_body(manifest: dict, version: str) -> dict[str, Any]:
    """KServe's promotion without restart: the canary's predictor, name included, becomes the
    predictor, and the canary entry goes."""
    return {"spec": {"predictor": canary_predictor(manifest, version), "canary": None}}


def rollback_body(version_label: str, previous_version: str) -> dict[str, Any]:
    """Roll back: the canary entry goes; the predictor was never changed."""
    return {"metadata": {"labels": {version_label: previous_version}}, "spec": {"canary": None}}
