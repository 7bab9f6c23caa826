"""Rolling a model version out: canary, smoke test, then promote or roll back.

One state machine serves both targets:

    current?  ── none ──────────────► deploy at 100% ─► ready? ─► smoke ─► CREATED
       │                                                  └─ no ─► (failed: nothing served before)
       ├─ same version, healthy ─────► NOOP
       └─ other version ─► canary (new beside old) ─► ready? ─► smoke ─► PROMOTED
                                           └──────── not ready / smoke failed ─► ROLLED_BACK

In a cluster the canary is KServe's `canaryTrafficPercent` on the InferenceService in Knative
(Serverless) mode, or an entry of `spec.canary` in Standard (RawDeployment) mode (kserve_modes.py); locally
it is a second KServe model server on loopback beside the one serving. The `champion` alias
moves only on CREATED or PROMOTED, so a failed rollout never loses the serving model.
"""

from __future__ import annotations

import copy
import logging
import time
import urllib.error
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from loopline.core import progress
from loopline.core.errors import DeploymentError
from loopline.serving import kserve_modes
from loopline.serving import server as serving
from loopline.serving.cluster_api import ClusterApi  # noqa: F401 - the rollout's API, also used by its callers
from loopline.traffic import capture as traffic_capture

log = logging.getLogger(__name__)

CREATED, PROMOTED, ROLLED_BACK, NOOP = "created", "promoted", "rolled_back", "noop"
MODE_ANNOTATION = kserve_modes.MODE_ANNOTATION
TAG_ROUTING_ANNOTATION = "serving.kserve.io/enable-tag-routing"
VERSION_LABEL = "loopline.dev/model-version"




@dataclass
class SmokeLimits:
    rows: int
    tolerance: float  # max |served - in-process| per probability
    max_p95_ms: float
    max_error_rate: float = 0.0


@dataclass
class SmokeResult:
    passed: bool
    reason: str
    rows: int = 0
    errors: int = 0
    max_abs_diff: float = float("nan")
    p95_ms: float = float("nan")


@dataclass
class RolloutResult:
    action: str
    version: str
    reason: str
    previous_version: str = ""
    canary_percent: int = 0
    endpoint: str = ""
    smoke: SmokeResult | None = None
    steps: list[str] = field(default_factory=list)

    @property
    def serving_new_version(self) -> bool:
        return self.action in (CREATED, PROMOTED, NOOP)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        lines = [
            f"## Rollout of version {self.version}: {self.action.upper().replace('_', ' ')}",
            "",
            f"Reason: {self.reason}",
            "",
            f"Previous version: {self.previous_version or 'none'}  ",
            f"Endpoint: `{self.endpoint}`" if self.endpoint else "",
            "",
            "| step |",
            "|---|",
            *[f"| {s} |" for s in self.steps],
        ]
        if self.smoke:
            s = self.smoke
            lines += [
                "",
                "| smoke test | value |",
                "|---|---|",
                f"| rows | {s.rows} |",
                f"| errors | {s.errors} |",
                f"| max abs difference from in-process | {s.max_abs_diff:.2e} |",
                f"| p95 latency (ms, one row a request) | {s.p95_ms:.1f} |",
                f"| verdict | {'pass' if s.passed else 'FAIL'}: {s.reason} |",
            ]
        return "\n".join(lines) + "\n"


