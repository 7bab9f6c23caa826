"""Loopline's serving image on this machine: the container KServe runs, started with Docker or
podman, the model folder mounted where KServe's storage initializer puts it (/mnt/models) and
the ServingRuntime's own arguments. Used by the serving-image tests and `make bench`.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from loopline.local.container_runner import ContainerError, _podman_settings
from loopline.serving import server as serving
from loopline.serving.runtime import HTTP_PORT, POD_ADDRESSES, runtime_manifest

log = logging.getLogger(__name__)


def engine() -> str:
    """`docker` when a Docker engine answers, else `podman`; neither is a one-line error."""
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return "docker"
    if shutil.which("podman"):
        return "podman"
    raise ContainerError("no container engine: install Docker, or podman (sudo containers/engine.sh install)")


@dataclass
class ContainerServer:
    engine: str
    container: str
    info: serving.ServerInfo

    def logs(self) -> str:
        out = subprocess.run([self.engine, "logs", self.container], capture_output=True, text=True, env=_env())
        return out.stdout + out.stderr

    def stop(self) -> None:
        """Remove the container; one line naming it when the engine could not."""
        out = subprocess.run([self.engine, "rm", "-f", self.container], capture_output=True, text=True, env=_env())
        if out.returncode != 0 and subprocess.run([self.engine, "container", "exists", self.container],
                                                  capture_output=True, env=_env()).returncode != 1:
            tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ContainerError(f"{self.engine} could not remove the serving container {self.container}: {tail[0]}")


def _env() -> dict[str, str]:
    import os

    return {**os.environ, **_podman_settings()}


def start(image: str, model_dir: str | Path, *, model_name: str, port: int | None = None,
          ready_timeout: float = 180.0, engine_name: str = "") -> ContainerServer:
    """Run the serving image as KServe would (runtime arguments, model at /mnt/models, read-only)."""
    eng = engine_name or engine()
    port = port or serving.free_port()
    if subprocess.run([eng, "image", "inspect", image], capture_output=True, env=_env()).returncode != 0:
        raise ContainerError(f"image {image} is missing: build it with `make images`")
    # host network on this machine: loopback only, where a pod listens on its own addresses
    args = [a.replace("{{.Name}}", model_name).replace(f"={HTTP_PORT}", f"={port}")
            .replace(f"--host={POD_ADDRESSES}", f"--host={serving.LOOPBACK}")
            for a in runtime_manifest(image=image)["spec"]["containers"][0]["args"]]
    name = f"loopline-serving-{model_name}-{port}"
    run = subprocess.run(
        [eng, "run", "-d", "--rm", "--name", name, "--network", "host", "--user", "10001:10001",
         "-v", f"{Path(model_dir).resolve()}:/mnt/models:ro", image, *args],
        capture_output=True, text=True, env=_env(),
    )
    if run.returncode != 0:
        raise ContainerError(f"{eng} run {image} failed: {(run.stderr or run.stdout).strip().splitlines()[-1:]}")
    server = ContainerServer(eng, name, serving.ServerInfo(model_name, "", 0, port, "/mnt/models", ""))
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        try:
            if serving._http_json(f"{server.info.url}/v1/models/{model_name}", timeout=2).get("ready"):
                log.info("serving image %s is ready at %s", image, server.info.predict_url)
                return server
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            pass
        state = subprocess.run([eng, "inspect", "-f", "{{.State.Running}}", name], capture_output=True, text=True,
                               env=_env())
        if state.returncode != 0 or state.stdout.strip() == "false":
            tail = server.logs().strip().splitlines()[-1:] or ["no output"]
            server.stop()
            raise ContainerError(f"the serving container exited: {tail[0]}")
        time.sleep(1.0)
    tail = server.logs().strip().splitlines()[-1:] or ["no output"]
    server.stop()
    raise ContainerError(f"the serving container was not ready after {ready_timeout:.0f}s: {tail[0]}")
