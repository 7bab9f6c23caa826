"""Signal drills with real processes: SIGTERM and SIGHUP end `loopline serve` and a run's deploy as
Ctrl-C does (servers stopped, the step ended, the champion unchanged, exit code 128 + signal); a
run whose process died shows as interrupted; a full disk is one line naming what, exit code 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from loopline import registry
from loopline.core.logs import quiet_libraries
from loopline.core.signals import Terminated, terminated_as_interrupt
from loopline.local import records as localruns
from loopline.local.console import runs_table
from loopline.serving import server as serving

from .test_fault_drills import DEPLOY, listening_ports, servers_under, wait_for


def test_the_first_signal_raises_and_the_next_waits_for_the_clean_up():
    previous = signal.getsignal(signal.SIGHUP)
    caught = None
    with terminated_as_interrupt():
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(5)
        except Terminated as exc:
            caught = exc
        os.kill(os.getpid(), signal.SIGTERM)  # while cleaning up: ignored, the clean-up completes
        time.sleep(0.2)
    assert caught is not None and caught.name == "SIGHUP" and caught.exit_code == 129
    assert signal.getsignal(signal.SIGHUP) == previous


@pytest.fixture()
def champion_home(trained_model, tmp_path):
    """A home whose registry has version 1 of `fraud` as champion."""
    home = tmp_path / "home"
    uri = registry.local_tracking_uri(home)
    quiet_libraries()
    version = registry.register(str(trained_model), tracking_uri=uri, model_name="fraud", pipeline_run="drill-1",
                                tags={registry.TAG_GATE_CHAMPION: "none"}, params={}, metrics={}).version
    registry.set_alias(uri, "fraud", registry.CHAMPION, version)
    return home, uri, version


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_during_serve_leaves_no_server_listening(champion_home, signum):
    home, _, _ = champion_home
    before = set(listening_ports())
    proc = subprocess.Popen([sys.executable, "-m", "loopline.cli", "serve", "--home", str(home), "--model-name", "fraud"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        records = home / "serving" / serving.RECORDS
        (record,) = wait_for(lambda: list(records.glob("*.json")), "serve to start its model server")
        server = json.loads(record.read_text())
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, err
    assert err.strip().splitlines()[-1] == (f"loopline: stopped by {name}: the servers this command started are "
                                            f"stopped (exit code {128 + signum})"), err
    assert servers_under(home) == [] and list(records.glob("*.json")) == []
    assert server["port"] not in set(listening_ports()) - before
    assert serving.read_state(home, "fraud") is None


RUN_WITH_DEPLOY = textwrap.dedent("""
    import json, subprocess, sys
    from loopline.local.runguard import ServersOfRun
    cfg = json.loads(sys.argv[1])
    with ServersOfRun(cfg["home"], cfg["model"]):  # as `loopline run` does around kfp.local
        step = subprocess.Popen([sys.executable, "-c", sys.argv[2], sys.argv[1]])
        print(step.pid, flush=True)
        step.wait()
""")


def test_sighup_during_a_runs_deploy_ends_the_step_and_keeps_the_champion(champion_home, trained_model, splits, tmp_path):
    home, uri, first = champion_home
    second = registry.register(str(trained_model), tracking_uri=uri, model_name="fraud", pipeline_run="drill-2",
                               tags={registry.TAG_GATE_CHAMPION: first}, params={}, metrics={}).version
    config = {"model": "fraud", "version": second, "tracking_uri": uri, "holdout": str(splits["holdout"]),
              "manifest": str(tmp_path / "manifest.yaml"), "report": str(tmp_path / "report.md"), "home": str(home)}
    run = subprocess.Popen([sys.executable, "-c", RUN_WITH_DEPLOY, json.dumps(config), DEPLOY],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        step = int(run.stdout.readline())
        records = home / "serving" / serving.RECORDS
        wait_for(lambda: list(records.glob("*.json")), "the deploy step to start a model server")
        run.send_signal(signal.SIGHUP)  # the terminal closed
        out, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert "Terminated: SIGHUP" in out, out[-3000:]
    assert wait_for(lambda: not os.path.exists(f"/proc/{step}") or _zombie(step), "the deploy step to end", 30)
    assert servers_under(home) == [] and list(records.glob("*.json")) == []
    assert registry.alias_version(uri, "fraud", registry.CHAMPION) == first  # unchanged


def _zombie(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_run_whose_process_died_is_interrupted_not_running(tmp_path):
    home = tmp_path / "home"
    writer = subprocess.Popen([sys.executable, "-c", "import sys, time; from loopline import localruns; "
                               "localruns.new_run(__import__('pathlib').Path(sys.argv[1]), command='loopline run'); "
                               "print('made', flush=True); time.sleep(120)", str(home)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "made"
        assert " running " in runs_table(home).splitlines()[1]
        writer.kill()  # kill -9: nothing of the run could record its end
        writer.wait()
    finally:
        if writer.poll() is None:
            writer.kill()
    (run,) = localruns.list_runs(home)
    assert run.status == "RUNNING" and run.shown_status == "INTERRUPTED"
    assert " interrupted " in runs_table(home).splitlines()[1]


def test_a_full_disk_is_one_line_and_exit_code_2(tmp_path):
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "loopline.cli", "runs", "--home", str(tmp_path)],
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == "loopline: error: cannot write to standard output: No space left on device\n"


def test_a_file_that_cannot_be_written_names_its_path(tmp_path):
    result = subprocess.run([sys.executable, "-m", "loopline.cli", "compile", "--out", "/dev/full/compiled"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loopline: error: ") and "/dev/full" in lines[0], result.stderr
