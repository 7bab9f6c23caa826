"""Concurrency: one local run per folder, a compare-and-set on the champion, and one
drift-triggered training run however many monitor runs detect drift at once. The racing parties
are separate processes against a real MLflow store (SQLite, and an `mlflow server`); runs go to
the KFP API stand-in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from loopline import registry
from loopline.cli.app import main
from loopline.core.logs import quiet_libraries
from loopline.local import runlock
from loopline.ops import params
from loopline.registry import claims, promotion
from loopline.serving import targets

from .conftest import ROOT

ARGUMENTS = {"data_uri": "s3://data/current.csv", "target": "is_fraud", "thresholds": {"roc_auc": 0.8},
             "deploy_target": "kserve", "storage_uri": "s3://models/fraud"}

# Every worker waits until all have started, then races.
BARRIER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    cfg = json.loads(sys.argv[1])
    barrier = Path(cfg["barrier"])
    (barrier / f"ready-{cfg['i']}").touch()
    while len(list(barrier.glob("ready-*"))) < cfg["n"]:
        time.sleep(0.01)
""")

DRIFT_WORKER = BARRIER + textwrap.dedent("""
    from loopline.ops import params
    from loopline.ops import reruns
    from loopline.ops import submit
    decision = reruns.retrain(
        tracking_uri=cfg["tracking_uri"], model_name=cfg["model"], target=submit.KfpTarget(host=cfg["kfp"]),
        pipeline=params.read_pipeline(cfg["pipeline"]), arguments=cfg["arguments"], monitor_run=f"monitor-{cfg['i']}",
        settings=reruns.RetrainSettings(),
    )
    print(json.dumps({"triggered": decision.triggered, "reason": decision.reason}))
""")

CHAMPION_WORKER = BARRIER + textwrap.dedent("""
    from loopline.registry import promotion
    try:
        with promotion.champion_move(cfg["tracking_uri"], cfg["model"], cfg["version"]) as move:
            move.commit()
        print(json.dumps({"promoted": True}))
    except promotion.ChampionMoved as exc:
        print(json.dumps({"promoted": False, "reason": str(exc)}))
""")


def race(script: str, configs: list[dict], barrier: Path) -> list[dict]:
    """Start one process per config, let them race, return what each printed."""
    barrier.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, json.dumps({**c, "i": i, "n": len(configs),
                                                                          "barrier": str(barrier)})],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i, c in enumerate(configs)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.fixture(params=["sqlite", "server"])
def store(request, tmp_path):
    """A real MLflow store: a SQLite file, or a tracking server (started once for the session)."""
    quiet_libraries()
    if request.param == "server":
        return request.getfixturevalue("mlflow_server").uri
    uri = registry.local_tracking_uri(tmp_path / "home")
    registry.check_store(uri)  # the tables exist before the workers race
    return uri


@pytest.fixture()
def model(request) -> str:
    return "race-" + request.node.name.removeprefix("test_")[:60].replace("[", "-").replace("]", "")


# ---------------------------------------------------------------------------------------------
# drift-triggered retraining


def test_simultaneous_drift_detections_in_separate_processes_submit_exactly_one_run(store, model, kfp_api, tmp_path):
    config = {"tracking_uri": store, "model": model, "kfp": kfp_api.url, "pipeline": str(ROOT / "compiled" / "training.yaml"),
              "arguments": {**ARGUMENTS, "tracking_uri": store, "model_name": model}}
    decisions = race(DRIFT_WORKER, [config] * 4, tmp_path / "barrier")
    assert len(kfp_api.created_runs()) == 1
    assert sum(d["triggered"] for d in decisions) == 1, decisions
    for decision in decisions:
        if not decision["triggered"]:
            assert ("another drift monitor run is starting a training run" in decision["reason"]  # during the claim
                    or decision["reason"].startswith("the drift-triggered training run")  # after it: still active
                    or decision["reason"].startswith("cooldown: the last drift-triggered training run")), decision
    from mlflow import MlflowClient

    client = MlflowClient(store, registry_uri=store)
    assert client.search_registered_models(f"name = '{claims.lease_name(model, 'drift-retraining')}'") == []


# ---------------------------------------------------------------------------------------------
# the champion: a compare-and-set


def _register_versions(uri: str, model: str, gate_champions: list[str]) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model(model)
    return [str(client.create_model_version(model, f"s3://models/{model}/{i}",
                                            tags={registry.TAG_GATE_CHAMPION: gated}).version)
            for i, gated in enumerate(gate_champions)]


