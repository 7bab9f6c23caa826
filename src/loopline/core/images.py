"""The one place where Loopline's container images are declared.

Every component runs on one of these images. Tags derive from the package version (never
`latest`); the registry prefix is a compile-time setting (`LOOPLINE_IMAGE_REGISTRY`, or
`loopline compile --registry`) so that a team can mirror the images. Standard library only:
component and pipeline modules import this at compile time.
"""

from __future__ import annotations

import os
import re
from importlib.metadata import PackageNotFoundError, version

from loopline.core.errors import LooplineError

DEFAULT_REGISTRY = "ghcr.io/loopline"
REGISTRY_ENV = "LOOPLINE_IMAGE_REGISTRY"

DOCKERFILE = "containers/Dockerfile"
# image role -> the Dockerfile that builds it; the role is also the Dockerfile's build target
ROLES: dict[str, str] = {
    "base": DOCKERFILE,  # data, validation, drift and registry steps
    "trainer": DOCKERFILE,  # TensorFlow, Optuna: training and evaluation
    "deployer": DOCKERFILE,  # KServe SDK, Kubernetes client, TF for smoke tests
    "serving": DOCKERFILE,  # the model server KServe runs (Loopline's ServingRuntime); no step runs on it
}


def package_version() -> str:
    try:
        return version("loopline")
    except PackageNotFoundError:  # pragma: no cover - source tree that is not installed
        return "0.0.0"


# a registry host (with an optional port) and lowercase path components, as image references take them
_REGISTRY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]+)?(/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


def check_registry(value: str, name: str = "image registry") -> str:
    """A registry prefix an image reference can start with, e.g. `my.registry:5000/loopline`."""
    if not isinstance(value, str) or not _REGISTRY.match(value.rstrip("/")):
        raise LooplineError(f"{name} {value!r} is not an image registry prefix (a host such as my.registry:5000, "
                            "then lowercase path parts: no spaces or capitals)")
    return value


def registry() -> str:
    return os.environ.get(REGISTRY_ENV, DEFAULT_REGISTRY).rstrip("/")


def image(role: str) -> str:
    """The full image reference for a role, e.g. `ghcr.io/loopline/loopline-trainer:0.1.0`."""
    if role not in ROLES:
        raise KeyError(f"unknown image role '{role}' (known: {', '.join(ROLES)})")
    return f"{registry()}/loopline-{role}:{package_version()}"


BASE_IMAGE = image("base")
TRAINER_IMAGE = image("trainer")
DEPLOYER_IMAGE = image("deployer")
SERVING_IMAGE = image("serving")