def smoke_test(predict: Callable[[list[dict]], list[list[float]]], rows: list[dict], expected: np.ndarray,
               limits: SmokeLimits) -> SmokeResult:
    """Send the rows one request each; compare with in-process predictions; check errors and p95."""
    latencies, errors, diffs = [], 0, []
    for done, (row, want) in enumerate(zip(rows, expected, strict=True)):
        progress.report("smoke test rows", done, len(rows))
        started = time.perf_counter()
        try:
            got = np.asarray(predict([row])[0], dtype=float)
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, ValueError, OSError) as exc:
            errors += 1
            log.warning("smoke test request failed: %s", exc)
            continue
        finally:
            latencies.append((time.perf_counter() - started) * 1000.0)
        if got.shape != want.shape:
            diffs.append(float("inf"))
        else:
            diffs.append(float(np.max(np.abs(got - want))))
    n = len(rows)
    progress.report("smoke test rows", n, n)
    result = SmokeResult(
        passed=False, reason="", rows=n, errors=errors,
        max_abs_diff=max(diffs) if diffs else float("nan"),
        p95_ms=float(np.percentile(latencies, 95)) if latencies else float("nan"),
    )
    error_rate = errors / n if n else 1.0
    if n == 0:
        result.reason = "no rows to test with"
    elif error_rate > limits.max_error_rate:
        result.reason = f"error rate {error_rate:.0%} above {limits.max_error_rate:.0%}"
    elif not diffs or result.max_abs_diff > limits.tolerance:
        result.reason = f"predictions disagree with the model in-process (max difference {result.max_abs_diff:.3g} > {limits.tolerance:g})"
    elif result.p95_ms > limits.max_p95_ms:
        result.reason = f"p95 latency {result.p95_ms:.0f} ms above {limits.max_p95_ms:.0f} ms"
    else:
        result.passed = True
        result.reason = f"{n} rows agree within {limits.tolerance:g}, p95 {result.p95_ms:.1f} ms"
    log.info("smoke test: %s", result.reason)
    return result


# --------------------------------------------------------------------------------------------
# Local target: KServe model servers on loopback.


def rollout_local(*, home: str | Path, model_name: str, version: str, model_dir: str, rows: list[dict],
                  expected: np.ndarray, limits: SmokeLimits, ready_timeout: float = 120.0,
                  traffic: traffic_capture.TrafficSettings | None = None) -> RolloutResult:
    current = serving.read_state(home, model_name)
    if current and not serving.is_alive(current):
        log.info("the recorded server for %s (v%s) is not running", model_name, current.version)
        current = None
    previous = current.version if current else ""
    if current and current.version == str(version):
        return RolloutResult(NOOP, str(version), f"version {version} is already serving", previous,
                             100, current.predict_url, steps=["already serving: nothing to do"])
    first = current is None
    steps = ["start the new version at 100%" if first else f"start v{version} as a canary beside v{previous}"]
    endpoint_file = Path(home) / "serving" / "traffic" / f"{model_name}-v{version}.endpoint"
    if traffic:  # its traffic is the canary's until it is promoted
        traffic_capture.write_endpoint(endpoint_file, "default" if first else "canary")
        traffic = replace(traffic, endpoint_file=str(endpoint_file), path=f"v{version}")
    try:
        info = serving.start_server(model_dir, model_name=model_name, version=str(version),
                                    log_dir=Path(home) / "serving", ready_timeout=ready_timeout,
                                    extra_args=traffic.argv() if traffic else ())
    except DeploymentError as exc:
        steps.append(f"not ready: {exc}")
        return _local_failed(first, version, previous, current, str(exc), steps)
    steps.append(f"ready at {info.predict_url}")
    try:
        smoke = smoke_test(lambda r: serving.predict(info, r), rows, expected, limits)
    except BaseException:  # interrupted: the new server goes, the serving one stays
        serving.stop_server(info)
        raise
    steps.append(f"smoke test: {smoke.reason}")
    if not smoke.passed:
        serving.stop_server(info)
        steps.append(f"stopped v{version}")
        result = _local_failed(first, version, previous, current, f"smoke test failed: {smoke.reason}", steps)
        result.smoke = smoke
        return result
    serving.write_state(home, info)
    if traffic:
        traffic_capture.write_endpoint(endpoint_file, "default")
    if current:
        serving.stop_server(current)
        steps.append(f"switched all traffic to v{version}; stopped v{previous}")
    return RolloutResult(CREATED if first else PROMOTED, str(version),
                         "first deployment" if first else "canary passed its smoke test",
                         previous, 100, info.predict_url, smoke, steps)


