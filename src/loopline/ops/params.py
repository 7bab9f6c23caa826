"""A compiled pipeline's inputs, and the parameters a user gives for a run, checked before sending.

`loopline submit` and `loopline schedule` read the parameters from `--param NAME=VALUE` and a
YAML file, and check them against the inputs (names and types) that the compiled YAML declares,
so that a typo or a wrong type is one clear line here rather than a failed run in the cluster.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopline.core.errors import LooplineError

# KFP parameter types (PipelineSpec `parameterType`) and how a user would call them
TYPE_NAMES = {
    "STRING": "a string",
    "NUMBER_INTEGER": "an integer",
    "NUMBER_DOUBLE": "a number",
    "BOOLEAN": "true or false",
    "STRUCT": "a mapping (JSON object)",
    "LIST": "a list (JSON array)",
}
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


class ParameterError(LooplineError):
    """A pipeline parameter is unknown, missing or of the wrong type."""


@dataclass(frozen=True)
class PipelineInput:
    name: str
    type: str  # a key of TYPE_NAMES
    required: bool
    default: Any = None
    description: str = ""


@dataclass
class PipelineFile:
    """A compiled pipeline: its spec (first YAML document) and the Kubernetes platform spec, if any."""

    path: Path
    name: str  # pipelineInfo.name, e.g. loopline-training
    inputs: dict[str, PipelineInput]
    spec: dict[str, Any]
    platform: dict[str, Any] | None = None
    text: str = field(default="", repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def spec_only_yaml(self) -> str:
        """The pipeline spec without the Kubernetes platform document (Vertex takes one document)."""
        import yaml

        return yaml.safe_dump(self.spec, sort_keys=False)


def read_pipeline(path: str | Path) -> PipelineFile:
    """Read a compiled pipeline YAML (`compiled/training.yaml`, ...)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"compiled pipeline not found: {path} (run `make compile` or `loopline compile`)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ParameterError(f"{path} is not a compiled KFP pipeline (not YAML text)") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    spec = next((d for d in documents if isinstance(d, dict) and "pipelineInfo" in d), None)
    if spec is None or "root" not in spec:
        raise ParameterError(f"{path} is not a compiled KFP pipeline (no pipelineInfo/root)")
    platform = next((d for d in documents if isinstance(d, dict) and "platforms" in d), None)
    inputs = {}
    for name, definition in spec["root"].get("inputDefinitions", {}).get("parameters", {}).items():
        inputs[name] = PipelineInput(
            name=name,
            type=definition.get("parameterType", "STRING"),
            required=not definition.get("isOptional", False),
            default=definition.get("defaultValue"),
            description=definition.get("description", ""),
        )
    return PipelineFile(path=path, name=spec["pipelineInfo"]["name"], inputs=inputs, spec=spec, platform=platform, text=text)


def read_yaml_file(path: str | Path, what: str, error: type[LooplineError] = LooplineError) -> Any:
    """The content of a user's YAML file; `error` names the file when it is missing or invalid."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not a text file (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}): "
                    "give YAML or JSON") from exc
    except RecursionError as exc:
        raise error(f"{what} {path} is nested too deeply to be read") from exc


def load_params_file(path: str | Path) -> dict[str, Any]:
    """A YAML (or JSON) mapping of parameter names to values."""
    values = read_yaml_file(path, "parameters file", ParameterError)
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ParameterError(f"parameters file {path} must hold a mapping of NAME: VALUE, not a {type(values).__name__}")
    return {str(k): v for k, v in values.items()}


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """`["n_trials=8", "target=label"]` -> {"n_trials": "8", "target": "label"} (values stay text)."""
    values: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"--param '{item}' is not NAME=VALUE")
        values[name.strip()] = value
    return values


def _unknown(name: str, inputs: dict[str, PipelineInput], pipeline: str) -> ParameterError:
    close = difflib.get_close_matches(name, list(inputs), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(sorted(inputs))})"
    return ParameterError(f"pipeline {pipeline} has no parameter '{name}'{hint}")


def _from_text(value: str, expected: str) -> Any:
    """Convert the text of `--param NAME=VALUE` to the parameter's type."""
    if expected == "STRING":
        return value
    if expected == "NUMBER_INTEGER":
        return int(value.strip())
    if expected == "NUMBER_DOUBLE":
        return float(value.strip())
    if expected == "BOOLEAN":
        lowered = value.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ValueError(value)
    if expected == "STRUCT":
        return json.loads(value)
    if expected == "LIST":
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        if text.startswith("{"):  # an object is not a list of one item
            raise ValueError(value)
        return [part.strip() for part in text.split(",") if part.strip()]  # a,b,c
    raise ValueError(f"unknown parameter type {expected}")


def _typed(value: Any, expected: str) -> Any:
    """Check a value from the YAML file (already typed) against the parameter's type."""
    ok = {
        "STRING": isinstance(value, str),
        "NUMBER_INTEGER": isinstance(value, int) and not isinstance(value, bool),
        "NUMBER_DOUBLE": isinstance(value, (int, float)) and not isinstance(value, bool),
        "BOOLEAN": isinstance(value, bool),
        "STRUCT": isinstance(value, dict),
        "LIST": isinstance(value, list),
    }.get(expected, False)
    if not ok:
        raise ValueError(value)
    return float(value) if expected == "NUMBER_DOUBLE" else value


def check(
    pipeline: PipelineFile,
    *,
    from_file: dict[str, Any] | None = None,
    assignments: dict[str, str] | None = None,
    allowed: dict[str, tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    """The run's parameters: the file's values, then `--param` overrides, checked by name and type.

    `allowed` restricts parameters to a set of values (for example `rerun_mode`). Every required
    input must be given. Returns the typed values to send (defaults are left to the pipeline).
    """
    values: dict[str, Any] = {}
    for source, items, convert in (("parameters file", from_file or {}, _typed), ("--param", assignments or {}, _from_text)):
        for name, value in items.items():
            if name not in pipeline.inputs:
                raise _unknown(name, pipeline.inputs, pipeline.name)
            expected = pipeline.inputs[name].type
            try:
                values[name] = convert(value, expected)
            except (ValueError, TypeError):
                shown = value if isinstance(value, str) else json.dumps(value)
                raise ParameterError(
                    f"parameter '{name}' of {pipeline.name} expects {TYPE_NAMES.get(expected, expected)}, "
                    f"got {shown!r} ({source})"
                ) from None
            if expected == "STRUCT" and not isinstance(values[name], dict):
                raise ParameterError(f"parameter '{name}' of {pipeline.name} expects a mapping (JSON object), got {value!r}")
            if expected == "LIST" and not isinstance(values[name], list):
                raise ParameterError(f"parameter '{name}' of {pipeline.name} expects a list (JSON array), got {value!r}")
    for name, choices in (allowed or {}).items():
        if name in values and values[name] not in choices:
            raise ParameterError(
                f"parameter '{name}' of {pipeline.name} must be one of {', '.join(map(repr, choices))}, got {values[name]!r}"
            )
    missing = [n for n, i in pipeline.inputs.items() if i.required and n not in values]
    if missing:
        raise ParameterError(
            f"pipeline {pipeline.name} needs parameters {', '.join(missing)} "
            "(give them with --param NAME=VALUE or --params-file FILE)"
        )
    return values
