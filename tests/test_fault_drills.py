"""Fault drills: Ctrl-C during a deployment, SIGTERM to a run, a model server killed during its
smoke test. Afterwards no model server of the drill listens, and the registry is consistent:
the champion is where it was, no lease is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loopline import registry
from loopline.core.errors import DeploymentError
from loopline.core.logs import quiet_libraries
from loopline.data.tables import read_split
from loopline.local.runguard import ServersOfRun, Terminated
from loopline.model.contract import ServingModel
from loopline.registry import claims
from loopline.serving import rollout
from loopline.serving import server as serving

LIMITS = rollout.SmokeLimits(rows=4, tolerance=1e-5, max_p95_ms=5000)


def listening_ports() -> dict[int, str]:
    """Every TCP port listened on here (IPv4), with its address."""
    out = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        if state == "0A":  # LISTEN
            address, port = local.split(":")
            out[int(port, 16)] = ".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0))
    return out


def servers_under(folder: Path) -> list[int]:
    """Model server processes whose model lives under `folder`."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"loopline.serving" in args and any(str(folder).encode() in a for a in args):
            pids.append(int(cmdline.parent.name))
    return pids


def wait_for(condition, what: str, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture(scope="module")
def probe(splits, trained_model):
    holdout, spec = read_split(splits["holdout"])
    sample = holdout[list(spec.features)].head(LIMITS.rows)
    rows = sample.astype(object).where(sample.notna(), None).to_dict(orient="records")
    return rows, ServingModel(trained_model).predict_rows(rows)


DEPLOY = textwrap.dedent("""
    import json, sys
    from types import SimpleNamespace
    from loopline.executors import deploy_model
    from loopline.serving.targets import DeploySettings
    cfg = json.loads(sys.argv[1])
    art = lambda path: SimpleNamespace(path=path, uri=path, metadata={})
    deploy_model.run(model_name=cfg["model"], model_version=cfg["version"], tracking_uri=cfg["tracking_uri"],
                     holdout=art(cfg["holdout"]), manifest=art(cfg["manifest"]), report=art(cfg["report"]),
                     pipeline_run="drill", settings=DeploySettings(target="local", local_home=cfg["home"], smoke_rows=4))
""")


def test_ctrl_c_during_deploy_leaves_no_listener_and_a_consistent_registry(trained_model, splits, tmp_path):
    home = tmp_path / "home"
    uri = registry.local_tracking_uri(home)
    quiet_libraries()
    version = registry.register(str(trained_model), tracking_uri=uri, model_name="fraud", pipeline_run="drill-1",
                                tags={registry.TAG_GATE_CHAMPION: "none"}, params={}, metrics={}).version
    before = set(listening_ports())
    config = {"model": "fraud", "version": version, "tracking_uri": uri, "holdout": str(splits["holdout"]),
              "manifest": str(tmp_path / "manifest.yaml"), "report": str(tmp_path / "report.md"), "home": str(home)}
    proc = subprocess.Popen([sys.executable, "-c", DEPLOY, json.dumps(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        records = home / "serving" / serving.RECORDS
        (record,) = wait_for(lambda: list(records.glob("*.json")), "the deploy step to start a model server")
        server = json.loads(record.read_text())
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "KeyboardInterrupt" in out
    assert servers_under(home) == [] and list(records.glob("*.json")) == []
    assert server["port"] not in set(listening_ports()) - before
    assert serving.read_state(home, "fraud") is None
    assert registry.alias_version(uri, "fraud", registry.CHAMPION) is None  # it never served: not champion
    assert registry.alias_version(uri, "fraud", registry.CHALLENGER) == version
    client = registry.connect(uri)
    assert client.search_registered_models(f"name = '{claims.lease_name('fraud', 'champion')}'") == []


def test_sigterm_to_a_run_stops_the_servers_it_started(trained_model, tmp_path):
    home = tmp_path / "home"
    elder = subprocess.Popen(["sleep", "120"])  # a child from before the run: not the run's to end
    try:
        _sigterm_during_a_run(trained_model, home)
        assert elder.poll() is None
    finally:
        elder.kill()
        elder.wait()


def _sigterm_during_a_run(trained_model, home):
    with pytest.raises(Terminated):
        with ServersOfRun(home, "fraud"):
            info = serving.start_server(str(trained_model), model_name="fraud", version="1", log_dir=home / "serving")
            serving.write_state(home, info)
            assert listening_ports()[info.port] == "127.0.0.1"  # loopback only
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # the handler interrupts this
    assert not serving.is_alive(info) and servers_under(home) == []
    assert info.port not in listening_ports()
    assert serving.read_state(home, "fraud") is None and serving.recorded_servers(home) == []


def test_a_server_kept_on_purpose_stays_recorded_for_serve_stop(trained_model, tmp_path, capsys):
    from loopline.cli.app import main

    home = tmp_path / "home"
    with ServersOfRun(home, "fraud", keep_serving=True):
        info = serving.start_server(str(trained_model), model_name="fraud", version="1", log_dir=home / "serving")
        serving.write_state(home, info)
    assert serving.is_alive(info)
    assert main(["serve", "--stop", "--model-name", "fraud", "--home", str(home)]) == 0
    assert f"stopped fraud v1 (pid {info.pid})" in capsys.readouterr().out
    assert not serving.is_alive(info) and servers_under(home) == []


def test_a_server_killed_during_its_smoke_test_is_not_made_champion(trained_model, probe, tmp_path, monkeypatch):
    home = tmp_path / "home"
    real_predict = serving.predict
    killed = []

    def predict_after_kill(info, rows, timeout=30.0):
        if not killed:
            os.killpg(info.pid, signal.SIGKILL)
            killed.append(info)
        return real_predict(info, rows, timeout=timeout)

    monkeypatch.setattr(serving, "predict", predict_after_kill)
    rows, expected = probe
    with pytest.raises(DeploymentError, match="could not be deployed"):
        rollout.rollout_local(home=home, model_name="fraud", version="1", model_dir=str(trained_model), rows=rows,
                              expected=expected, limits=LIMITS)
    (info,) = killed
    assert serving.read_state(home, "fraud") is None and serving.recorded_servers(home) == []
    assert info.port not in listening_ports() and servers_under(home) == []
