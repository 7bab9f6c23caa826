"""`make bench BENCH=containers`: image sizes, build times with a cold and a warm layer cache, and
the loop in the images beside the same loop in this environment (a ratio, one run each).

The cold build passes --no-cache (the base image stays: pulling it, or building the stand-in, is
not counted); the warm build follows it with every layer cached, as after a source-only change
nothing but the project layers would rebuild.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from loopline.core.images import ROLES, image
from loopline.local.container_runner import Engine

REPO = Path(__file__).resolve().parents[2]


def _build(no_cache: bool) -> float:
    env = {**os.environ, **({"NO_CACHE": "1"} if no_cache else {})}
    started = time.perf_counter()
    subprocess.run([str(REPO / "containers" / "engine.sh"), "images"], cwd=REPO, env=env, check=True)
    return round(time.perf_counter() - started, 1)


def _sizes(engine) -> dict[str, float]:
    import docker

    client = docker.DockerClient(base_url=engine.base_url, timeout=120)
    try:
        return {role: round(client.images.get(image(role)).attrs["Size"] / 1e9, 2) for role in ROLES}
    finally:
        client.close()


def _loop(home: Path, runner: str) -> tuple[float, dict[str, Any]]:
    from loopline.data.demo import DEMO_IGNORE, DEMO_TARGET, prepare_demo_data
    from loopline.local import run as local

    if home.exists():
        shutil.rmtree(home)
    data_uri, current_uri = prepare_demo_data(home)
    settings = local.LoopSettings(home=home, data_uri=data_uri, target=DEMO_TARGET, current_uri=current_uri,
                                  ignore_columns=list(DEMO_IGNORE), runner=runner)
    started = time.perf_counter()
    summary = local.run_loop(settings)
    return round(time.perf_counter() - started, 1), summary


def bench_containers(home: Path) -> list[dict[str, Any]]:
    home = home / "containers"
    cold = _build(no_cache=True)
    warm = _build(no_cache=False)
    with Engine(home / "engine") as engine:
        sizes = _sizes(engine)
        kind = engine.kind
    subprocess_seconds, local_summary = _loop(home / "subprocess", "subprocess")
    docker_seconds, docker_summary = _loop(home / "docker", "docker")
    same = [(p.get("gate_passed"), p.get("registered_version")) for p in local_summary["pipelines"]] == \
        [(p.get("gate_passed"), p.get("registered_version")) for p in docker_summary["pipelines"]]
    return [
        {"name": "containers_images", "engine": kind, "size_gb": sizes,
         "build_cold_seconds": cold, "build_warm_seconds": warm},
        {"name": "containers_loop", "rows": 6000, "subprocess_seconds": subprocess_seconds,
         "docker_seconds": docker_seconds, "ratio": round(docker_seconds / subprocess_seconds, 2),
         "same_verdicts_and_versions": same},
    ]
