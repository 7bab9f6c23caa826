"""The compiled pipelines shipped with the package, adapted without the KFP compiler.

A running KFP task imports `kfp` in its lean runtime form (no compiler), so a drift-triggered
training run starts from `compiled/training.yaml` as `make compile` wrote it and the package
ships it (`loopline.compiled`), adapted here to the image registry and the cluster settings the
drift monitor was compiled with: the same YAML the compiler writes for those settings
(`tests/test_compiled_pipelines.py` holds the two equal).
"""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path
from typing import Any

from loopline.core.errors import LooplineError
from loopline.ops.cluster import SERVICE_STEPS, ClusterSettings

_IMAGE = re.compile(r"^(?P<registry>.+)/(?P<name>loopline-[a-z]+:[^/]+)$")


def shipped_path(name: str) -> Path:
    """The compiled YAML of the pipeline `name` in the installed package."""
    path = Path(str(resources.files("loopline.compiled") / f"{name}.yaml"))
    if not path.is_file():
        raise LooplineError(f"the package ships no compiled pipeline '{name}' ({path}): run `make compile` and reinstall")
    return path


def _step(component_name: str) -> str:
    """`comp-load-data` -> `load_data`."""
    return component_name.removeprefix("comp-").replace("-", "_")


def retarget_images(spec: dict[str, Any], registry: str) -> None:
    """Point every Loopline image reference of the spec (executors' images and the image
    references passed to steps as constants) at `registry`, same names and tags."""
    shipped = {m["registry"] for e in spec.get("deploymentSpec", {}).get("executors", {}).values()
               if (m := _IMAGE.match(e.get("container", {}).get("image", "")))}

    def walk(value):
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str) and (m := _IMAGE.match(value)) and m["registry"] in shipped:
            return f"{registry.rstrip('/')}/{m['name']}"
        return value

    spec.update(walk(spec))


def _retry_policy(settings: ClusterSettings) -> dict[str, Any]:
    # what PipelineTask.set_retry(num_retries, backoff_duration, backoff_factor=2.0, backoff_max_duration="3600s") compiles to
    return {"backoffDuration": settings.retry_backoff, "backoffFactor": 2.0, "backoffMaxDuration": "3600s",
            "maxRetryCount": settings.retries}


def _named(name: str) -> dict[str, Any]:
    return {"runtimeValue": {"constant": name}}


def kubernetes_config(step: str, settings: ClusterSettings) -> dict[str, Any]:
    """The kfp-kubernetes executor config of one step, as `cluster.configure` compiles it."""
    config: dict[str, Any] = {}
    secrets = [s for s in settings.secrets if not s.steps or step in s.steps]
    if secrets:
        config["secretAsEnv"] = [
            {"keyToEnv": [{"envVar": var, "secretKey": key} for key, var in s.env.items()], "optional": s.optional,
             "secretName": s.name, "secretNameParameter": _named(s.name)}
            for s in secrets
        ]
    if settings.image_pull_secrets:
        config["imagePullSecret"] = [{"secretName": n, "secretNameParameter": _named(n)} for n in settings.image_pull_secrets]
    timeout = settings.timeouts.get(step, settings.timeouts.get("default"))
    if timeout:
        config["activeDeadlineSeconds"] = str(timeout)
    if step in settings.training_steps:
        if settings.node_selector:
            config["nodeSelector"] = {"labels": dict(settings.node_selector)}
        if settings.tolerations:
            config["tolerations"] = [
                {("tolerationSeconds" if k == "toleration_seconds" else k): (str(v) if k == "toleration_seconds" else v)
                 for k, v in t.items()}
                for t in settings.tolerations
            ]
        if settings.optuna_pvc:
            config["pvcMount"] = [{"constant": settings.optuna_pvc, "mountPath": settings.optuna_mount_path,
                                   "pvcNameParameter": _named(settings.optuna_pvc)}]
    return config


def apply_cluster_settings(documents: list[dict[str, Any]], settings: ClusterSettings) -> list[dict[str, Any]]:
    """The pipeline's documents with `settings` in place of the ones it was compiled with
    (retries on the service steps' tasks; the Kubernetes platform document)."""
    spec = documents[0]
    components = spec.get("components", {})
    dags = [spec["root"].get("dag", {})] + [c["dag"] for c in components.values() if "dag" in c]
    for dag in dags:
        for task in dag.get("tasks", {}).values():
            component = components.get(task.get("componentRef", {}).get("name", ""), {})
            if "executorLabel" not in component:
                continue
            if _step(task["componentRef"]["name"]) in SERVICE_STEPS and settings.retries:
                task["retryPolicy"] = _retry_policy(settings)
            else:
                task.pop("retryPolicy", None)
    if not settings.uses_kubernetes:
        return [spec]
    executors = {}
    for name, component in sorted(components.items()):
        if "executorLabel" in component:
            config = kubernetes_config(_step(name), settings)
            if config:
                executors[component["executorLabel"]] = config
    return [spec, {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}]


def adapted_yaml(name: str, *, image_registry: str = "", kubernetes_settings: dict[str, Any] | None = None) -> str:
    """The shipped pipeline `name` as YAML text, for `image_registry` (empty: as shipped) and the
    cluster settings in their file form; the shipped text itself when nothing changes."""
    import yaml

    text = shipped_path(name).read_text()
    settings = ClusterSettings.from_dict(kubernetes_settings, source="kubernetes_settings")
    documents = [d for d in yaml.safe_load_all(text) if d]
    adapted = apply_cluster_settings([copy.deepcopy(documents[0])], settings)
    if image_registry:
        retarget_images(adapted[0], image_registry)
    if adapted == documents:
        return text
    return yaml.safe_dump_all(adapted, sort_keys=False)
