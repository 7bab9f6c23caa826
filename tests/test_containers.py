"""In Loopline's images, for real (`make test-containers`: needs Docker or podman and `make images`).

- the whole loop with kfp.local's DockerRunner, data and MLflow artifacts on an S3-compatible
  server on loopback (moto, a stand-in) and a real `mlflow server`, against the same loop with the
  subprocess runner: the same gate verdicts and registered versions;
- the deploy step on the cluster's path: the stand-in Kubernetes API with KServe's controller
  serves each version's own storageUri in the serving image, and the drift-triggered retrain
  rolls out as a canary;
- another team's pipeline: three compiled component YAMLs wired into its own DAG by a script that
  never imports loopline, run with DockerRunner in Loopline's images.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.containers,
    pytest.mark.skipif(os.environ.get("LOOPLINE_TEST_CONTAINERS") != "1",
                       reason="container tests run with `make test-containers` (a container engine and `make images`)"),
]

ROOT = Path(__file__).resolve().parents[1]
LENIENT_GATES = {"absolute": {"roc_auc": 0.6}, "relative": {"max_regression": {"roc_auc": 0.5}}}
SMALL = ["--rows", "1500", "--trials", "1", "--max-epochs", "3", "--thresholds", json.dumps(LENIENT_GATES)]


def rehearsal(home: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    result = subprocess.run([sys.executable, "-m", "tools.rehearsal", "--home", str(home), *SMALL, *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=3000)
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-4000:]
    return result, json.loads((home / "last_run.json").read_text())


def verdicts(summary: dict) -> list[tuple]:
    return [(p["pipeline"], p.get("drifted"), p.get("gate_passed"), p.get("registered_version"))
            for p in summary["pipelines"]]


def test_the_loop_runs_in_the_images_on_object_storage_like_the_local_loop(tmp_path):
    result, summary = rehearsal(tmp_path / "containers", "--runner", "docker")
    assert summary["runner"].startswith("docker")
    assert summary["tracking_uri"].startswith("http://127.0.0.1:")
    steps = [s for p in summary["pipelines"] for s in p["steps"]]
    role = {s["task"]: re.search(r"/loopline-(\w+):", s["image"]).group(1) for s in steps}
    assert role["load-data"] == "base" and role["train-model"] == "trainer" and role["deploy-model"] == "deployer"
    assert role["detect-drift"] == "base" and role["evaluate-model"] == "trainer"
    # the summary says which image ran each step
    assert re.search(r"train-model .*\[\S+/loopline-trainer:\S+\]", result.stdout)
    # data from s3://, artifacts on the store, registered twice (training, then the drifted batch)
    champion = next(v for v in summary["versions"] if "champion" in v["aliases"])
    assert champion["tags"]["loopline.data_uri"].startswith("s3://loopline-data/")
    assert summary["pipelines"][1]["drifted"] is True

    check_the_cluster_path(tmp_path / "containers", result.stdout, summary)

    _, local = rehearsal(tmp_path / "subprocess")
    assert verdicts(summary) == verdicts(local)
    assert [v["version"] for v in summary["versions"]] == [v["version"] for v in local["versions"]]


def check_the_cluster_path(home: Path, stdout: str, summary: dict) -> None:
    """Each version's InferenceService points at that version's own URI, served by the serving
    image; the retrain is a canary, promoted or rolled back with its reason; nothing left running."""
    from loopline.core import images
    from loopline.local import serving_container
    from loopline.local.serving_container import _env
    from loopline.serving import version_uri
    from tools.rehearsal import MODEL_PREFIX

    cluster = json.loads((home / "kserve-standin.json").read_text())
    serving_image = images.image("serving")
    assert cluster["serving_image"] == serving_image
    deployed = [p for p in summary["pipelines"] if p.get("rollout")]
    assert [p["rollout"] for p in deployed][0] == "created"
    for entry in deployed:
        own = version_uri.version_uri(MODEL_PREFIX, "loopline-model", entry["registered_version"])
        assert entry["storage_uri"] == own, entry
        assert f"storageUri {own}" in stdout
        # the stand-in's controller fetched exactly that URI and ran the serving image for it
        assert any(p["storage_uri"] == own and p["image"] == serving_image for p in cluster["predictors"])
    # the served version passed its smoke test (the step's report: rows against the in-process model)
    first_report = (Path(deployed[0]["run_dir"]) / "deploy-model" / "report").read_text()
    assert "| verdict | pass:" in first_report and "Rollout of version 1: CREATED" in first_report
    retrain = deployed[-1]
    assert len(deployed) == 2 and retrain["rollout"] in ("promoted", "rolled_back"), deployed
    retrain_report = (Path(retrain["run_dir"]) / "deploy-model" / "report").read_text()
    assert f"canary: v{retrain['registered_version']} gets 10% beside v1" in retrain_report
    if retrain["rollout"] == "promoted":
        assert retrain["rollout_reason"] == "canary passed its smoke test"
        assert "| verdict | pass:" in retrain_report
        served = cluster["inference_services"][0]
        assert served["storage_uri"] == retrain["storage_uri"]
        champion = next(v for v in summary["versions"] if "champion" in v["aliases"])
        assert champion["version"] == retrain["registered_version"]
    else:
        assert retrain["rollout_reason"]
    # every predictor stopped, and no serving container is left
    assert cluster["predictors"] and all(p["stopped"] for p in cluster["predictors"])
    names = subprocess.run([serving_container.engine(), "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                           env=_env(), check=True).stdout.split()
    assert not {p["container"] for p in cluster["predictors"]} & set(names)


REUSE = textwrap.dedent('''
    """Another team's pipeline: Loopline's compiled components in its own DAG (no loopline import)."""
    import json, sys
    from pathlib import Path

    import numpy as np
    import pandas as pd
    from kfp import dsl, local
    from kfp.components import load_component_from_file

    compiled, root = Path(sys.argv[1]), Path(sys.argv[2])
    load_data = load_component_from_file(str(compiled / "load_data.yaml"))
    validate_data = load_component_from_file(str(compiled / "validate_data.yaml"))
    train_model = load_component_from_file(str(compiled / "train_model.yaml"))

    # the team's own data, under the pipeline root (the only host folder a step sees)
    rng = np.random.default_rng(3)
    n = 1200
    frame = pd.DataFrame({"tenure": rng.integers(1, 72, n), "spend": rng.gamma(2.0, 30.0, n),
                          "plan": rng.choice(["basic", "plus", "pro"], n)})
    frame["churned"] = ((frame["spend"] / 60 - frame["tenure"] / 36 + rng.normal(0, 0.5, n)) > 0).astype(int)
    data = root / "team-data" / "customers.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.parent.chmod(0o1777)
    frame.to_csv(data, index=False)

    @dsl.pipeline(name="churn-team")
    def churn(data_uri: str):
        loaded = load_data(data_uri=data_uri, target="churned", seed=5)
        validate_data(train=loaded.outputs["train"], validation=loaded.outputs["validation"],
                      holdout=loaded.outputs["holdout"])
        train_model(train=loaded.outputs["train"], validation=loaded.outputs["validation"], n_trials=1, max_epochs=2)

    if sys.argv[3:] == ["--compile-only"]:  # the team's DAG as YAML, no container engine needed
        from kfp import compiler

        compiler.Compiler().compile(churn, str(root / "churn-team.yaml"))
    else:
        local.init(runner=local.DockerRunner(network_mode="host"), pipeline_root=str(root), raise_on_error=True)
        churn(data_uri=str(data))
''')

# Runs a script (argv[1], its arguments after it) the way it runs where Loopline is not installed:
# importing loopline fails. The last line of stdout says what tried to import it and what was loaded.
WITHOUT_LOOPLINE = textwrap.dedent('''
    import json, runpy, sys

    class NoLoopline:
        attempts = []

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "loopline":
                self.attempts.append(name)
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    finder = NoLoopline()
    sys.meta_path.insert(0, finder)
    sys.argv = sys.argv[1:]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "loopline")
        print(json.dumps({"loopline_imports": finder.attempts, "loopline_modules": loaded}), flush=True)
''')


def team_pipeline(folder: Path, root: Path, *extra: str, env: dict | None = None, timeout: float = 300):
    """Run the team's script (REUSE) on Loopline's compiled components, without loopline; return
    the process and its report (what tried to import loopline, which loopline modules were loaded)."""
    script = folder / "team_pipeline.py"
    script.write_text(REUSE)
    env = env or {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # -I: the team's interpreter sees neither this repository nor the working directory
    result = subprocess.run([sys.executable, "-I", "-c", WITHOUT_LOOPLINE, str(script), str(ROOT / "compiled" / "components"),
                             str(root), *extra], cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
    lines = result.stdout.strip().splitlines()
    return result, (json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None)


def test_another_team_reuses_three_compiled_components_in_its_own_pipeline(tmp_path):
    from loopline.local.container_runner import Engine

    root = tmp_path / "pipeline_root"
    root.mkdir()
    root.chmod(0o1777)
    with Engine(tmp_path / "engine") as engine:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["DOCKER_HOST"] = engine.base_url
        result, report = team_pipeline(tmp_path, root, env=env, timeout=2400)
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-4000:]
    # the team's process ran the whole pipeline without importing loopline: only the images hold it
    assert report == {"loopline_imports": [], "loopline_modules": []}, report
    run_dir = next(root.glob("churn-team-*"))
    for task in ("load-data", "validate-data", "train-model"):
        assert (run_dir / task / "executor_output.json").is_file(), task
    metrics = json.loads((run_dir / "train-model" / "executor_output.json").read_text())
    assert metrics["artifacts"]["model"]["artifacts"][0]["uri"]
    model_dir = Path(metrics["artifacts"]["model"]["artifacts"][0]["uri"])
    assert (model_dir / "1" / "saved_model.pb").is_file() and model_dir.stat().st_uid == 10001
    assert "Found image 'ghcr.io/loopline/loopline-trainer:" in result.stdout + result.stderr


def test_a_missing_image_is_one_line_naming_it_and_make_images(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "loopline.cli", "run", "--home", str(tmp_path / "home"), "--rows", "300",
         "--runner", "docker"],
        cwd=tmp_path, env={**os.environ, "LOOPLINE_IMAGE_REGISTRY": "localhost/absent"},
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 2
    from loopline.core.images import package_version

    assert re.fullmatch(
        rf"loopline: error: image localhost/absent/loopline-\w+:{re.escape(package_version())} is missing from "
        r"(docker|podman): build it with `make images`", result.stderr.strip().splitlines()[-1])
    assert not list((tmp_path / "home" / "pipeline_root").glob("loopline-*"))
