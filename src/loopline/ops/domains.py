"""The documented domain of every pipeline parameter, checked before any work starts.

Every rule lives in a step's settings object (`__post_init__`): TuningSettings, DriftSettings,
EscalationSettings, RetrainSettings, SplitSettings, DeploySettings, GateSettings and the training
tasks' TrainResources. This module holds no rule of its own: it gathers a pipeline's parameters
by building those objects, so that `loopline run`, `loopline submit`/`schedule` (with or without
--dry-run), a drift-triggered submission and the steps themselves refuse a value with the same
one line, naming the parameter, before any data is read or any model trained. `check_data` adds
the rules that need the data's columns (a fairness slice column the holdout will not have).
"""

from __future__ import annotations

from typing import Any

from loopline.core.errors import LooplineError
from loopline.data import tables as data
from loopline.drift.settings import DriftSettings
from loopline.evaluation import gate as gate_config
from loopline.ops import cluster, reruns
from loopline.serving import targets
from loopline.tuning import study as tuning


class DomainError(LooplineError):
    """A parameter is outside its documented domain."""


# Each settings object and its fields, by the pipeline parameter that sets them: (pipeline
# parameter -> settings field). A parameter may set fields of several objects.
SETTINGS: list[tuple[type, dict[str, str]]] = [
    (tuning.TuningSettings, {**{n: n for n in ("n_trials", "max_epochs", "timeout_seconds", "objective", "pruner",
                                               "search_space", "seed", "study_name")},
                             "tuning_storage_url": "storage_url"}),
    (DriftSettings, {n: n for n in ("drift_share", "numeric_test", "categorical_test", "current_last_rows",
                                    "report_sample_rows", "feature_kinds", "ignore_columns", "critical_features",
                                    "null_rate_threshold")}),
    (reruns.EscalationSettings, {n: n for n in ("drift_share", "escalation_threshold", "rerun_mode")}),
    (reruns.RetrainSettings, {**{n: n for n in ("rerun_target", "cooldown_hours", "kfp_host", "vertex_project",
                                                "vertex_location", "image_registry")},
                              "training_pipeline_root": "pipeline_root",
                              "training_service_account": "service_account"}),
    (data.SplitSettings, {n: n for n in ("feature_kinds", "ignore_columns", "validation_fraction", "holdout_fraction",
                                         "seed", "partition_filter")}),
    (targets.DeploySettings, {**{n: n for n in ("namespace", "storage_uri", "canary_percent", "smoke_rows")},
                              "deploy_target": "target", "deploy_mode": "deployment_mode",
                              "deploy_canary_percent": "canary_percent", "deploy_service_account": "service_account",
                              "deploy_runtime": "runtime", "deploy_runtime_version": "runtime_version",
                              "deploy_min_replicas": "min_replicas", "deploy_max_replicas": "max_replicas",
                              "deploy_cpu": "cpu", "deploy_memory": "memory"}),
    (cluster.TrainResources, {f"train_{n}": n for n in ("cpu_request", "cpu_limit", "memory_request", "memory_limit",
                                                        "accelerator_type", "accelerator_count")}),
]
# Built only when the gate rules are given: they have no default (no rule is an error).
GATE_FIELDS = {"thresholds": "thresholds", "tracking_uri": "tracking_uri", "model_name": "model_name"}


def _build(settings_class: type, fields: dict[str, str], given: dict[str, Any]):
    chosen = {field: given[name] for name, field in fields.items() if name in given}
    if chosen.get("search_space") == {}:
        chosen.pop("search_space")
    try:
        return settings_class(**chosen)  # its checks raise one line naming the setting
    except LooplineError as exc:
        # a pipeline parameter that sets a field of another name is named first
        for name, field in fields.items():
            if name != field and name in given and str(exc).startswith(field) and not str(exc).startswith(name):
                raise type(exc)(f"{name}: {exc}") from exc
        raise


def check(values: dict[str, Any]) -> None:
    """Raise one line naming the first parameter of `values` outside its domain. Names this
    module does not know are left to their own checks (types are checked by `params.check`)."""
    given = {k: v for k, v in values.items() if v is not None}
    if "thresholds" in given:
        _build(gate_config.GateSettings, GATE_FIELDS, given)
    for settings_class, fields in SETTINGS:
        if any(name in given for name in fields):
            _build(settings_class, fields, given)


def check_data(values: dict[str, Any], columns, where: str) -> None:
    """The rules on `values` that need the data: the gate's fairness slice column must be one of
    `columns` (the features and the target of the data `where` names, what the holdout keeps)."""
    if values.get("thresholds"):
        gate = _build(gate_config.GateSettings, GATE_FIELDS, {k: v for k, v in values.items() if v is not None})
        gate_config.check_columns(gate.config, list(columns), where)
