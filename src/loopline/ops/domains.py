"""The documented domain of every pipeline parameter, checked before any work starts.

One set of rules, by parameter name, for everyone who takes these values: `loopline run`,
`loopline submit`/`schedule` (with or without --dry-run), a drift-triggered submission, and the
steps themselves. Each rule is the one its library owns (tuning settings, the gate configuration,
drift settings, the escalation rule); this module gathers them by name so that a wrong value is
one line naming the parameter, before any data is read or any model trained.
"""

from __future__ import annotations

import math
from typing import Any

from loopline.core.errors import LooplineError
from loopline.data import tables as data
from loopline.drift.settings import DriftSettings
from loopline.evaluation import gate as gate_config
from loopline.ops import reruns
from loopline.serving import rollout
from loopline.tuning import study as tuning


class DomainError(LooplineError):
    """A parameter is outside its documented domain."""


# Each step's settings object holds its parameters' rules (`__post_init__`); a pipeline parameter
# is checked by building the settings object it belongs to. (pipeline parameter, settings field)
SETTINGS: list[tuple[type, dict[str, str]]] = [
    (tuning.TuningSettings, {n: n for n in ("n_trials", "max_epochs", "timeout_seconds", "objective", "pruner",
                                            "search_space")}),
    (DriftSettings, {n: n for n in ("drift_share", "numeric_test", "categorical_test", "current_last_rows",
                                    "report_sample_rows")}),
    (reruns.EscalationSettings, {n: n for n in ("drift_share", "escalation_threshold", "rerun_mode")}),
    (reruns.RetrainSettings, {n: n for n in ("rerun_target", "cooldown_hours")}),
    (data.SplitSettings, {n: n for n in ("validation_fraction", "holdout_fraction", "seed",
                                               "partition_filter")}),
    (rollout.DeploySettings, {"deploy_target": "target", "canary_percent": "canary_percent",
                              "smoke_rows": "smoke_rows"}),
]
CHOICES = {"rerun_target": ("kfp", "vertex")}
# Rules no settings object holds: name -> (lowest, highest, lowest allowed?, highest allowed?)
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "seed": (0, math.inf, True, False),
    "current_last_rows": (0, math.inf, True, False),
    "report_sample_rows": (0, math.inf, True, False),
    "max_concurrency": (1, math.inf, True, False),
    "smoke_rows": (1, math.inf, True, False),
    "canary_percent": (1, 99, True, True),
}


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DomainError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _in_range(name: str, value: Any) -> None:
    low, high, low_ok, high_ok = RANGES[name]
    number = _number(name, value)
    below = number < low or (number == low and not low_ok)
    above = number > high or (number == high and not high_ok)
    if below or above:
        left, right = "[" if low_ok else "(", "]" if high_ok else ")"
        shown_high = "∞" if math.isinf(high) else f"{high:g}"
        raise DomainError(f"{name} must be in {left}{low:g}, {shown_high}{right}, got {value!r}")


def check(values: dict[str, Any]) -> None:
    """Raise one line naming the first parameter of `values` outside its domain. Names this
    module does not know are left to their own checks (types are checked by `params.check`)."""
    given = {k: v for k, v in values.items() if v is not None}
    for name, choices in CHOICES.items():
        if name in given and given[name] not in choices:
            raise DomainError(f"{name} must be one of {', '.join(map(repr, choices))}, got {given[name]!r}")
    for name in RANGES:
        if name in given:
            _in_range(name, given[name])
    if "thresholds" in given:
        gate_config.parse_gate_config(given["thresholds"])  # the gate's own rules, metric names included
    for settings_class, fields in SETTINGS:
        chosen = {field: given[name] for name, field in fields.items() if name in given}
        if chosen.get("search_space") == {}:
            chosen.pop("search_space")
        if chosen:
            try:
                settings_class(**chosen)  # its checks raise one line naming the parameter
            except LooplineError as exc:
                renamed = [name for name, field in fields.items() if name != field and name in given]
                if renamed and not str(exc).startswith(renamed[0]):
                    raise type(exc)(f"{renamed[0]}: {exc}") from None
                raise
