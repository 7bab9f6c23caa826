"""Names are checked where they enter, against the rules of the system that will hold them, and
no path built from a name leaves its home: `loopline serve --stop --model-name ../../x` writes
and deletes nothing outside LOOPLINE_HOME."""

from __future__ import annotations

import json

import pytest

from loopline.cli.app import main
from loopline.core import names
from loopline.core.home import model_cache_dir
from loopline.serving import server as serving


@pytest.mark.parametrize("bad", ["../../x", "/tmp/x", "a/b", "..", ".", "", "x y", "-x", "é" * 3, "a" * 129, "x\0y"])
def test_model_names_that_would_leave_a_folder_or_break_a_system_are_refused(bad):
    with pytest.raises(names.InvalidName, match="model name"):
        names.model_name(bad)


@pytest.mark.parametrize("good", ["loopline-model", "Fraud_v2", "a.b-c", "m" * 128])
def test_ordinary_model_names_pass(good):
    assert names.model_name(good) == good


def test_aliases_follow_mlflow():
    assert names.alias("champion") == "champion"
    for bad in ("latest", "v3", "a b", "x/y", ""):
        with pytest.raises(names.InvalidName):
            names.alias(bad)


def test_kubernetes_kserve_and_vertex_names():
    assert names.namespace("team-a") == "team-a"
    for bad in ("Team", "-a", "a-", "a_b", "a" * 64, "a.b"):
        with pytest.raises(names.InvalidName, match="DNS-1123"):
            names.namespace(bad)
    assert names.dns_subdomain("a.b-c") == "a.b-c"
    with pytest.raises(names.InvalidName):
        names.dns_subdomain("a..b")
    assert names.inference_service("fraud-model") == "fraud-model"
    with pytest.raises(names.InvalidName, match="KServe"):
        names.inference_service("1fraud")
    assert names.vertex_id("loopline-training-1") == "loopline-training-1"
    with pytest.raises(names.InvalidName):
        names.vertex_id("Loopline Training")
    assert names.vertex_label("team", "ml-ops") == ("team", "ml-ops")
    with pytest.raises(names.InvalidName, match="label value"):
        names.vertex_label("team", "ML Ops")
    with pytest.raises(names.InvalidName):
        names.experiment_name(" padded ")


def test_inside_refuses_every_way_out(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (home / "link").symlink_to(tmp_path / "elsewhere")
    assert names.inside(home, "serving", "m.json") == (home / "serving" / "m.json").resolve()
    for parts in (("..", "x"), ("/etc/passwd",), ("link", "x"), ("a/../../x",), ("",)):
        with pytest.raises(names.InvalidName):
            names.inside(home, *parts)


def test_paths_from_names_stay_in_the_home(tmp_path):
    with pytest.raises(names.InvalidName):
        serving.state_file(tmp_path, "../../x")
    with pytest.raises(names.InvalidName):
        model_cache_dir(tmp_path, "../x", "1")
    assert model_cache_dir(tmp_path, "m", "1") == (tmp_path / "models" / "m" / "v1").resolve()


@pytest.mark.parametrize("name", ["../../victim", "{tmp}/victim"])
def test_serve_stop_deletes_nothing_outside_the_home(tmp_path, capsys, name):
    home = tmp_path / "home"
    (home / "serving").mkdir(parents=True)
    victim = tmp_path / "victim.json"  # where home/serving/<name>.json would land
    victim.write_text(json.dumps({"keep": True}))
    code = main(["serve", "--stop", "--model-name", name.format(tmp=tmp_path), "--home", str(home)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("loopline: error: --model-name") and err.count("\n") == 1, err
    assert json.loads(victim.read_text()) == {"keep": True}


def test_serve_refuses_a_reserved_alias_before_touching_the_registry(tmp_path, capsys):
    code = main(["serve", "--alias", "latest", "--home", str(tmp_path)])
    assert code == 2
    assert "--alias 'latest' is reserved by MLflow" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()


def test_a_forged_server_record_cannot_point_outside(tmp_path):
    records = tmp_path / "serving" / serving.RECORDS
    records.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere" / serving.RECORDS
    elsewhere.mkdir(parents=True)
    target = elsewhere / "1.json"
    target.write_text("{}")
    forged = {"model_name": "m", "version": "1", "pid": 1, "port": 1, "model_dir": "", "host": "127.0.0.1",
              "log_file": str(tmp_path / "elsewhere" / "x.log")}
    (records / "1.json").write_text(json.dumps(forged))
    assert serving.recorded_servers(tmp_path) == []
    assert target.is_file()
