"""The few InferenceService calls a cluster rollout makes, through the KServe SDK's client:
get, create, merge-patch (a strict dry run on request) and wait for Ready, with transient API
errors retried."""

from __future__ import annotations

import logging
import time

from loopline.core import services
from loopline.core.errors import DeploymentError
from loopline.serving import inference_service

log = logging.getLogger(__name__)


class ClusterApi:
    """The few InferenceService calls the rollout makes, through `kserve.KServeClient`."""

    def __init__(self, kserve_client=None, *, poll_seconds: float = 2.0, service_url=None):
        if kserve_client is None:
            from kserve import KServeClient

            kserve_client = KServeClient()
            host = kserve_client.api_instance.api_client.configuration.host
            services.reachable("the Kubernetes API", host)  # within the bound, naming the server
        self.client = kserve_client
        self.poll_seconds = poll_seconds
        # The URL of a Kubernetes Service by name: in-cluster DNS unless told otherwise (a port-forward).
        self.service_url = service_url or (lambda service, namespace: f"http://{service}.{namespace}.svc.cluster.local")

    def _api(self):
        return self.client.api_instance

    def _call(self, what: str, fn, *args, attempts: int = 4):
        """Retry transient API errors (429, 5xx, connection failures) with backoff."""
        from kubernetes.client.rest import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        for attempt in range(1, attempts + 1):
            try:
                return fn(*args)
            except ApiException as exc:
                if exc.status != 429 and not 500 <= (exc.status or 0) < 600 or attempt == attempts:
                    raise
                reason = f"HTTP {exc.status}"
            except Urllib3Error as exc:
                if attempt == attempts:
                    raise DeploymentError(f"Kubernetes API unreachable during {what}: {exc}") from None
                reason = type(exc).__name__
            delay = min(8.0, 0.5 * 2 ** (attempt - 1))
            log.warning("%s: transient error (%s); retry %d/%d in %.1fs", what, reason, attempt, attempts - 1, delay)
            time.sleep(delay)

    def get(self, name: str, namespace: str) -> dict | None:
        from kubernetes.client.rest import ApiException

        try:
            return self._call("get", self._api().get_namespaced_custom_object,
                              inference_service.KSERVE_GROUP, inference_service.KSERVE_VERSION, namespace, "inferenceservices", name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, manifest: dict, namespace: str) -> dict:
        return self._call("create", self._api().create_namespaced_custom_object,
                          inference_service.KSERVE_GROUP, inference_service.KSERVE_VERSION, namespace, "inferenceservices", manifest)

    def patch(self, name: str, namespace: str, body: dict, *, dry_run: bool = False) -> dict:
        api = self._api()
        if dry_run:  # strict: fields the cluster's schema lacks are rejected, not dropped
            def call(*args):
                return api.patch_namespaced_custom_object(*args, dry_run="All", field_validation="Strict")
        else:
            call = api.patch_namespaced_custom_object
        return self._call("patch", call, inference_service.KSERVE_GROUP, inference_service.KSERVE_VERSION, namespace,
                          "inferenceservices", name, body)

    def wait_ready(self, name: str, namespace: str, *, generation: int | None, timeout: float) -> dict:
        """Wait until the status has observed `generation` and says Ready; return the object."""
        deadline = time.monotonic() + timeout
        last_reason = "no status yet"
        while True:
            obj = self.get(name, namespace) or {}
            status = obj.get("status") or {}
            observed = status.get("observedGeneration")
            conditions = {c.get("type"): c for c in status.get("conditions", [])}
            ready = conditions.get("Ready", {})
            if ready.get("status") == "True" and (generation is None or observed == generation):
                return obj
            last_reason = ready.get("message") or ready.get("reason") or last_reason
            if time.monotonic() >= deadline:
                raise TimeoutError(f"InferenceService {namespace}/{name} not Ready after {timeout:.0f}s: {last_reason}")
            time.sleep(self.poll_seconds)
