"""kfp.local's DockerRunner for `loopline run --runner docker`: every step in the image its
compiled YAML names, as the image's non-root user (uid 10001).

A Docker engine is used when one answers (DOCKER_HOST, or the default socket). Otherwise podman
serves the same API: this module starts `podman system service` on a socket of its own (with
Loopline's podman settings from containers/podman/ when they are at hand, runc and cgroupfs) and
stops it at the end.

DockerRunner mounts only the pipeline root into a step's container (at the same path). So the
loop's local state that steps share (the SQLite MLflow store, local model server state, local data
files) lives under the pipeline root, which the image's user must be able to write; data and
artifacts on object storage (s3://, gs://) and an MLflow server on loopback (host networking)
are reached as in a cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from loopline.core.errors import LooplineError
from loopline.core.processes import stop_group

log = logging.getLogger("loopline.containers")

IMAGE_UID = 10001
ENGINE_HINT = (
    "no container engine answers: install Docker (and start it), or podman "
    "(sudo apt-get install podman runc, or sudo containers/engine.sh install)"
)
# Host variables the steps see: object-store and MLflow credentials and endpoints, Loopline's own.
PASSED_PREFIXES = ("AWS_", "MLFLOW_", "GOOGLE_", "GCS_", "LOOPLINE_", "KF_PIPELINES_")
PASSED_NAMES = {"KUBECONFIG"}  # the Kubernetes API the deploy step talks to, as a cluster's pod has it
NOT_PASSED = {"LOOPLINE_HOME", "LOOPLINE_IMAGE_CONTRACT", "MLFLOW_TRACKING_URI"}


class ContainerError(LooplineError):
    """No container engine, a missing image, or a step that failed in its container."""


def _podman_settings() -> dict[str, str]:
    """CONTAINERS_CONF / CONTAINERS_STORAGE_CONF: the caller's, else containers/podman/ of a checkout."""
    env = {}
    for folder in (Path.cwd() / "containers" / "podman", Path(__file__).resolve().parents[2] / "containers" / "podman"):
        if (folder / "containers.conf").is_file():
            env.setdefault("CONTAINERS_CONF", str(folder / "containers.conf"))
            env.setdefault("CONTAINERS_STORAGE_CONF", str(folder / "storage.conf"))
            break
    return {k: os.environ.get(k, v) for k, v in env.items()}


def _ping(base_url: str | None, timeout: float = 5.0) -> bool:
    import docker

    try:
        client = docker.DockerClient(base_url=base_url, timeout=timeout) if base_url else docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


class Engine:
    """A Docker API endpoint for the duration of a run (`with Engine(state_dir) as engine:`)."""

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.kind = ""
        self.base_url = ""
        self._service: subprocess.Popen | None = None
        self._saved_host: str | None = None
        self._reaper: threading.Thread | None = None
        self._socket_dir: Path | None = None
        self._stopping = threading.Event()

    def __enter__(self) -> Engine:
        self._saved_host = os.environ.get("DOCKER_HOST")
        if _ping(None):
            self.kind, self.base_url = "docker", os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
            return self
        if not shutil.which("podman"):
            raise ContainerError(ENGINE_HINT)
        try:
            self._start_podman()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_podman(self, timeout: float = 60.0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # A Unix socket's path is limited to 107 bytes: a short folder of its own, not the home.
        self._socket_dir = Path(tempfile.mkdtemp(prefix="loopline-podman-"))
        socket = self._socket_dir / "api.sock"
        self.base_url = f"unix://{socket}"
        log_path = self.state_dir / "podman-service.log"
        with open(log_path, "ab") as out:
            self._service = subprocess.Popen(
                ["podman", "system", "service", "--time=0", self.base_url],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **_podman_settings()},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._service.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise ContainerError(f"podman's API service exited at once: {tail[0]} (see {log_path})")
            if socket.exists() and _ping(self.base_url):
                self.kind = "podman"
                os.environ["DOCKER_HOST"] = self.base_url
                self._reaper = threading.Thread(target=self._reap, name="podman-cleanup", daemon=True)
                self._reaper.start()
                log.info("started podman's Docker API service on %s", self.base_url)
                return
            time.sleep(0.3)
        self.stop()
        raise ContainerError(f"podman's API service did not answer on {self.base_url} within {timeout:.0f}s (see {log_path})")

    def _podman(self, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, **_podman_settings()})
        return result.stdout

    def _reap(self, every: float = 0.5, remove_after: float = 15.0) -> None:
        """Where conmon cannot run podman's exit command (it logs to syslog, and hosts without a
        syslog socket make that command fail), a finished container stays `stopped`: the API's
        wait and log stream never end. Finish the clean-up here so that they do; containers
        started with auto-remove are removed a little later, once their exit code was read."""
        cleaned: dict[str, float] = {}
        while not self._stopping.wait(every):
            try:
                for cid in self._podman("ps", "-a", "--filter", "status=stopped", "--format", "{{.ID}}").split():
                    self._podman("container", "cleanup", cid)
                    cleaned.setdefault(cid, time.monotonic())
                now = time.monotonic()
                for cid, since in list(cleaned.items()):
                    if now - since > remove_after:
                        self._remove_if_auto(cid)
                        cleaned.pop(cid)
            except (OSError, subprocess.SubprocessError) as exc:
                log.debug("podman clean-up: %s", exc)
        for cid in cleaned:
            self._remove_if_auto(cid)

    def _remove_if_auto(self, cid: str) -> None:
        if self._podman("inspect", "--format", "{{.HostConfig.AutoRemove}}", cid).strip() == "true":
            self._podman("rm", "--force", cid)

    def stop(self) -> None:
        self._stopping.set()
        if self._reaper is not None:
            self._reaper.join(timeout=60)
            self._reaper = None
        if self._service is not None:
            stop_group(self._service)
            self._service = None
            log.info("stopped podman's Docker API service")
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        if self._saved_host is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = self._saved_host

    def __exit__(self, *exc) -> None:
        self.stop()

    def check_images(self, refs: list[str]) -> None:
        """One line naming the first image the engine does not hold."""
        import docker

        client = docker.DockerClient(base_url=self.base_url, timeout=60)
        try:
            held = {tag for image in client.images.list() for tag in image.tags}
        finally:
            client.close()
        for ref in sorted(set(refs)):
            if ref not in held and f"docker.io/{ref}" not in held and f"localhost/{ref}" not in held:
                raise ContainerError(f"image {ref} is missing from {self.kind}: build it with `make images`")


