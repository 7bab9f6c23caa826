"""The gate's configuration: rules parsed from the thresholds dict (metric rules, or sections:
absolute, relative, latency, fairness, baseline), and the evaluate_model step's GateSettings.

The baseline rule is on by default: the challenger must be no worse than a logistic regression
fitted on the training split (`loopline.evaluation.baseline`) on `metric` (default `roc_auc`), by at most
`tolerance` (default 0.005). `"baseline": false` turns it off; on its own it does not count as
a configured threshold."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from loopline.core import rules
from loopline.core.errors import GateConfigError
from loopline.evaluation.metrics import (
    COMPUTED_METRICS,
    DEFAULT_MIN_SLICE_ROWS,
    LOWER_IS_BETTER,
    PER_CLASS_PREFIXES,
)

SECTIONS = ("absolute", "relative", "latency", "fairness", "allow_champion_load_failure", "baseline")

BASELINE_KEYS = ("metric", "tolerance")
DEFAULT_BASELINE_METRIC = "roc_auc"
DEFAULT_BASELINE_TOLERANCE = 0.005

RELATIVE_KEYS = ("primary", "min_improvement", "min_improvement_relative", "max_regression", "max_regression_relative")

LATENCY_KEYS = {"max_single_row_p95_ms": "latency_single_p95_ms", "max_batch_p95_ms": "latency_batch_p95_ms"}

FAIRNESS_KEYS = {
    "max_demographic_parity_difference": "demographic_parity_difference",
    "max_auc_gap": "slice_auc_gap",
}


# Every metric the evaluation computes (declared beside the code that computes them), for checking
# gate rules before any work; per-class precision, recall and F1 are `<metric>_<class>`.
GATE_METRICS = COMPUTED_METRICS


def check_metric_name(metric: Any, where: str) -> None:
    """A gate rule names a metric the evaluation computes (a misspelt one would fail only after training)."""
    import difflib

    if isinstance(metric, str) and (metric in GATE_METRICS or (metric.startswith(PER_CLASS_PREFIXES)
                                                                and metric.split("_", 1)[1])):
        return
    close = difflib.get_close_matches(str(metric), GATE_METRICS, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(GATE_METRICS)}, precision_/recall_/f1_<class>)"
    raise GateConfigError(f"{where}: '{metric}' is not a metric Loopline computes{hint}")


@dataclass
class Rule:
    """One threshold on one metric: `metric op threshold`."""

    kind: str  # absolute | latency | fairness
    metric: str
    op: str  # ">=" or "<="
    threshold: float

@dataclass
class RelativeRule:
    """A comparison with the champion. `mode`: improvement (at least) or regression (at most);
    `relative`: the threshold is a share of the champion's value rather than an absolute delta."""

    metric: str
    mode: str  # "improvement" | "regression"
    threshold: float
    relative: bool

@dataclass
class BaselineRule:
    """The challenger is no worse than the baseline on `metric` by more than `tolerance`."""

    metric: str = DEFAULT_BASELINE_METRIC
    tolerance: float = DEFAULT_BASELINE_TOLERANCE


@dataclass
class GateConfig:
    rules: list[Rule] = field(default_factory=list)
    relative: list[RelativeRule] = field(default_factory=list)
    slice_column: str = ""
    min_slice_rows: int = DEFAULT_MIN_SLICE_ROWS
    allow_champion_load_failure: bool = False
    baseline: BaselineRule | None = field(default_factory=BaselineRule)  # None: the rule is off

    @property
    def needs_champion(self) -> bool:
        return bool(self.relative)

def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GateConfigError(f"{where} must be a finite number, got {value!r}")
    return float(value)

def _positive(value: Any, where: str) -> float:
    number = _number(value, where)
    if number <= 0:
        raise GateConfigError(f"{where} must be above 0, got {value!r}")
    return number

def _not_negative(value: Any, where: str) -> float:
    number = _number(value, where)
    if number < 0:
        raise GateConfigError(f"{where} must not be negative, got {value!r}")
    return number

