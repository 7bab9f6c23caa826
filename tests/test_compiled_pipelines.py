"""The shipped training YAML, adapted without the compiler, equals what the compiler writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loopline.ops.compiled_pipelines import adapted_yaml, shipped_path

from .conftest import ROOT
from .test_cluster import readme_cluster_config


def test_the_package_ships_the_compiled_training_pipeline():
    assert shipped_path("training").read_text() == (ROOT / "compiled" / "training.yaml").read_text()


def test_default_settings_leave_the_shipped_text_as_it_is():
    assert adapted_yaml("training", image_registry="", kubernetes_settings={}) == (ROOT / "compiled" / "training.yaml").read_text()


CASES = [
    ("", {"retries": {"count": 0}}),
    ("my.registry.example/team", {}),
    ("my.registry.example/team", "README"),
    ("", {"retries": {"count": 5, "backoff": "10s"}, "timeouts": {"default": 60},
          "training": {"steps": ["train_model"], "tolerations": [{"key": "gpu", "operator": "Exists",
                                                                    "effect": "NoExecute", "toleration_seconds": 30}]}}),
]


@pytest.fixture(scope="module")
def fresh_compiles(tmp_path_factory) -> list[Path]:
    """The training pipeline compiled for each case by `compile_pipeline`, in one new interpreter as
    `loopline compile` runs it. (In this process TensorFlow is loaded by other tests, and kfp's
    `inspect.stack()` per task then walks thousands of modules: 15 s a compile instead of 1.)"""
    out = tmp_path_factory.mktemp("fresh-compiles")
    cases = [(registry, readme_cluster_config() if settings == "README" else settings) for registry, settings in CASES]
    (out / "cases.json").write_text(json.dumps(cases))
    code = (
        "import json, sys; from pathlib import Path\n"
        "from loopline.core import images; from loopline.ops import cluster; from loopline.cli.compile import compile_pipeline\n"
        "out = Path(sys.argv[1])\n"
        "for i, (registry, settings) in enumerate(json.loads((out / 'cases.json').read_text())):\n"
        "    compile_pipeline('training', out / f'{i}.yaml', registry=registry or images.DEFAULT_REGISTRY,\n"
        "                     kubernetes=cluster.ClusterSettings.from_dict(settings))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [out / f"{i}.yaml" for i in range(len(CASES))]


@pytest.mark.parametrize("case", range(len(CASES)), ids=["retries", "registry", "README", "tolerations"])
def test_adapted_yaml_equals_a_fresh_compile(fresh_compiles, case):
    registry, settings = CASES[case]
    settings = readme_cluster_config() if settings == "README" else settings
    expected = [d for d in yaml.safe_load_all(fresh_compiles[case].read_text()) if d]
    adapted = [d for d in yaml.safe_load_all(adapted_yaml("training", image_registry=registry, kubernetes_settings=settings)) if d]
    assert adapted == expected


def test_the_training_pipeline_is_adapted_inside_a_running_kfp_task():
    """Inside a KFP task `kfp` is imported in its runtime form (no `dsl.component`, no compiler):
    the trigger_training step reads and adapts the shipped YAML there, importing no component,
    and makes a KFP client."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; import kfp.dsl\n"
        "from loopline.executors import trigger_training\n"
        "from loopline.ops.compiled_pipelines import adapted_yaml\n"
        "text = adapted_yaml('training', image_registry='my.registry.example/team', kubernetes_settings={'retries': {'count': 0}})\n"
        "print('my.registry.example/team/loopline-base' in text, 'loopline.components' in sys.modules)\n"
        "from loopline.ops import submit\n"
        "try:\n"
        "    submit.KfpTarget(host='http://127.0.0.1:9').client()\n"
        "except submit.SubmitError as exc:\n"
        "    print(str(exc).startswith('cannot reach KFP'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "_KFP_RUNTIME": "true"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "False", "True"]  # the KFP client imports, and tries the host