def _local_failed(first, version, previous, current, reason, steps) -> RolloutResult:
    if first:
        raise DeploymentError(f"version {version} could not be deployed: {reason}")
    steps.append(f"rolled back: v{previous} keeps serving")
    return RolloutResult(ROLLED_BACK, str(version), reason, previous, 0, current.predict_url, steps=steps)


# --------------------------------------------------------------------------------------------
# Cluster target: the InferenceService through the Kubernetes API (KServe SDK client).


def _predictor_url(obj: dict, *, canary: bool) -> str:
    """The URL that reaches the latest revision (the canary) or the service."""
    status = obj.get("status") or {}
    predictor = (status.get("components") or {}).get("predictor") or {}
    if canary:
        for target in predictor.get("traffic") or []:
            if target.get("tag") == "latest" and target.get("url"):
                return target["url"]
    return predictor.get("url") or status.get("url") or ""


def _isvc_predict(url: str, model_name: str):
    import json
    import urllib.request

    endpoint = f"{url.rstrip('/')}/v1/models/{model_name}:predict"

    def predict(rows):
        req = urllib.request.Request(endpoint, data=json.dumps({"instances": rows}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - the service's own URL
            return json.loads(resp.read())["predictions"]

    return predict


def rollout_cluster(api: ClusterApi, manifest: dict, *, rows: list[dict], expected: np.ndarray, limits: SmokeLimits,
                    canary_percent: int = 10, ready_timeout: float = 600.0) -> RolloutResult:
    """Create, or canary-update then promote / roll back, the InferenceService in `manifest`."""
    meta = manifest["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    version = meta["labels"][VERSION_LABEL]
    model_name = meta["name"]
    current = api.get(name, namespace)
    if current is None:
        steps = [f"create {namespace}/{name} with v{version} at 100%"]
        created = api.create(manifest, namespace)
        try:
            ready = api.wait_ready(name, namespace, generation=created.get("metadata", {}).get("generation"),
                                   timeout=ready_timeout)
        except TimeoutError as exc:
            raise DeploymentError(f"version {version} could not be deployed: {exc}") from None
        url = _predictor_url(ready, canary=False)
        smoke = smoke_test(_isvc_predict(url, model_name), rows, expected, limits)
        steps.append(f"smoke test: {smoke.reason}")
        if not smoke.passed:
            raise DeploymentError(f"version {version} failed its smoke test: {smoke.reason}")
        return RolloutResult(CREATED, version, "first deployment", "", 100, url, smoke, steps)

    previous_version = (current.get("metadata", {}).get("labels") or {}).get(VERSION_LABEL, "")
    previous_predictor = copy.deepcopy(current["spec"]["predictor"])
    if previous_version == version and previous_predictor.get("canaryTrafficPercent") in (None, 100) \
            and not kserve_modes.is_canary_pending(current):
        return RolloutResult(NOOP, version, f"version {version} is already serving", previous_version, 100,
                             _predictor_url(current, canary=False), steps=["already serving: nothing to do"])
    mode = kserve_modes.canonical_mode((current.get("metadata", {}).get("annotations") or {}).get(MODE_ANNOTATION)
                                       or (meta.get("annotations") or {}).get(MODE_ANNOTATION) or "Serverless")
    if mode == kserve_modes.STANDARD:
        return _standard_canary(api, manifest, current, previous_version, rows=rows, expected=expected,
                                limits=limits, canary_percent=canary_percent, ready_timeout=ready_timeout)
    steps = [f"canary: v{version} gets {canary_percent}% beside v{previous_version}"]
    new_predictor = copy.deepcopy(manifest["spec"]["predictor"])
    new_predictor["canaryTrafficPercent"] = canary_percent
    patched = api.patch(name, namespace, {
        "metadata": {"labels": meta["labels"], "annotations": {TAG_ROUTING_ANNOTATION: "true"}},
        "spec": {"predictor": new_predictor},
    })
    generation = patched.get("metadata", {}).get("generation")
    smoke = None
    try:
        ready = api.wait_ready(name, namespace, generation=generation, timeout=ready_timeout)
        url = _predictor_url(ready, canary=True)
        steps.append(f"canary ready at {url}")
        smoke = smoke_test(_isvc_predict(url, model_name), rows, expected, limits)
        steps.append(f"smoke test: {smoke.reason}")
        failure = None if smoke.passed else f"smoke test failed: {smoke.reason}"
    except TimeoutError as exc:
        failure = str(exc)
        steps.append(f"not ready: {exc}")
    if failure:
        restore = copy.deepcopy(previous_predictor)
        restore["canaryTrafficPercent"] = None  # merge-patch null: remove the canary
        api.patch(name, namespace, {
            "metadata": {"labels": {VERSION_LABEL: previous_version}},
            "spec": {"predictor": restore},
        })
        steps.append(f"rolled back: previous spec restored, v{previous_version} serves 100%")
        return RolloutResult(ROLLED_BACK, version, failure, previous_version, 0,
                             _predictor_url(current, canary=False), smoke, steps)
    promoted = api.patch(name, namespace, {"spec": {"predictor": {"canaryTrafficPercent": None}}})
    steps.append(f"promoted: v{version} serves 100%")
    return RolloutResult(PROMOTED, version, "canary passed its smoke test", previous_version, 100,
                         _predictor_url(promoted, canary=False) or _predictor_url(current, canary=False), smoke, steps)


def _standard_canary(api: ClusterApi, manifest: dict, current: dict, previous_version: str, *, rows, expected,
                     limits: SmokeLimits, canary_percent: int, ready_timeout: float) -> RolloutResult:
    """Standard mode: the new version as a `spec.canary` entry, smoke-tested through its own
    Service, then promoted (its predictor becomes the predictor) or removed."""
    meta = manifest["metadata"]
    name, namespace, version = meta["name"], meta["namespace"], meta["labels"][VERSION_LABEL]
    variant = kserve_modes.variant_name(version)
    body = kserve_modes.canary_body(manifest, version, canary_percent)
    kserve_modes.refuse_without_spec_canary(api, name, namespace, body)
    steps = [f"canary: v{version} as spec.canary '{variant}' gets {canary_percent}% beside v{previous_version}"]
    patched = api.patch(name, namespace, body)
    smoke = None
    try:
        kserve_modes.wait_canary_ready(api, name, namespace, variant,
                                       generation=patched.get("metadata", {}).get("generation"), timeout=ready_timeout)
        url = api.service_url(f"{name}-{variant}-predictor", namespace)
        steps.append(f"canary ready at {url}")
        smoke = smoke_test(_isvc_predict(url, meta["name"]), rows, expected, limits)
        steps.append(f"smoke test: {smoke.reason}")
        failure = None if smoke.passed else f"smoke test failed: {smoke.reason}"
    except TimeoutError as exc:
        failure = str(exc)
        steps.append(f"not ready: {exc}")
    if failure:
        api.patch(name, namespace, kserve_modes.rollback_body(VERSION_LABEL, previous_version))
        steps.append(f"rolled back: spec.canary removed, v{previous_version} serves 100%")
        return RolloutResult(ROLLED_BACK, version, failure, previous_version, 0,
                             _predictor_url(current, canary=False), smoke, steps)
    promoted = api.patch(name, namespace, kserve_modes.promote_body(manifest, version))
    steps.append(f"promoted: predictor '{variant}' (v{version}) serves 100%; spec.canary removed")
    return RolloutResult(PROMOTED, version, "canary passed its smoke test", previous_version, 100,
                         _predictor_url(promoted, canary=False) or _predictor_url(current, canary=False), smoke, steps)
