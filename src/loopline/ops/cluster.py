"""Cluster settings: applied to the pipelines' tasks at compile time, with kfp-kubernetes.

`loopline compile --kubernetes-config cluster.yaml` compiles the pipelines with them; without a
file the YAML carries only what every target understands (retries on the steps that talk to
services). The file holds names, never secret values: Kubernetes secrets are referenced by name
and become environment variables of the steps (MLflow and storage credentials), so nothing
secret ever appears in compiled YAML.

    secrets:                      # Kubernetes secrets -> environment variables
      - name: loopline-mlflow
        env: {username: MLFLOW_TRACKING_USERNAME, password: MLFLOW_TRACKING_PASSWORD}
        steps: [register_model, deploy_model, trigger_training]   # default: every step
        optional: false
    image_pull_secrets: [loopline-registry]
    optuna_storage: {pvc: loopline-optuna, mount_path: /mnt/optuna}
    training:                     # node placement of the training step(s)
      steps: [tune_model, train_model]
      node_selector: {cloud.google.com/gke-nodepool: training}
      tolerations: [{key: dedicated, operator: Equal, value: training, effect: NoSchedule}]
    timeouts: {default: 3600, train_model: 21600}   # seconds per step
    retries: {count: 3, backoff: 30s}               # steps that talk to services

Vertex AI ignores the Kubernetes part (`loopline submit` leaves it out for Vertex); retries
apply on both targets. Standard library and `kfp` only at module level: the pipeline modules
import this at compile time.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopline.core import rules
from loopline.core.errors import LooplineError
from loopline.ops.params import read_yaml_file

# Steps that call a service (object storage, MLflow, the Kubernetes or KFP/Vertex API): retried.
SERVICE_STEPS = ("load_data", "detect_drift", "register_model", "deploy_model", "trigger_training")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_DURATION = re.compile(r"^\d+(\.\d+)?s$")
_TOP_KEYS = {"secrets", "image_pull_secrets", "optuna_storage", "training", "timeouts", "retries"}
_TOLERATION_KEYS = {"key", "operator", "value", "effect", "toleration_seconds"}


class ClusterConfigError(LooplineError):
    """The cluster settings file cannot be used."""


@dataclass
class SecretEnv:
    name: str
    env: dict[str, str]  # secret key -> environment variable
    steps: list[str] = field(default_factory=list)  # empty: every step
    optional: bool = False


@dataclass
class ClusterSettings:
    secrets: list[SecretEnv] = field(default_factory=list)
    image_pull_secrets: list[str] = field(default_factory=list)
    optuna_pvc: str = ""
    optuna_mount_path: str = "/mnt/optuna"
    training_steps: list[str] = field(default_factory=lambda: ["tune_model", "train_model"])
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    timeouts: dict[str, int] = field(default_factory=dict)  # step (or "default") -> seconds
    retries: int = 3
    retry_backoff: str = "30s"

    def to_dict(self) -> dict[str, Any]:
        """The settings in the file's form (what `from_dict` reads)."""
        out: dict[str, Any] = {}
        if self.secrets:
            out["secrets"] = [
                {"name": s.name, "env": dict(s.env), **({"steps": list(s.steps)} if s.steps else {}),
                 **({"optional": True} if s.optional else {})}
                for s in self.secrets
            ]
        if self.image_pull_secrets:
            out["image_pull_secrets"] = list(self.image_pull_secrets)
        if self.optuna_pvc:
            out["optuna_storage"] = {"pvc": self.optuna_pvc, "mount_path": self.optuna_mount_path}
        if self.node_selector or self.tolerations or self.training_steps != ["tune_model", "train_model"]:
            out["training"] = {"steps": list(self.training_steps), "node_selector": dict(self.node_selector),
                               "tolerations": [dict(t) for t in self.tolerations]}
        if self.timeouts:
            out["timeouts"] = dict(self.timeouts)
        if (self.retries, self.retry_backoff) != (3, "30s"):
            out["retries"] = {"count": self.retries, "backoff": self.retry_backoff}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, *, source: str = "cluster settings") -> ClusterSettings:
        data = data or {}
        if not isinstance(data, dict):
            raise ClusterConfigError(f"{source}: expected a mapping of settings, got a {type(data).__name__}")
        _no_unknown(data, _TOP_KEYS, source)
        steps = set(_step_names())
        settings = cls()
        for i, entry in enumerate(_list(data.get("secrets"), f"{source}: secrets")):
            where = f"{source}: secrets[{i}]"
            entry = _mapping(entry, where)
            _no_unknown(entry, {"name", "env", "steps", "optional"}, where)
            env = _mapping(entry.get("env"), f"{where}.env")
            if not env:
                raise ClusterConfigError(f"{where}.env: map at least one secret key to an environment variable")
            for key, var in env.items():
                if not _SECRET_KEY.match(str(key)):
                    raise ClusterConfigError(f"{where}.env: a key is not a secret key name (letters, digits, '-', '_' "
                                             "and '.'); the value is not repeated here in case it is a secret")
                if not _ENV_VAR.match(str(var)):
                    # never echo it: a value that is no variable name may be the secret itself
                    raise ClusterConfigError(
                        f"{where}.env: the value of key '{key}' is not an environment variable name (the file names "
                        "variables, such as MLFLOW_TRACKING_PASSWORD; secret values stay in the Kubernetes secret, "
                        "and are not repeated here)"
                    )
            settings.secrets.append(SecretEnv(
                name=_k8s_name(entry.get("name"), f"{where}.name"), env={str(k): str(v) for k, v in env.items()},
                steps=_steps(entry.get("steps"), steps, f"{where}.steps"), optional=bool(entry.get("optional", False)),
            ))
        settings.image_pull_secrets = [_k8s_name(n, f"{source}: image_pull_secrets")
                                       for n in _list(data.get("image_pull_secrets"), f"{source}: image_pull_secrets")]
        if data.get("optuna_storage") is not None:
            storage = _mapping(data["optuna_storage"], f"{source}: optuna_storage")
            _no_unknown(storage, {"pvc", "mount_path"}, f"{source}: optuna_storage")
            settings.optuna_pvc = _k8s_name(storage.get("pvc"), f"{source}: optuna_storage.pvc")
            settings.optuna_mount_path = str(storage.get("mount_path") or settings.optuna_mount_path)
            if not settings.optuna_mount_path.startswith("/"):
                raise ClusterConfigError(f"{source}: optuna_storage.mount_path must be an absolute path")
        if data.get("training") is not None:
            training = _mapping(data["training"], f"{source}: training")
            _no_unknown(training, {"steps", "node_selector", "tolerations"}, f"{source}: training")
            if training.get("steps") is not None:
                settings.training_steps = _steps(training["steps"], steps, f"{source}: training.steps")
            settings.node_selector = {str(k): str(v) for k, v in _mapping(training.get("node_selector"), f"{source}: training.node_selector").items()}
            for j, toleration in enumerate(_list(training.get("tolerations"), f"{source}: training.tolerations")):
                toleration = _mapping(toleration, f"{source}: training.tolerations[{j}]")
                _no_unknown(toleration, _TOLERATION_KEYS, f"{source}: training.tolerations[{j}]")
                settings.tolerations.append({k: _whole(v) for k, v in toleration.items()})
        for step, seconds in _mapping(data.get("timeouts"), f"{source}: timeouts").items():
            seconds = _whole(seconds)
            if step != "default" and step not in steps:
                raise ClusterConfigError(f"{source}: timeouts: '{step}' is not a Loopline step (known: default, {', '.join(sorted(steps))})")
            if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds <= 0:
                raise ClusterConfigError(f"{source}: timeouts.{step} must be a positive number of seconds, got {seconds!r}")
            settings.timeouts[str(step)] = seconds
        if data.get("retries") is not None:
            retries = _mapping(data["retries"], f"{source}: retries")
            _no_unknown(retries, {"count", "backoff"}, f"{source}: retries")
            settings.retries = _whole(retries.get("count", settings.retries))
            settings.retry_backoff = str(retries.get("backoff", settings.retry_backoff))
            if not isinstance(settings.retries, int) or isinstance(settings.retries, bool) or settings.retries < 0:
                raise ClusterConfigError(f"{source}: retries.count must be 0 or more, got {settings.retries!r}")
            if not _DURATION.match(settings.retry_backoff):
                raise ClusterConfigError(f"{source}: retries.backoff must be seconds like '30s', got '{settings.retry_backoff}'")
        return settings

    @property
    def uses_kubernetes(self) -> bool:
        return bool(self.secrets or self.image_pull_secrets or self.optuna_pvc or self.node_selector
                    or self.tolerations or self.timeouts)


