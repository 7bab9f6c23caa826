"""Services that do not answer fail within the bound ($LOOPLINE_SERVICE_TIMEOUT, 20 s by default),
with one line naming the service and its URI (credentials masked): MLflow, KFP, Kubernetes,
Vertex AI and object stores; a host that does not resolve says so."""

from __future__ import annotations

import socket
import threading

import pytest

from loopline.cli.app import main
from loopline.core import services

from .conftest import ROOT


@pytest.fixture()
def silent():
    """A port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture()
def closed():
    """A port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def short_bound(monkeypatch):
    monkeypatch.setenv(services.BOUND_ENV, "2")


def test_a_call_that_never_returns_is_cut_at_the_bound():
    never = threading.Event()
    with pytest.raises(services.ServiceUnavailable, match=r"cannot reach the KFP API at http://\*\*\*@kfp:8888: no answer within 0.3s"):
        services.bounded("the KFP API", "http://u:pw-1234@kfp:8888", never.wait, seconds=0.3)
    assert services.bounded("x", "y", lambda: 42) == 42
    with pytest.raises(KeyError):
        services.bounded("x", "y", lambda: {}["missing"])


def test_the_bound_setting_is_checked(monkeypatch):
    assert services.bound_seconds() == services.DEFAULT_BOUND
    monkeypatch.setenv(services.BOUND_ENV, "-1")
    with pytest.raises(services.ServiceUnavailable, match="must be a positive number"):
        services.bound_seconds()


def test_a_host_that_does_not_resolve_is_named():
    with pytest.raises(services.ServiceUnavailable, match=r"the MLflow tracking server at http://mlflow.invalid:5000: the host name 'mlflow\.invalid' does not resolve"):
        services.reachable("the MLflow tracking server", "http://mlflow.invalid:5000")


def test_an_mlflow_server_that_is_down_is_one_line(closed, capsys, tmp_path):
    code = main(["serve", "--home", str(tmp_path), "--tracking-uri", f"http://bob:pw-5678@127.0.0.1:{closed}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"cannot reach the MLflow tracking server at http://***@127.0.0.1:{closed}: nothing accepts connections" in err
    assert "pw-5678" not in err


def test_an_mlflow_server_that_never_answers_is_cut_at_the_bound(silent, short_bound, capsys, tmp_path):
    code = main(["serve", "--home", str(tmp_path), "--tracking-uri", f"http://127.0.0.1:{silent}"])
    err = capsys.readouterr().err
    assert code == 2 and f"cannot reach the MLflow tracking server at http://127.0.0.1:{silent}: no answer within 2s" in err, err


def test_an_mlflow_server_that_never_answers_stops_a_run_before_training(silent, short_bound, capsys, tmp_path):
    code = main(["run", "--home", str(tmp_path / "home"), "--rows", "400", "--tracking-uri", f"http://127.0.0.1:{silent}"])
    err = capsys.readouterr().err
    assert code == 2 and f"http://127.0.0.1:{silent}: no answer within 2s" in err, err
    assert not (tmp_path / "home" / "pipeline_root").exists()


def test_a_kfp_endpoint_that_never_answers(silent, short_bound, capsys):
    code = main(["submit", "--pipeline", "training", "--compiled", str(ROOT / "compiled"),
                 "--kfp-host", f"http://127.0.0.1:{silent}", "--param", "data_uri=s3://d/t.csv",
                 "--param", "target=y", "--param", "tracking_uri=http://mlflow:5000"])
    err = capsys.readouterr().err
    assert code == 2 and f"cannot reach KFP at http://127.0.0.1:{silent}: no answer within 2s" in err, err


def test_a_kfp_endpoint_that_is_down(closed, capsys):
    code = main(["submit", "--pipeline", "training", "--compiled", str(ROOT / "compiled"),
                 "--kfp-host", f"http://127.0.0.1:{closed}", "--param", "data_uri=s3://d/t.csv",
                 "--param", "target=y", "--param", "tracking_uri=http://mlflow:5000"])
    err = capsys.readouterr().err
    assert code == 2 and f"cannot reach KFP at http://127.0.0.1:{closed}: nothing accepts connections" in err, err


def test_an_object_store_that_never_answers(silent, short_bound, monkeypatch):
    from loopline.registry import object_store

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    with pytest.raises(services.ServiceUnavailable, match=r"cannot reach the object store at s3://never-bucket/data.csv: no answer within 2s"):
        object_store.check_readable("s3://never-bucket/data.csv")


def test_a_kubernetes_api_that_is_down(closed, tmp_path, monkeypatch):
    from loopline.serving.cluster_api import ClusterApi

    config = tmp_path / "kubeconfig"
    config.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{closed}"}}}}]
users: [{{name: u, user: {{token: abc}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
""")
    from kubernetes.config import kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(config))  # $KUBECONFIG, read at import
    with pytest.raises(services.ServiceUnavailable, match=rf"cannot reach the Kubernetes API at https://127.0.0.1:{closed}: nothing accepts"):
        ClusterApi()


def test_a_vertex_endpoint_that_is_down(closed):
    from google.auth.credentials import AnonymousCredentials

    from loopline.ops import submit

    target = submit.VertexTarget(project="p", location="us-central1", api_endpoint=f"http://127.0.0.1:{closed}",
                                 credentials=AnonymousCredentials())
    with pytest.raises(services.ServiceUnavailable, match=rf"cannot reach the Vertex AI API at http://127.0.0.1:{closed}: nothing accepts"):
        target.init()
