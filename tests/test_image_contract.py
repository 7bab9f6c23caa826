"""Every step runs on its image's packages: no container engine needed.

Each kfp.local step of a real loop runs with an import guard that refuses top-level modules whose
distribution its image does not install (the image's packages: containers/Dockerfile's target
for the role its compiled YAML names, plus their dependency closure from the lock).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from loopline.core import image_contract

from .conftest import DOCKERFILE, step_images


def test_the_dockerfile_targets_and_their_closures():
    targets = image_contract.dockerfile_packages(DOCKERFILE.read_text())
    assert {"base", "trainer", "deployer"} <= set(targets)
    assert "plotly" in targets["trainer"]  # the Optuna report needs it
    base, trainer = image_contract.closure(targets["base"]), image_contract.closure(targets["trainer"])
    assert {"s3fs", "gcsfs", "boto3", "fsspec", "botocore"} <= base & trainer
    assert "tensorflow" not in base and "great-expectations" not in trainer
    refused = image_contract.refused_modules(trainer)
    assert "great_expectations" in refused and "evidently" in refused and "optuna" not in refused


def _guarded(tmp_path: Path, dockerfile_text: str, code: str, step: str) -> subprocess.CompletedProcess:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(dockerfile_text)
    report = tmp_path / "refused.jsonl"
    env = image_contract.write_contract(tmp_path / "contract.json", dockerfile, step_images(), report)

    return subprocess.run([sys.executable, "-c", code, "--function_to_execute", step],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def test_a_trainer_image_without_plotly_fails_the_report_naming_step_module_and_image(tmp_path):
    without_plotly = re.sub(r"^\s+plotly \\\n", "", DOCKERFILE.read_text(), flags=re.M)
    assert without_plotly != DOCKERFILE.read_text()
    # the report's real code path: a tiny study, then the HTML report
    code = (
        "import optuna; from loopline.tuning import report as tuning_report, study as tuning\n"
        "optuna.logging.set_verbosity(optuna.logging.WARNING)\n"
        "study = optuna.create_study(direction='maximize')\n"
        "study.optimize(lambda t: t.suggest_float('x', 0, 1), n_trials=3)\n"
        "import sys, tempfile\n"
        "tuning_report.report_html(study, settings=tuning.TuningSettings(), study_name='s', best_curves={}, "
        "final_curves={}, path=tempfile.mktemp(suffix='.html'))\n"
    )
    result = _guarded(tmp_path, without_plotly, code, "train_model")
    assert result.returncode != 0
    trainer = step_images()["train_model"]
    assert f"step train_model imports 'plotly', which its image {trainer} does not install" in result.stderr
    # with the real Dockerfile the same code path runs
    ok = _guarded(tmp_path, DOCKERFILE.read_text(), code, "train_model")
    assert ok.returncode == 0, ok.stderr[-2000:]


def test_a_step_on_the_base_image_cannot_import_tensorflow(tmp_path):
    result = _guarded(tmp_path, DOCKERFILE.read_text(), "import tensorflow", "load_data")
    assert result.returncode != 0
    assert "step load_data imports 'tensorflow', which its image" in result.stderr
    assert "loopline-base:" in result.stderr


@pytest.mark.slow
def test_every_step_of_the_loop_runs_on_its_images_packages(demo_loop):
    """Both pipelines through kfp.local, every step limited to its image's packages (the session's
    demo run, made under the guard: see conftest.demo_loop)."""
    # optional imports a library tries and catches are refused too (reported, harmless): a step that
    # needs a refused module fails, and these records say which
    failed = [f"{r['step']} imports {r['module']} ({r['imported']}), not in {r['image']}" for r in demo_loop.refused]
    assert demo_loop.result.returncode == 0, "\n".join(failed) + "\n" + demo_loop.result.stderr[-3000:]
    summary = json.loads((demo_loop.home / "last_run.json").read_text())
    ran = {s["task"] for p in summary["pipelines"] for s in p["steps"]}
    assert {"load-data", "validate-data", "train-model", "evaluate-model", "register-model", "deploy-model",
            "detect-drift"} <= ran


@pytest.mark.slow
def test_the_guard_is_active_in_the_steps_kfp_local_starts(tmp_path):
    """A base image without Great Expectations: validate_data, as kfp.local runs it, fails naming it."""
    without_gx = re.sub(r"^\s+great-expectations \\\n", "", DOCKERFILE.read_text(), flags=re.M)
    assert without_gx != DOCKERFILE.read_text()
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(without_gx)
    env = image_contract.write_contract(tmp_path / "contract.json", dockerfile, step_images(), tmp_path / "refused.jsonl")
    result = subprocess.run(
        [sys.executable, "-m", "loopline.cli", "run", "--home", str(tmp_path / "home"), "--rows", "600"],
        cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode != 0
    base = step_images()["validate_data"]
    assert f"step validate_data imports 'great_expectations', which its image {base} does not install" in (
        result.stdout + result.stderr)