def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GateConfigError(f"{where} must be a mapping, got {value!r}")
    return value

def _unknown(given: dict[str, Any], known, where: str) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise GateConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")

def parse_thresholds(thresholds: dict[str, Any]) -> list[tuple[str, str, float]]:
    """`{"roc_auc": 0.8, "log_loss": {"max": 0.4}, "accuracy": {"min": 0.9}}` -> checks.

    A bare number is a floor for higher-is-better metrics and a ceiling for lower-is-better ones.
    An empty configuration is an error: the gate never passes by default.
    """
    if not thresholds:
        raise GateConfigError(
            "no gate thresholds configured: set at least one, e.g. thresholds={'roc_auc': 0.8}"
        )
    checks = []
    for metric, rule in thresholds.items():
        check_metric_name(metric, "gate threshold")
        if isinstance(rule, bool) or not isinstance(rule, (int, float, dict)):
            raise GateConfigError(f"threshold for '{metric}' must be a number or {{'min': x, 'max': y}}, got {rule!r}")
        if isinstance(rule, dict):
            unknown = set(rule) - {"min", "max"}
            if unknown or not rule:
                raise GateConfigError(f"threshold for '{metric}' takes 'min' and/or 'max', got {sorted(rule)}")
            for key, op in (("min", ">="), ("max", "<=")):
                if key in rule:
                    checks.append((metric, op, _number(rule[key], f"threshold '{key}' for '{metric}'")))
        else:
            checks.append((metric, "<=" if metric in LOWER_IS_BETTER else ">=",
                           _number(rule, f"threshold for '{metric}'")))
    return checks

def _parse_relative(section: dict[str, Any]) -> list[RelativeRule]:
    _unknown(section, RELATIVE_KEYS, "relative")
    primary = section.get("primary", "roc_auc")
    if not isinstance(primary, str) or not primary:
        raise GateConfigError(f"relative.primary must be a metric name, got {primary!r}")
    check_metric_name(primary, "relative.primary")
    rules = []
    for key, relative in (("min_improvement", False), ("min_improvement_relative", True)):
        if key in section:
            rules.append(RelativeRule(primary, "improvement", _number(section[key], f"relative.{key}"), relative))
    for key, relative in (("max_regression", False), ("max_regression_relative", True)):
        for metric, value in _mapping(section.get(key, {}), f"relative.{key}").items():
            check_metric_name(metric, f"relative.{key}")
            limit = _number(value, f"relative.{key}['{metric}']")
            if limit < 0:
                raise GateConfigError(f"relative.{key}['{metric}'] must not be negative, got {value!r}")
            rules.append(RelativeRule(metric, "regression", limit, relative))
    if not rules:
        raise GateConfigError(
            "relative: give min_improvement, min_improvement_relative, max_regression or max_regression_relative"
        )
    return rules

def _parse_baseline(section: Any) -> BaselineRule | None:
    if section is False:
        return None
    if section is True:
        return BaselineRule()
    _unknown(_mapping(section, "baseline"), BASELINE_KEYS, "baseline")
    metric = section.get("metric", DEFAULT_BASELINE_METRIC)
    if not isinstance(metric, str) or not metric:
        raise GateConfigError(f"baseline.metric must be a metric name, got {metric!r}")
    check_metric_name(metric, "baseline.metric")
    tolerance = _number(section.get("tolerance", DEFAULT_BASELINE_TOLERANCE), "baseline.tolerance")
    if tolerance < 0:
        raise GateConfigError(f"baseline.tolerance must not be negative, got {tolerance!r}")
    return BaselineRule(metric, tolerance)


