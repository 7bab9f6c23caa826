"""End to end on one machine: the CLI and both pipelines through kfp.local, for real."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from loopline import registry
from loopline.data.demo import demo_transactions
from loopline.local import records as localruns
from loopline.local import runpage_svg
from loopline.serving import server as serving

from .conftest import LENIENT_GATES


def loopline(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loopline.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.fixture()
def closed_loop(demo_loop):
    """The session's demo run of the whole loop (small), looked at by the tests below."""
    result = demo_loop.result
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    return demo_loop.home, result


@pytest.mark.slow
def test_the_closed_loop_trains_serves_detects_drift_and_retrains(closed_loop):
    home, result = closed_loop
    summary = json.loads((home / "last_run.json").read_text())
    training, monitor = summary["pipelines"]
    assert [s["task"] for s in training["steps"]] == [
        "load-data", "validate-data", "train-model", "evaluate-model", "register-model", "deploy-model"]
    assert training["gate_passed"] and training["registered_version"] == "1"
    assert monitor["drifted"] is True and monitor["share_drifted"] >= 0.5
    monitor_tasks = [s["task"] for s in monitor["steps"]]
    assert monitor_tasks.index("detect-drift") < monitor_tasks.index("train-model") and monitor["registered_version"] == "2"
    assert "batch-predict" in monitor_tasks  # the current window scored by the champion (prediction drift)
    assert summary["aliases"] == {"champion": "2", "challenger": "2"}
    # the first version was created; the second went through a canary beside it and was promoted
    assert training["rollout"] == "created" and monitor["rollout"] == "promoted"
    assert "rollout: PROMOTED (canary passed its smoke test)" in result.stdout
    # the endpoint answered a prediction, then the server was stopped
    (probabilities,) = summary["prediction"]["response"]["predictions"]
    assert abs(sum(probabilities) - 1.0) < 1e-4 and summary["server"] == "stopped"
    assert serving.read_state(home, "loopline-model") is None
    # the summary is printed, with each training's gate table
    assert "Loopline run summary" in result.stdout and "gate: PASSED" in result.stdout
    assert "DRIFTED, retraining" in result.stdout
    assert "Champion: none yet (first model); relative gates are skipped" in training["gate_report"]
    assert "Champion: version 1 (`models:/loopline-model/1`), evaluated on the same holdout" in monitor["gate_report"]
    (relative,) = [line for line in monitor["gate_report"].splitlines() if line.startswith("| relative | roc_auc |")]
    champion_auc = float(relative.split(" | ")[3])
    assert 0.0 < champion_auc <= 1.0 and relative.split(" | ")[6] == "pass"  # after the baseline and the rule
    assert monitor["gate_report"].strip() in result.stdout.replace("\n    ", "\n")
    # the registry holds both versions; the champion carries its lineage
    versions = {v["version"]: v for v in summary["versions"]}
    assert sorted(versions) == ["1", "2"] and versions["2"]["aliases"] == ["challenger", "champion"]
    lineage = versions["2"]["tags"]
    assert lineage[registry.TAG_DATA_URI].endswith("transactions_shifted.csv")
    assert lineage[registry.TAG_PIPELINE_NAME] == "loopline-training"
    assert lineage[registry.TAG_GATE_CHAMPION] == "1"
    assert lineage[registry.TAG_GATE_REPORT] == monitor["gate_report"]
    assert "champion v2 lineage:" in result.stdout
    # the manifests of both deployments are kept, marked as local records (their models are on this disk)
    assert sorted(p.name for p in (home / "manifests").glob("*.yaml")) == [
        "loopline-model-v1.local-record.yaml", "loopline-model-v2.local-record.yaml"]


