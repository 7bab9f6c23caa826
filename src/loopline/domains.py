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

from loopline import drift, evaluation, reruns, tuning
from loopline.errors import LooplineError


class DomainError(LooplineError):
    """A parameter is outside its documented domain."""


TUNING = ("n_trials", "max_epochs", "timeout_seconds", "objective", "pruner", "search_space")
DRIFT = ("drift_share", "numeric_test", "categorical_test")
CHOICES = {"deploy_target": ("local", "kserve"), "rerun_mode": reruns.RERUN_MODES, "rerun_target": ("kfp", "vertex")}
# name -> (lowest, highest, lowest allowed?, highest allowed?), for whole numbers and numbers
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "seed": (0, math.inf, True, False),
    "cooldown_hours": (0, math.inf, True, False),
    "current_last_rows": (0, math.inf, True, False),
    "report_sample_rows": (0, math.inf, True, False),
    "max_concurrency": (1, math.inf, True, False),
    "validation_fraction": (0.0, 0.5, False, False),
    "holdout_fraction": (0.0, 0.5, False, False),
    "escalation_threshold": (0.0, 1.0, False, True),
    "canary_percent": (1, 99, True, True),
    "smoke_rows": (1, math.inf, True, False),
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
    tuning_given = {k: given[k] for k in TUNING if k in given}
    if tuning_given:
        if "search_space" in tuning_given and not tuning_given["search_space"]:
            tuning_given.pop("search_space")
        tuning.TuningSettings(**tuning_given)  # raises TuningConfigError naming the setting
    if "thresholds" in given:
        evaluation.parse_gate_config(given["thresholds"])  # the gate's own rules, metric names included
    drift_given = {k: given[k] for k in DRIFT if k in given}
    if drift_given:
        drift.DriftSettings(**drift_given).check()
    for name, choices in CHOICES.items():
        if name in given and given[name] not in choices:
            raise DomainError(f"{name} must be one of {', '.join(map(repr, choices))}, got {given[name]!r}")
    for name in RANGES:
        if name in given:
            _in_range(name, given[name])
    if "escalation_threshold" in given and given["escalation_threshold"] < 1.0:
        share = float(given.get("drift_share", drift.DriftSettings().drift_share))
        if given["escalation_threshold"] <= share:
            raise DomainError(f"escalation_threshold ({given['escalation_threshold']:g}) must be above drift_share "
                              f"({share:g}): every drift would escalate")