@dataclass(frozen=True, kw_only=True)
class TrainResources:
    """The resources of the tuning and training tasks, compiled into their pods from the training
    pipeline's `train_*` parameters; the one declaration of their rules. Checked on construction:
    quantities Kubernetes takes, a request no larger than its limit."""

    cpu_request: str = "1"
    cpu_limit: str = "2"
    memory_request: str = "2G"
    memory_limit: str = "8G"
    accelerator_type: str = "nvidia.com/gpu"
    accelerator_count: int = 0  # 0: no accelerator

    def __post_init__(self) -> None:
        """The checks of the training resources, each a one-line ClusterConfigError."""
        for name in ("cpu_request", "cpu_limit", "memory_request", "memory_limit"):
            rules.quantity(f"train_{name}", getattr(self, name), ClusterConfigError)
        for kind in ("cpu", "memory"):
            request, limit = getattr(self, f"{kind}_request"), getattr(self, f"{kind}_limit")
            if rules.quantity_value(request) > rules.quantity_value(limit):
                raise ClusterConfigError(f"train_{kind}_request ({request}) is above train_{kind}_limit ({limit}); "
                                         "Kubernetes refuses a request larger than its limit")
        rules.number("train_accelerator_count", self.accelerator_count, ClusterConfigError, low=0, whole=True)
        if self.accelerator_count and not str(self.accelerator_type or "").strip():
            raise ClusterConfigError("train_accelerator_type is empty: name the accelerator, e.g. nvidia.com/gpu")