@pytest.mark.slow
def test_drift_monitor_does_not_retrain_without_drift(tmp_path):
    from kfp import local

    from loopline.pipelines import drift_monitor

    reference, current = tmp_path / "reference.csv", tmp_path / "current.parquet"
    demo_transactions(1500, seed=1).to_csv(reference, index=False)
    demo_transactions(1500, seed=2).to_parquet(current)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    drift_monitor(
        reference_data_uri=str(reference), current_data_uri=str(current), target="is_fraud",
        tracking_uri=registry.local_tracking_uri(tmp_path / "home"), ignore_columns=["transaction_id"],
        local_home=str(tmp_path / "home"),
    )
    (run_dir,) = list((tmp_path / "root").iterdir())
    # the drift check, and the predictions step (no champion yet: it scores nothing); nothing trained
    assert {p.parent.name for p in run_dir.glob("*/executor_output.json")} == {"detect-drift", "batch-predict"}


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str, str]]:
    good = demo_transactions(300, seed=1)
    cases = {}
    p = tmp_path / "no_target.csv"
    good.drop(columns=["is_fraud"]).to_csv(p, index=False)
    cases["missing target"] = (p, "is_fraud", "target column 'is_fraud' not found")
    p = tmp_path / "empty.csv"
    p.write_bytes(b"")
    cases["empty file"] = (p, "is_fraud", "data file is empty")
    p = tmp_path / "header_only.csv"
    p.write_text(",".join(good.columns) + "\n")
    cases["header only"] = (p, "is_fraud", "has no rows")
    p = tmp_path / "binary.parquet"
    p.write_bytes(b"\x00\x01not parquet at all")
    cases["unreadable"] = (p, "is_fraud", "cannot read")
    p = tmp_path / "one_class.csv"
    good.assign(is_fraud=0).to_csv(p, index=False)
    cases["single class"] = (p, "is_fraud", "has a single class")
    cases["not found"] = (tmp_path / "nope.csv", "is_fraud", "data file not found")
    p = tmp_path / "constant.csv"
    good.assign(channel="chip").to_csv(p, index=False)
    cases["constant feature"] = (p, "is_fraud", "feature column 'channel' is constant in")
    return cases


