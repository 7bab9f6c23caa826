"""The small rules the settings objects are built from: numbers in a range, whole numbers, choices,
lists and mappings of names, Kubernetes quantities and URIs with a scheme.

Each check raises the caller's error class with one line that starts with the setting's name, so
a settings object's `__post_init__` reads as its list of rules and every caller (the command
line, a dry run, a step) reports the same line.
"""

from __future__ import annotations

import math
import re
from typing import Any

from loopline.core.errors import LooplineError

# Kubernetes resource.Quantity: a decimal number with an SI suffix (k, M, G, m, ...), a binary
# suffix (Ki, Mi, Gi, ...) or an exponent (1e3)
_QUANTITY = re.compile(r"^\+?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def number(name: str, value: Any, error: type[LooplineError] = LooplineError, *, low: float | None = None,
           high: float | None = None, low_open: bool = False, high_open: bool = False,
           whole: bool = False) -> float:
    """`value` as a finite number within [low, high] (`low_open`/`high_open`: the end excluded);
    `whole`: a whole number. NaN, infinities, booleans and text are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        kind = "a whole number" if whole else "a finite number"
        raise error(f"{name} must be {kind}, got {value!r}")
    if whole and int(value) != value:
        raise error(f"{name} must be a whole number, got {value!r}")
    below = low is not None and (value < low or (low_open and value == low))
    above = high is not None and (value > high or (high_open and value == high))
    if below or above:
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        shown_low = "-∞" if low is None else f"{low:g}"
        shown_high = "∞" if high is None else f"{high:g}"
        raise error(f"{name} must be in {left}{shown_low}, {shown_high}{right}, got {value!r}")
    return float(value)


def choice(name: str, value: Any, choices, error: type[LooplineError] = LooplineError) -> None:
    """`value` is one of `choices`."""
    if value not in choices:
        raise error(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def names(name: str, value: Any, error: type[LooplineError] = LooplineError) -> list[str]:
    """A list of column (or other) names: a list of non-empty strings, not a mapping or a string."""
    if not isinstance(value, (list, tuple)):
        raise error(f"{name} must be a list of names, got {type(value).__name__} {value!r}")
    for item in value:
        if not isinstance(item, str) or not item:
            raise error(f"{name} must be a list of names, got the item {item!r}")
    return list(value)


def mapping(name: str, value: Any, error: type[LooplineError] = LooplineError) -> dict[str, Any]:
    """A mapping with text keys (a JSON object), not a list or a string."""
    if not isinstance(value, dict):
        raise error(f"{name} must be a mapping (JSON object), got {type(value).__name__} {value!r}")
    for key in value:
        if not isinstance(key, str) or not key:
            raise error(f"{name} must have names as keys, got the key {key!r}")
    return value


def quantity(name: str, value: Any, error: type[LooplineError] = LooplineError) -> str:
    """A Kubernetes resource quantity such as `500m`, `2`, `1.5`, `2Gi` or `512M` (not negative)."""
    if not isinstance(value, str) or not _QUANTITY.match(value.strip()):
        raise error(f"{name} must be a Kubernetes quantity such as '500m', '2', '2Gi' or '512M', got {value!r}")
    return value


_SUFFIXES = {"": 1.0, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
             "E": 1e18, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60}


def quantity_value(text: str) -> float:
    """The number a checked Kubernetes quantity stands for (`500m` -> 0.5, `2Gi` -> 2147483648)."""
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise ValueError(text)
    suffix = match.group(3) or ""
    if suffix[:1] in ("e", "E"):
        return float(match.group(1) + suffix)
    return float(match.group(1)) * _SUFFIXES[suffix]


def has_scheme(uri: str) -> bool:
    """Whether `uri` starts with a scheme (`s3://`, `gs://`, `file://`, ...)."""
    return bool(_SCHEME.match(uri))


def model_name(name: str, value: Any, error: type[LooplineError] = LooplineError) -> str:
    """A registered model name MLflow takes: not empty, without '/' or ':' (MLflow's rule), and
    not a relative path such as '..'."""
    if not isinstance(value, str) or not value.strip():
        raise error(f"{name} must not be empty")
    if "/" in value or ":" in value or "\\" in value or value.strip() in (".", ".."):
        raise error(f"{name} {value!r} is not a registered model name: MLflow names cannot contain '/' or ':' "
                    "(nor be '.' or '..')")
    return value