def _whole(value: Any) -> Any:
    """Whole numbers come back as floats from a KFP struct parameter (JSON numbers): 3600.0 -> 3600."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _step_names() -> list[str]:
    """The steps: one per component folder, read from the files without importing the components
    (they sit in a layer above, and a running KFP task cannot import them)."""
    spec = importlib.util.find_spec("loopline.components")
    folders = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    return sorted(d.name for folder in folders for d in folder.iterdir() if (d / "component.py").is_file())


def _no_unknown(data: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise ClusterConfigError(f"{where}: unknown setting '{unknown[0]}' (known: {', '.join(sorted(known))})")


def _kind(value: Any) -> str:
    """What a value is, never the value itself: a misplaced value may be a secret."""
    return {list: "a list", dict: "a mapping", str: "text", bool: "true/false"}.get(type(value), f"a {type(value).__name__}")


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ClusterConfigError(f"{where}: expected a mapping, got {_kind(value)}")
    return value


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ClusterConfigError(f"{where}: expected a list, got {_kind(value)}")
    return value


def _k8s_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _K8S_NAME.match(value) or len(value) > 253:
        raise ClusterConfigError(f"{where}: {value!r} is not a Kubernetes object name")
    return value


def _steps(value: Any, known: set[str], where: str) -> list[str]:
    names = [str(s) for s in _list(value, where)]
    for name in names:
        if name not in known:
            raise ClusterConfigError(f"{where}: '{name}' is not a Loopline step (known: {', '.join(sorted(known))})")
    return names


def load(path: str | Path) -> ClusterSettings:
    """Read a cluster settings file (YAML)."""

    return ClusterSettings.from_dict(read_yaml_file(path, "cluster settings file", ClusterConfigError), source=str(path))


def configure(task, step: str, settings: ClusterSettings):
    """Apply the settings to one pipeline task of the component `step`; returns the task."""
    if step in SERVICE_STEPS and settings.retries:
        task.set_retry(num_retries=settings.retries, backoff_duration=settings.retry_backoff, backoff_factor=2.0,
                       backoff_max_duration="3600s")
    if not settings.uses_kubernetes:
        return task
    from kfp import kubernetes

    for secret in settings.secrets:
        if not secret.steps or step in secret.steps:
            kubernetes.use_secret_as_env(task, secret_name=secret.name, secret_key_to_env=dict(secret.env),
                                         optional=secret.optional)
    if settings.image_pull_secrets:
        kubernetes.set_image_pull_secrets(task, list(settings.image_pull_secrets))
    timeout = settings.timeouts.get(step, settings.timeouts.get("default"))
    if timeout:
        kubernetes.set_timeout(task, timeout)
    if step in settings.training_steps:
        for label, value in settings.node_selector.items():
            kubernetes.add_node_selector(task, label_key=label, label_value=value)
        for toleration in settings.tolerations:
            kubernetes.add_toleration(task, **toleration)
        if settings.optuna_pvc:
            kubernetes.mount_pvc(task, pvc_name=settings.optuna_pvc, mount_path=settings.optuna_mount_path)
    return task
