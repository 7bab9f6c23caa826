"""A STAND-IN for KServe's controller, for Loopline's runtime, on one machine (no cluster runs here).

For each InferenceService the Kubernetes API stand-in (tests.standins.kubernetes_api) receives, it
does what KServe does for the `loopline-serving` runtime: fetch `storageUri` with KServe's own
storage code (`kserve_storage.Storage.download`, what the storage initializer runs; in its own
virtual environment, as KServe runs it in its own container) and start Loopline's serving image
with the runtime's arguments and the model at /mnt/models (podman or Docker, host network, a free
port). Knative semantics: with `canaryTrafficPercent` the new spec's predictor runs beside the
previous one (tag `latest`); without it the spec's predictor is the only one and the others stop.

Every predictor it started is recorded in `history` (image, storageUri, container, URL) and
`stop_all()` ends them.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from loopline.core.errors import DeploymentError
from loopline.local import serving_container
from loopline.local.container_runner import ContainerError

log = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[2]
STORAGE_LOCK = REPOSITORY / "containers" / "storage-initializer.lock"
STORAGE_VENV = REPOSITORY / ".venv-storage"
DOWNLOAD = "import sys; from kserve_storage import Storage; Storage.download(sys.argv[1], sys.argv[2])"


def storage_initializer_python() -> Path:
    """A virtual environment with kserve-storage from its own lock (it cannot share Loopline's:
    kserve-storage 0.21 needs google-cloud-storage<3). Built once, then reused."""
    python = STORAGE_VENV / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import kserve_storage"],
                                          capture_output=True).returncode == 0:
        return python
    if not STORAGE_LOCK.is_file():
        raise DeploymentError(f"{STORAGE_LOCK} is missing: the KServe stand-in runs from Loopline's source tree")
    subprocess.run([sys.executable, "-m", "venv", str(STORAGE_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-r", str(STORAGE_LOCK)], check=True)
    return python


@dataclass
class Predictor:
    storage_uri: str
    image: str
    model_dir: str
    server: serving_container.ContainerServer

    @property
    def url(self) -> str:
        return self.server.info.url


@dataclass
class KServeControllerStandIn:
    image: str  # Loopline's serving image (the ClusterServingRuntime's container)
    work_dir: Path  # where the storage initializer's downloads go (the pods' /mnt/models)
    ready_timeout: float = 300.0
    predictors: dict[tuple[str, str], dict[str, Predictor]] = field(default_factory=dict)
    stable: dict[tuple[str, str], str] = field(default_factory=dict)  # the storageUri serving 100%
    history: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._python = storage_initializer_python()
        # Chosen now: a run's steps may later reach podman through a Docker API socket that ends with the run.
        self.engine = serving_container.engine()

    def reconcile(self, namespace: str, name: str, obj: dict) -> dict[str, str]:
        """Start what `obj` asks for; return the URLs of the stable and the latest revision."""
        predictor = obj["spec"]["predictor"]
        model = predictor.get("model") or {}
        if model.get("runtime") not in (None, "", "loopline-serving"):
            raise DeploymentError(f"runtime '{model.get('runtime')}' is not served by this stand-in (loopline-serving only)")
        uri = model.get("storageUri") or ""
        if not uri:
            raise DeploymentError("spec.predictor.model.storageUri is empty")
        key = (namespace, name)
        with self._lock:
            running = self.predictors.setdefault(key, {})
            if uri not in running:
                running[uri] = self._start(namespace, name, uri, len(self.history))
            if predictor.get("canaryTrafficPercent") is not None and self.stable.get(key) in running:
                return {"stable": running[self.stable[key]].url, "latest": running[uri].url}
            self.stable[key] = uri
            for other in [u for u in running if u != uri]:
                self._stop(running.pop(other))
            return {"stable": running[uri].url, "latest": running[uri].url}

    def _start(self, namespace: str, name: str, uri: str, index: int) -> Predictor:
        target = self.work_dir / namespace / f"{name}-{index}" / "models"
        fetch = subprocess.run([str(self._python), "-c", DOWNLOAD, uri, str(target)], capture_output=True, text=True,
                               timeout=600, env=os.environ.copy())
        if fetch.returncode != 0:
            tail = (fetch.stderr or fetch.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DeploymentError(f"storage initializer could not fetch {uri}: {tail[0]}")
        for folder, _dirs, files in os.walk(target.parent):  # readable by the image's user, as on a pod volume
            os.chmod(folder, 0o755)
            for f in files:
                os.chmod(os.path.join(folder, f), 0o644)
        server = serving_container.start(self.image, target, model_name=name, ready_timeout=self.ready_timeout,
                                         engine_name=self.engine)
        entry = Predictor(uri, self.image, str(target), server)
        self.history.append({"inference_service": f"{namespace}/{name}", "storage_uri": uri, "image": self.image,
                             "container": server.container, "url": server.info.url, "stopped": False})
        log.info("KServe stand-in: %s/%s serves %s in %s at %s", namespace, name, uri, self.image, server.info.url)
        return entry

    def _stop(self, predictor: Predictor) -> None:
        try:
            predictor.server.stop()
            stopped = True
        except ContainerError as exc:
            log.warning("KServe stand-in: %s", exc)
            stopped = False
        for record in self.history:
            if record["container"] == predictor.server.container:
                record["stopped"] = stopped

    def stop_all(self) -> None:
        with self._lock:
            for running in self.predictors.values():
                for predictor in running.values():
                    self._stop(predictor)
                running.clear()