def parse_gate_config(config: dict[str, Any] | None) -> GateConfig:
    """Read the gate configuration (its format: `loopline.evaluation.evaluate`'s docstring); fail on anything unclear."""
    if not config:
        raise GateConfigError(
            "no gate thresholds configured: set at least one, e.g. thresholds={'roc_auc': 0.8}"
        )
    if not isinstance(config, dict):
        raise GateConfigError(f"the gate configuration must be a mapping, got {config!r}")
    sectioned = [k for k in config if k in SECTIONS]
    if not sectioned:  # legacy form: metric rules only
        return GateConfig(rules=[Rule("absolute", m, op, t) for m, op, t in parse_thresholds(config)])
    stray = [k for k in config if k not in SECTIONS]
    if stray:
        raise GateConfigError(
            f"gate configuration mixes sections and other keys: {', '.join(map(str, stray))} "
            f"(sections: {', '.join(SECTIONS)}; put metric rules under 'absolute')"
        )
    out = GateConfig()
    absolute = _mapping(config.get("absolute", {}), "absolute")
    if absolute:
        out.rules += [Rule("absolute", m, op, t) for m, op, t in parse_thresholds(absolute)]
    latency = _mapping(config.get("latency", {}), "latency")
    _unknown(latency, LATENCY_KEYS, "latency")
    out.rules += [Rule("latency", LATENCY_KEYS[k], "<=", _positive(v, f"latency.{k}")) for k, v in latency.items()]
    if "fairness" in config:
        fairness = _mapping(config["fairness"], "fairness")
        _unknown(fairness, ("slice_column", "min_slice_rows", *FAIRNESS_KEYS), "fairness")
        column = fairness.get("slice_column")
        if not isinstance(column, str) or not column:
            raise GateConfigError("fairness.slice_column must name a column of the holdout split")
        out.slice_column = column
        if "min_slice_rows" in fairness:
            rows = fairness["min_slice_rows"]
            if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
                raise GateConfigError(f"fairness.min_slice_rows must be a positive integer, got {rows!r}")
            out.min_slice_rows = rows
        out.rules += [
            Rule("fairness", FAIRNESS_KEYS[k], "<=", _not_negative(fairness[k], f"fairness.{k}"))
            for k in FAIRNESS_KEYS
            if k in fairness
        ]
    if "relative" in config:
        out.relative = _parse_relative(_mapping(config["relative"], "relative"))
    allow = config.get("allow_champion_load_failure", False)
    if not isinstance(allow, bool):
        raise GateConfigError(f"allow_champion_load_failure must be true or false, got {allow!r}")
    out.allow_champion_load_failure = allow
    if "baseline" in config:
        out.baseline = _parse_baseline(config["baseline"])
    explicit_baseline = out.baseline is not None and config.get("baseline") not in (None, True)
    if not out.rules and not out.relative and not explicit_baseline:
        raise GateConfigError(
            "no gate thresholds configured: the sections given hold no rule (add an absolute, relative, "
            "latency or fairness threshold)"
        )
    return out

@dataclass(frozen=True, kw_only=True)
class GateSettings:
    """What `evaluate_model` judges by: the gate rules and where the champion is registered;
    the one declaration of these settings and their defaults. Checked on construction (the gate
    fails closed before any work)."""

    thresholds: dict[str, Any]  # the gate rules (no default: no rule is an error)
    tracking_uri: str = ""  # empty: judge without a champion
    model_name: str = ""  # whose `champion` alias is the model to beat
    config: GateConfig = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """The checks of the gate settings, each a one-line GateConfigError."""
        config = parse_gate_config(self.thresholds)
        if self.model_name:
            rules.model_name("model_name", self.model_name, GateConfigError)
        if config.needs_champion and not (self.tracking_uri and self.model_name):
            raise GateConfigError("relative gates compare with the champion: give tracking_uri and model_name")
        object.__setattr__(self, "config", config)


def check_columns(config: GateConfig, columns, where: str) -> None:
    """The gate's rules that name columns hold for the data's columns (`where`: the data's name):
    checked before training, since a slice column the holdout lacks fails every run's gate."""
    if config.slice_column and config.slice_column not in columns:
        raise GateConfigError(
            f"fairness.slice_column: column '{config.slice_column}' is not in {where} "
            f"(columns: {', '.join(map(str, columns))})"
        )