@pytest.mark.parametrize(
    "case", ["missing target", "empty file", "header only", "unreadable", "single class", "not found", "constant feature"]
)
def test_bad_input_stops_the_run_with_one_line_before_training(tmp_path, case):
    path, target, message = _bad_inputs(tmp_path)[case]
    home = tmp_path / "home"
    result = loopline("run", "--data", str(path), "--target", target, "--ignore", "transaction_id", "--home", str(home),
                      cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loopline: error:") and message in lines[0], result.stderr
    assert str(path.name) in lines[0]
    # nothing ran, nothing was registered or served
    assert not (home / "pipeline_root").exists() and not (home / "mlflow.db").exists()
    assert not (home / "serving").exists()


@pytest.mark.slow
def test_user_data_with_a_multiclass_target_and_missing_values(tmp_path):
    """`loopline run --data ... --target ...` on a file it has never seen (training only)."""
    import numpy as np

    rng = np.random.default_rng(5)
    n = 900
    size = rng.normal(10, 3, n)
    size[rng.random(n) < 0.05] = np.nan
    color = rng.choice(["red", "green", "blue", None], n, p=[0.3, 0.3, 0.35, 0.05])
    label = np.where(size > 11.5, "large", np.where(size < 8.5, "small", "medium"))
    path = tmp_path / "shapes.parquet"
    pd.DataFrame({"id": range(n), "size": size, "color": color, "kind": label}).to_parquet(path)
    home = tmp_path / "home"
    result = loopline("run", "--data", str(path), "--target", "kind", "--ignore", "id", "--home", str(home),
                      "--trials", "1", "--max-epochs", "10", "--thresholds", '{"accuracy": 0.5}', cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((home / "last_run.json").read_text())
    (training,) = summary["pipelines"]
    assert training["gate_passed"] and training["registered_version"] == "1"
    (probabilities,) = summary["prediction"]["response"]["predictions"]
    assert len(probabilities) == 3


def test_a_failed_step_is_reported_as_its_own_one_line_cause(tmp_path):
    """Not "Inner task failed": the step's own message, named by step and pipeline."""
    from kfp import dsl
    from kfp import local as kfp_local

    from loopline import components
    from loopline.core.errors import StepFailed
    from loopline.local import run as local

    data = tmp_path / "data.csv"
    demo_transactions(300, seed=1).to_csv(data, index=False)

    def one_step(data_uri):
        components.load_data(data_uri=data_uri, target="label", ignore_columns=["transaction_id"])

    one_step.__annotations__ = {"data_uri": str}  # real types for KFP (this module's annotations are text)
    one_step = dsl.pipeline(name="one-step")(one_step)

    root = tmp_path / "home" / "pipeline_root"
    root.mkdir(parents=True)
    kfp_local.init(runner=kfp_local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    with pytest.raises(StepFailed) as info:
        local._run_pipeline(root, "one-step", one_step, data_uri=str(data))
    assert str(info.value).startswith(f"pipeline one-step: load-data failed: target column 'label' not found in {data} "
                                      "(columns: transaction_id, amount,")
    assert not info.value.verdict


@pytest.mark.slow
def test_two_concurrent_runs_on_one_folder_end_with_exactly_one_gated_champion(tmp_path):
    import time

    data = tmp_path / "data.csv"
    demo_transactions(900, seed=4).to_csv(data, index=False)
    home = tmp_path / "home"
    args = [sys.executable, "-m", "loopline.cli", "run", "--home", str(home), "--data", str(data), "--target", "is_fraud",
            "--ignore", "transaction_id", "--trials", "1", "--max-epochs", "4",
            # what is tested is who promotes, not the model: a 4-epoch model on 900 rows need not beat the baseline
            "--thresholds", json.dumps({**LENIENT_GATES, "baseline": False})]
    first = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (home / "run.lock").is_file() or not (home / "run.lock").read_text().strip():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1][-3000:]
            time.sleep(0.1)
        second = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        out, err = first.communicate(timeout=900)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2
    (line,) = [line for line in second.stderr.splitlines() if line.startswith("loopline: error: ")]
    assert line.startswith(f"loopline: error: another loopline run is using {home} (pid {first.pid} on ")
    assert first.returncode == 0, err[-3000:]
    tracking_uri = registry.local_tracking_uri(home)
    (version,) = registry.versions(tracking_uri, "loopline-model")
    assert version["aliases"] == ["challenger", "champion"]
    assert version["tags"][registry.TAG_GATE_CHAMPION] == "none"
    assert serving.read_state(home, "loopline-model") is None  # the run stopped its server


def _model_server(pid: int) -> bool:
    try:
        return b"loopline.serving" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # no such process
        return False


@pytest.mark.slow
def test_no_model_server_is_left_after_the_runs_of_this_suite(closed_loop, tmp_path_factory):
    """The session's demo run (the fixture makes it when no test has yet) started a model server
    per deployed version and stopped each: no process, no listening port, no record is left; nor
    of any other run this session made."""
    from .test_fault_drills import listening_ports, servers_under

    home, _ = closed_loop
    started = sorted((home / "serving").glob("*-v*-*.log"))  # each server's own log: <model>-v<version>-<port>.log
    assert len(started) >= 2, started  # the first version, then the drift-triggered retrain's
    ports = listening_ports()
    assert not [log.name for log in started if int(log.stem.rsplit("-", 1)[1]) in ports]
    (record,) = localruns.list_runs(home)
    stopped = [int(pid) for pid in re.findall(r"stopped local model server \S+ v\d+ \(pid (\d+)\)",
                                              record.log_path.read_text())]
    assert len(stopped) >= len(started), stopped
    assert not [pid for pid in stopped if _model_server(pid)]
    assert servers_under(home) == [] and serving.recorded_servers(home) == []

    base = tmp_path_factory.getbasetemp()
    assert servers_under(base) == []
    for record in base.glob("**/serving/servers/*.json"):
        info = serving.ServerInfo(**json.loads(record.read_text()))
        assert not serving.is_alive(info), record
        assert info.port not in listening_ports(), record


@pytest.mark.slow
def test_the_terminal_of_a_demo_run_is_short_and_the_log_holds_the_rest(closed_loop):
    home, result = closed_loop
    shown = result.stdout + result.stderr
    assert len(shown.splitlines()) <= 150, shown
    (record,) = localruns.list_runs(home)
    assert result.stdout.splitlines()[0] == f"Loopline run {record.id}   log: {record.log_path}"
    # a line per step as it starts and as it ends, with what it found
    ended = [line.split()[1] for line in result.stdout.splitlines() if re.match(r"  \S+ \S+ +\d+\.\ds  ", line)]
    assert ended == [s.task for s in record.steps] and len(ended) == 15
    for found in ("expectations met", "best of 1 trials", "gate PASSED", "registered version 2 as challenger",
                  "rollout PROMOTED", "of features drifted"):
        assert found in result.stdout
    # kfp.local's output, the executor inputs and TensorFlow's messages are in the log only
    log = record.log_path.read_text()
    for quiet in ("Got executor_input", "Executing task", "[loopline progress] final training epochs"):
        assert quiet in log and quiet not in shown
    # the long steps said how far they were: the bars a terminal shows
    for done in ("tuning trials 1/1", "smoke test rows 16/16"):
        assert f"[loopline progress] {done}" in log
    assert "\x1b[" not in result.stdout  # not a terminal: no colours
    assert f"run page: {record.page_path}" in result.stdout


@pytest.mark.slow
def test_the_run_page_shows_the_steps_the_gate_and_the_curves(closed_loop, tmp_path):
    from .browser import dump_dom, pixels_of, screenshot

    home, _ = closed_loop
    (record,) = localruns.list_runs(home)
    page = record.page_path
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # opens offline
    dom = re.sub(r">\s+<", "><", dump_dom(page))
    # each pipeline's graph with every step that ran, and the step that did not (no tuning workers)
    for pipeline in ("loopline-training", "loopline-drift-monitor"):
        assert f'data-pipeline="{pipeline}"' in dom
    assert dom.count('class="node" data-task="deploy-model" data-status="SUCCESS"') == 2
    assert dom.count('data-task="tune-model" data-status="NOT RUN"') == 2
    assert 'data-task="trigger-training" data-status="NOT RUN"' in dom
    # the gate table, rendered from the evaluation's Markdown, beside the champion of the retraining
    assert "<th>gate</th><th>metric</th><th>challenger</th><th>champion</th>" in dom
    assert re.search(r"<td>relative</td><td>roc_auc</td><td>[\d.]+</td><td>[\d.]+</td>", dom)
    # metrics as tables, the curves as pictures, the reports linked next to the page
    assert dom.count('aria-label="ROC curve"') == 2 and dom.count('aria-label="confusion matrix"') == 2
    for report, copies in (("validate-data--report", 2), ("train-model--report", 2), ("detect-drift--report", 1)):
        copied = sorted(record.path.glob(f"files/*{report}.html"))
        assert len(copied) == copies, report
        for each in copied:
            assert f'href="files/{each.name}"' in dom and each.stat().st_size > 1000
    # the registry and the endpoint
    assert re.search(r"aliases: challenger → v2, champion → v2", dom)
    assert "/v1/models/loopline-model:predict" in dom
    # what a person sees: the ROC curves are drawn, the steps are green
    png = screenshot(page, tmp_path / "page.png", height=9000)
    assert pixels_of(png, runpage_svg.ROC_COLOUR) > 500
    assert pixels_of(png, runpage_svg.COLOURS["SUCCESS"]) > 500
    assert pixels_of(png, runpage_svg.COLOURS["FAILURE"]) == 0
