"""Compiled YAML: in sync, reusable, accepted by Vertex, on pinned Loopline images; light imports."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from loopline.cli import compile as compile_mod
from loopline.core import images

from .conftest import ROOT

COMPILED = ROOT / "compiled"
# KFP YAML only: compiled/serving/ holds the KServe serving runtime (tests/test_serving_runtime.py)
YAMLS = sorted(p for p in COMPILED.rglob("*.yaml") if "serving" not in p.relative_to(COMPILED).parts)
PIPELINE_YAMLS = sorted(COMPILED.glob("*.yaml"))


def test_compiled_directory_is_up_to_date():
    assert compile_mod.stale_files(COMPILED) == []


def test_staleness_is_detected(tmp_path):
    compile_mod.compile_all(tmp_path, registry=images.DEFAULT_REGISTRY)
    target = tmp_path / "components" / "load_data.yaml"
    target.write_text(target.read_text().replace("Share of rows", "Part of rows"))
    (tmp_path / "leftover.yaml").write_text("{}")
    assert compile_mod.stale_files(tmp_path) == ["components/load_data.yaml: stale", "leftover.yaml: not produced by compile (remove it)"]


def test_every_component_and_pipeline_is_compiled():
    names = {p.stem for p in (COMPILED / "components").glob("*.yaml")}
    assert names == set(compile_mod.COMPONENTS)
    assert {p.stem for p in PIPELINE_YAMLS} == set(compile_mod.PIPELINES)


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: str(p.relative_to(COMPILED)))
def test_yaml_loads_as_a_reusable_component(path):
    from kfp import components

    component = components.load_component_from_file(str(path))
    assert component.name


@pytest.mark.parametrize("path", sorted((COMPILED / "components").glob("*.yaml")), ids=lambda p: p.stem)
def test_component_documents_every_input_and_output(path):
    spec = yaml.safe_load(path.read_text())
    component = next(iter(spec["components"].values()))
    for section in ("inputDefinitions", "outputDefinitions"):
        for kind in ("parameters", "artifacts"):
            for name, definition in component.get(section, {}).get(kind, {}).items():
                assert definition.get("description"), f"{path.stem}: {section}.{kind}.{name} has no description"


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: str(p.relative_to(COMPILED)))
def test_images_are_loopline_images_with_the_package_version(path):
    refs = re.findall(r"^\s*image:\s*(\S+)", path.read_text(), flags=re.M)
    assert refs
    version = images.package_version()
    for ref in refs:
        assert not ref.endswith(":latest") and ":" in ref.rsplit("/", 1)[-1], ref
        match = re.fullmatch(rf"{re.escape(images.DEFAULT_REGISTRY)}/loopline-(\w+):{re.escape(version)}", ref)
        assert match, ref
        assert match.group(1) in images.ROLES


def test_every_image_role_has_a_dockerfile_target_installing_from_the_lock():
    from loopline.core.image_contract import dockerfile_packages

    lock = {line.split("==")[0].lower().replace("_", "-") for line in (ROOT / "requirements.lock").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    for role, dockerfile in images.ROLES.items():
        text = (ROOT / dockerfile).read_text()
        assert "-c requirements.lock" in text, role
        assert re.search(rf"^FROM\s+\S+\s+AS\s+{role}$", text, flags=re.M), f"{dockerfile} has no target {role}"
        # the base image is a build argument whose default is a pinned tag
        default = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, flags=re.M)
        assert default and ":" in default.group(1) and not default.group(1).endswith(":latest"), role
        # every package the target installs is pinned in the lock
        packages = dockerfile_packages(text)[role]
        assert packages, role
        assert set(packages) <= lock, (role, set(packages) - lock)


def test_registry_prefix_is_a_compile_time_setting(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "loopline.cli", "compile", "--out", str(tmp_path), "--registry", "registry.example.com/ml"],
        capture_output=True, text=True, check=True,
    )
    assert "training.yaml" in out.stdout
    refs = set(re.findall(r"image:\s*(\S+)", (tmp_path / "training.yaml").read_text()))
    assert refs and all(r.startswith("registry.example.com/ml/loopline-") for r in refs)


@pytest.mark.parametrize("path", PIPELINE_YAMLS, ids=lambda p: p.stem)
def test_vertex_accepts_the_pipeline_offline(path):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    job = aiplatform.PipelineJob(
        display_name=f"loopline-{path.stem}",
        template_path=str(path),
        pipeline_root="gs://loopline-test/pipeline-root",
        project="loopline-test",
        location="us-central1",
        credentials=AnonymousCredentials(),
        parameter_values={"target": "is_fraud", "tracking_uri": "http://mlflow:5000"},
        enable_caching=False,
    )
    spec = job.to_dict()["pipelineSpec"]
    assert spec["pipelineInfo"]["name"] == yaml.safe_load(path.read_text())["pipelineInfo"]["name"]


def test_component_and_pipeline_modules_import_only_kfp_and_the_standard_library():
    code = (
        "import sys; import loopline.components, loopline.pipelines; "
        "heavy = [m for m in ('tensorflow', 'keras', 'great_expectations', 'evidently', 'mlflow', 'optuna', "
        "'pandas', 'numpy', 'kserve', 'sklearn') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_another_teams_pipeline_of_compiled_components_needs_no_loopline(tmp_path):
    """The team's script that tests/test_containers.py runs in the images: in an interpreter where
    loopline cannot be imported, it wires three compiled components into its own DAG and compiles it."""
    from .test_containers import team_pipeline

    result, report = team_pipeline(tmp_path, tmp_path, "--compile-only")
    assert result.returncode == 0, result.stderr[-3000:]
    assert report == {"loopline_imports": [], "loopline_modules": []}, report
    dag = yaml.safe_load((tmp_path / "churn-team.yaml").read_text())
    executors = dag["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {images.image("base"), images.image("trainer")}
    assert sorted(dag["root"]["dag"]["tasks"]) == ["load-data", "train-model", "validate-data"]


def test_components_run_on_their_image_without_installing_packages():
    for path in (COMPILED / "components").glob("*.yaml"):
        text = path.read_text()
        assert "pip install" not in text, path.stem
