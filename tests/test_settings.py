"""One declaration per setting: each component's defaults (its KFP signature, and the compiled
YAML) are its settings object's defaults, and every setting is a parameter of the component."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import yaml

from loopline import components, drift, registry
from loopline.data import tables as data
from loopline.evaluation import gate as gate_config
from loopline.ops import reruns
from loopline.serving import batch, targets
from loopline.traffic import window as traffic_window
from loopline.tuning import study as tuning
from loopline.validation import validate as validation

from .conftest import ROOT

# component -> its settings object
SETTINGS = {
    "load_data": data.SplitSettings,
    "validate_data": validation.ValidationSettings,
    "tune_model": tuning.TuningSettings,
    "train_model": tuning.TuningSettings,
    "evaluate_model": gate_config.GateSettings,
    "register_model": registry.RegisterSettings,
    "deploy_model": targets.DeploySettings,
    "detect_drift": drift.DriftSettings,
    "check_drift_escalation": reruns.EscalationSettings,
    "trigger_training": reruns.RetrainSettings,
    "batch_predict": batch.BatchSettings,
    "load_traffic": traffic_window.WindowSettings,
}
# settings a component leaves at their default (the library's own knobs, not a pipeline's)
NOT_PARAMETERS = {"detect_drift": {"null_rate_threshold"}}


def _defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = inspect.Parameter.empty  # required
    return out


def test_every_component_has_a_settings_object():
    assert set(SETTINGS) == set(components.__all__)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_component_defaults_are_the_settings_defaults(name):
    settings = _defaults(SETTINGS[name])
    signature = inspect.signature(getattr(components, name).python_func).parameters
    missing = set(settings) - set(signature) - NOT_PARAMETERS.get(name, set())
    assert not missing, f"{name}: settings that are not parameters of the component: {sorted(missing)}"
    for key, default in settings.items():
        # a component may require a setting (tune_model's storage_url); a default it gives is the settings'
        if key in signature and signature[key].default is not inspect.Parameter.empty:
            assert signature[key].default == default, f"{name}.{key}: component {signature[key].default!r}, settings {default!r}"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_compiled_defaults_are_the_settings_defaults(name):
    spec = yaml.safe_load((ROOT / "compiled" / "components" / f"{name}.yaml").read_text())
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    for key, default in _defaults(SETTINGS[name]).items():
        if key not in parameters or not parameters[key].get("isOptional"):
            continue
        assert default is not inspect.Parameter.empty, f"{name}.{key} is required in the settings, optional in the YAML"
        assert parameters[key].get("defaultValue") == default, f"{name}.{key}"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_settings_are_frozen_and_keyword_only(name):
    cls = SETTINGS[name]
    assert cls.__dataclass_params__.frozen
    assert all(f.kw_only for f in dataclasses.fields(cls) if f.init)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_the_component_hands_every_setting_on_to_its_executor(name):
    """The body builds the settings object from its parameters of the same names, each one passed
    (`drift_share=drift_share`), and gives it to `loopline.executors.<name>.run`."""
    import ast
    import textwrap

    cls = SETTINGS[name]
    source = textwrap.dedent(inspect.getsource(getattr(components, name).python_func))
    calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)]
    (built,) = [c for c in calls if getattr(c.func, "id", "") == cls.__name__]
    passed = {k.arg: k.value.id for k in built.keywords if isinstance(k.value, ast.Name)}
    parameters = set(inspect.signature(getattr(components, name).python_func).parameters)
    expected = {f.name for f in dataclasses.fields(cls) if f.init} & parameters
    assert passed == {key: key for key in expected}
    (run,) = [c for c in calls if isinstance(c.func, ast.Attribute) and c.func.attr == "run"]
    assert run.func.value.id == "executor" and any(k.arg == "settings" and k.value.id == "settings" for k in run.keywords)
    assert f"from loopline.executors import {name} as executor" in source