def test_runs_gated_against_the_same_champion_promote_exactly_one(store, model, tmp_path):
    versions = _register_versions(store, model, ["none"] * 3)  # three runs, each gated with no champion
    outcomes = race(CHAMPION_WORKER, [{"tracking_uri": store, "model": model, "version": v} for v in versions],
                    tmp_path / "barrier")
    promoted = [v for v, o in zip(versions, outcomes, strict=True) if o["promoted"]]
    assert len(promoted) == 1, outcomes
    assert registry.alias_version(store, model, registry.CHAMPION) == promoted[0]
    for outcome in outcomes:
        if not outcome["promoted"]:
            assert (f"the champion of {model} moved since the gate judged" in outcome["reason"]
                    or f"another run is moving the champion of {model}" in outcome["reason"]), outcome
            assert "the champion stays" in outcome["reason"]


def test_a_champion_that_moved_since_the_gate_fails_closed(tmp_path):
    uri = registry.local_tracking_uri(tmp_path / "home")
    quiet_libraries()
    v1, v2, v3 = _register_versions(uri, "fraud", ["none", "none", "1"])
    with promotion.champion_move(uri, "fraud", v1) as move:
        move.commit()
    with pytest.raises(promotion.ChampionMoved) as info:  # v2 was gated when there was no champion
        with promotion.champion_move(uri, "fraud", v2):
            raise AssertionError("the rollout must not start")
    assert str(info.value) == (
        "the champion of fraud moved since the gate judged v2: the gate compared it with no champion, the champion "
        "is now v1; not promoting v2 (it stays registered as a candidate), the champion stays v1; train again to "
        "gate against it")
    assert registry.alias_version(uri, "fraud", registry.CHAMPION) == v1
    with promotion.champion_move(uri, "fraud", v3) as move:  # gated against v1: goes ahead
        move.commit()
    assert registry.alias_version(uri, "fraud", registry.CHAMPION) == v3


def test_the_deploy_step_fails_closed_before_starting_a_server(tmp_path):
    from loopline.executors import deploy_model

    uri = registry.local_tracking_uri(tmp_path / "home")
    quiet_libraries()
    v1, v2 = _register_versions(uri, "fraud", ["none", "none"])
    registry.set_alias(uri, "fraud", registry.CHAMPION, v1)
    with pytest.raises(promotion.ChampionMoved, match="the champion stays v1"):
        deploy_model.run(model_name="fraud", model_version=v2, tracking_uri=uri, holdout=None, manifest=None,
                         report=None, pipeline_run="run-2",
                         settings=targets.DeploySettings(target="local", local_home=str(tmp_path / "home")))
    assert not (tmp_path / "home" / "serving").exists()
    assert registry.alias_version(uri, "fraud", registry.CHAMPION) == v1


def test_a_lease_is_exclusive_until_released_and_an_expired_one_is_broken(tmp_path):
    uri = registry.local_tracking_uri(tmp_path / "home")
    client = registry.connect(uri)
    first = claims.acquire(client, "m.lease.x", holder="first", ttl_seconds=3600)
    assert isinstance(first, claims.Lease)
    second = claims.acquire(client, "m.lease.x", holder="second", ttl_seconds=3600)
    assert isinstance(second, claims.Held) and second.holder == "first"
    claims.release(client, first)
    third = claims.acquire(client, "m.lease.x", holder="third", ttl_seconds=0)  # its holder "dies" at once
    assert isinstance(third, claims.Lease)
    fourth = claims.acquire(client, "m.lease.x", holder="fourth", ttl_seconds=3600)
    assert isinstance(fourth, claims.Lease) and fourth.holder == "fourth"


# ---------------------------------------------------------------------------------------------
# one local run per folder


def test_a_second_run_on_the_same_folder_refuses_naming_the_holder(tmp_path, capsys):
    home = tmp_path / "home"
    with runlock.RunLock(home, what="loopline run"):
        with pytest.raises(runlock.RunLocked) as info:
            with runlock.RunLock(home):
                pass
        assert f"pid {os.getpid()}" in str(info.value) and "loopline run" in str(info.value)
        code = main(["run", "--home", str(home), "--rows", "200"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert err[-1].startswith(f"loopline: error: another loopline run is using {home} (pid {os.getpid()} on ")
        assert err[-1].endswith("wait for it to end, or give this run another --home")
    with runlock.RunLock(home):  # released
        pass
    assert not (home / "pipeline_root").exists()


def test_the_lock_goes_with_a_holder_that_was_killed(tmp_path):
    home = tmp_path / "home"
    script = ("import sys, time; from loopline.local.runlock import RunLock\n"
              "with RunLock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(home)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(runlock.RunLocked, match=f"pid {proc.pid} "):
            with runlock.RunLock(home):
                pass
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    with runlock.RunLock(home):
        pass


def test_settings_used_by_the_race_are_real_pipeline_inputs():
    pipeline = params.read_pipeline(ROOT / "compiled" / "training.yaml")
    assert set(ARGUMENTS) | {"tracking_uri", "model_name"} <= set(pipeline.inputs)
