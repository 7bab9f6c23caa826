"""The shipped training YAML, adapted without the compiler, equals what the compiler writes."""

from __future__ import annotations

import pytest
import yaml

from loopline import cluster, images
from loopline.compile import compile_pipeline
from loopline.compiled_pipelines import adapted_yaml, shipped_path

from .conftest import ROOT
from .test_cluster import readme_cluster_config


def test_the_package_ships_the_compiled_training_pipeline():
    assert shipped_path("training").read_text() == (ROOT / "compiled" / "training.yaml").read_text()


def test_default_settings_leave_the_shipped_text_as_it_is():
    assert adapted_yaml("training", image_registry="", kubernetes_settings={}) == (ROOT / "compiled" / "training.yaml").read_text()


@pytest.mark.parametrize(
    "registry, settings",
    [
        ("", {"retries": {"count": 0}}),
        ("my.registry.example/team", {}),
        ("my.registry.example/team", "README"),
        ("", {"retries": {"count": 5, "backoff": "10s"}, "timeouts": {"default": 60},
              "training": {"steps": ["train_model"], "tolerations": [{"key": "gpu", "operator": "Exists",
                                                                        "effect": "NoExecute", "toleration_seconds": 30}]}}),
    ],
)
def test_adapted_yaml_equals_a_fresh_compile(tmp_path, registry, settings):
    settings = readme_cluster_config() if settings == "README" else settings
    compiled = compile_pipeline("training", tmp_path / "training.yaml", registry=registry or images.DEFAULT_REGISTRY,
                                kubernetes=cluster.ClusterSettings.from_dict(settings))
    expected = [d for d in yaml.safe_load_all(compiled.read_text()) if d]
    adapted = [d for d in yaml.safe_load_all(adapted_yaml("training", image_registry=registry, kubernetes_settings=settings)) if d]
    assert adapted == expected