def step_images(pipeline) -> dict[str, str]:
    """Task name (as kfp.local names its folders, e.g. `train-model`) -> the image of its executor."""
    from google.protobuf import json_format

    spec = pipeline.pipeline_spec
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
    out: dict[str, str] = {}

    def walk(dag, components):
        for task_name, task in dag.tasks.items():
            component = components[task.component_ref.name]
            if component.dag.tasks:
                walk(component.dag, components)
            elif component.executor_label in executors:
                container = executors[component.executor_label].get("container")
                if container:
                    out[task_name] = container["image"]

    walk(spec.root.dag, spec.components)
    return out


def container_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if (k.startswith(PASSED_PREFIXES) or k in PASSED_NAMES) and k not in NOT_PASSED}


def docker_runner():
    from kfp import local

    # Host networking: an MLflow server or an object store on loopback is reachable from the steps.
    return local.DockerRunner(network_mode="host", environment=container_env())


@contextlib.contextmanager
def writable_by_steps():
    """Folders and files made meanwhile are writable by every user (umask 0), like /tmp's contents."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def shared_dir(root: Path) -> Path:
    """A folder under the pipeline root that the image's user can write (mode 1777, like /tmp)."""
    for folder in (root, root / "loopline"):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o1777)
    return root / "loopline"


def share_store(tracking_uri: str, shared: Path) -> None:
    """A local SQLite MLflow store under the shared folder, writable by the image's user: SQLite
    creates its file 0644 whatever the umask, and the steps' uid is not the host's."""
    if not tracking_uri.startswith("sqlite:///"):
        return
    path = Path(tracking_uri[len("sqlite:///"):])
    if shared in path.parents and path.is_file():
        path.chmod(0o666)


def visible(uri: str, shared: Path) -> str:
    """A local data file copied under the pipeline root (the only host path a step sees)."""
    if not uri or "://" in uri.replace("file://", "", 1):
        return uri
    source = Path(uri.replace("file://", "", 1)).resolve()
    if shared in source.parents:
        return str(source)
    target = shared / "data" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.parent.chmod(0o1777)
    shutil.copyfile(source, target)
    target.chmod(0o644)
    return str(target)


def check_tasks(run_dir: Path, images: dict[str, str]) -> None:
    """kfp.local can log a step as SUCCESS although its container failed: a task folder without
    an executor output is a failed step."""
    for folder in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        if not (folder / "executor_output.json").is_file():
            image = images.get(folder.name) or images.get(folder.name.rsplit("-", 1)[0], "its image")
            raise ContainerError(f"step {folder.name} failed in {image} (no executor output; its log is above)")


def annotate(summary: dict[str, Any], images: dict[str, str], engine: str) -> None:
    """Add the image that ran each step to the summary."""
    summary["runner"] = f"docker ({engine})"
    for entry in summary["pipelines"]:
        for step in entry["steps"]:
            name = step["task"]
            step["image"] = images.get(name) or images.get(name.rsplit("-", 1)[0], "")
