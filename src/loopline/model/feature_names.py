"""Feature names inside the model: any column name a user has works.

Keras layer names and TensorFlow's op and signature names take only a few characters
(`[A-Za-z0-9_.\\-/>]`, and Keras refuses `/`), so a column named `hour of day`, `amount.usd`,
`fee/tax`, `a<b` or `größe` cannot name a model input as it is. Inside the model (its Keras inputs
and layers, and the SavedModel's `serving_default` signature) every feature has a *signature
name*: the column's own name when it is a plain identifier that no other feature matches but for
the case of its letters (TensorFlow's graph names ignore case), else `f_<hash>_<ascii letters>`. Everything a person sees keeps the user's names: the
model's metadata (`features`), the MLflow signature, the served request (V1 and V2) and every
report; the metadata's `inputs` maps each feature to its signature name, and the model's callers
(`model_contract.ServingModel`, the MLflow pyfunc) translate.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping

from loopline.core.errors import DataError

INPUTS_KEY = "inputs"  # the model metadata's map: feature name -> signature name

# kept as is: an ASCII identifier that no name of the model's own layers can take
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_RESERVED = frozenset({"features", "probabilities"})  # names of the model's own layers
_RESERVED_PREFIXES = ("f_", "norm_", "lookup_", "dense_", "dropout_", "keras_", "input_")
_MAPPED_PREFIX = "f_"


def is_plain(name: str) -> bool:
    """Whether `name` can be a model input's name as it is."""
    lowered = name.lower()
    return bool(_PLAIN.fullmatch(name)) and lowered not in _RESERVED and not lowered.startswith(_RESERVED_PREFIXES)


def signature_name(name: str) -> str:
    """The name of the feature `name` inside the model: itself when plain, else
    `f_<10 hex digits of its SHA-256>_<its ASCII letters and digits>` (hash first, so names
    that differ only in case or punctuation never meet)."""
    name = str(name)
    return name if is_plain(name) else _hashed(name)


def _hashed(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "_", ascii_name).strip("_")[:32].lower()
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    return f"{_MAPPED_PREFIX}{digest}_{slug}" if slug else f"{_MAPPED_PREFIX}{digest}"


def signature_names(names: Iterable[str]) -> dict[str, str]:
    """Feature name -> signature name for every feature of a model: `signature_name`, and the
    hashed form for plain names that differ from another feature's only in case. One line naming
    both columns should two of them ever map to the same name."""
    names = [str(name) for name in names]
    cases: dict[str, int] = {}
    for name in names:
        cases[name.lower()] = cases.get(name.lower(), 0) + 1
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name in names:
        internal = _hashed(name) if cases[name.lower()] > 1 else signature_name(name)
        if internal in seen and seen[internal] != name:  # pragma: no cover - a 40-bit hash collision
            raise DataError(f"columns '{seen[internal]}' and '{name}' map to the same model input '{internal}'; "
                            "rename one of them")
        seen[internal] = name
        out[name] = internal
    return out


def model_inputs(metadata: Mapping) -> dict[str, str]:
    """Feature name -> signature name of a model, from its metadata; a model exported before the
    map was recorded takes its features by their own names."""
    recorded = metadata.get(INPUTS_KEY) or {}
    return {name: recorded.get(name, name) for name in metadata["features"]}


def rename(columns: Mapping[str, object]) -> dict[str, object]:
    """A mapping keyed by every feature name of a model, keyed by signature names instead."""
    internal = signature_names(columns)
    return {internal[name]: value for name, value in columns.items()}
