"""The rollout state machine: locally against real KServe model servers, and the cluster path's
Kubernetes API calls against a stand-in API server (the predictor it reports is a real server)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from loopline.core.errors import DeploymentError
from loopline.data.tables import read_split
from loopline.model.contract import ServingModel
from loopline.serving import inference_service, rollout
from loopline.serving import server as serving

from .conftest import ROOT
from .standins.kubernetes_api import KubernetesApiStandIn
from .test_fault_drills import listening_ports

LIMITS = rollout.SmokeLimits(rows=8, tolerance=1e-5, max_p95_ms=5000)


@pytest.fixture(scope="module")
def probe(splits, trained_model):
    holdout, spec = read_split(splits["holdout"])
    sample = holdout[list(spec.features)].head(LIMITS.rows)
    rows = sample.astype(object).where(sample.notna(), None).to_dict(orient="records")
    return rows, ServingModel(trained_model).predict_rows(rows)


@pytest.fixture()
def home(tmp_path):
    yield tmp_path / "home"
    for state in (tmp_path / "home" / "serving").glob("*.json"):
        serving.stop_server(serving.ServerInfo(**__import__("json").loads(state.read_text())))


def _first(home, trained_model, probe):
    rows, expected = probe
    result = rollout.rollout_local(home=home, model_name="fraud", version="1", model_dir=str(trained_model),
                                   rows=rows, expected=expected, limits=LIMITS)
    assert result.action == rollout.CREATED
    return result


def _still_serving_v1(home, probe):
    state = serving.read_state(home, "fraud")
    assert state is not None and state.version == "1" and serving.is_alive(state)
    rows, expected = probe
    np.testing.assert_allclose(serving.predict(state, rows), expected, atol=1e-5)


def test_local_healthy_canary_is_promoted(home, trained_model, probe, tmp_path):
    _first(home, trained_model, probe)
    old = serving.read_state(home, "fraud")  # the v1 server: its real process and port
    assert old.version == "1" and serving.is_alive(old) and Path(f"/proc/{old.pid}").exists()
    v2 = tmp_path / "v2"
    shutil.copytree(trained_model, v2)
    rows, expected = probe
    result = rollout.rollout_local(home=home, model_name="fraud", version="2", model_dir=str(v2),
                                   rows=rows, expected=expected, limits=LIMITS)
    assert result.action == rollout.PROMOTED and result.previous_version == "1" and result.smoke.passed
    state = serving.read_state(home, "fraud")
    assert state.version == "2" and serving.is_alive(state) and state.pid != old.pid
    # the old server was stopped after the switch: its process is gone, its port answers no more
    assert not Path(f"/proc/{old.pid}").exists(), f"the v1 server (pid {old.pid}) is still running"
    assert old.port not in listening_ports() and not serving.is_alive(old)
    assert not old.record.exists()  # and it is no longer recorded as running
    again = rollout.rollout_local(home=home, model_name="fraud", version="2", model_dir=str(v2),
                                  rows=rows, expected=expected, limits=LIMITS)
    assert again.action == rollout.NOOP


def test_local_model_that_fails_to_load_is_rolled_back(home, trained_model, probe, tmp_path):
    _first(home, trained_model, probe)
    broken = tmp_path / "broken"
    shutil.copytree(trained_model, broken)
    (broken / "1" / "saved_model.pb").write_bytes(b"corrupted")
    rows, expected = probe
    result = rollout.rollout_local(home=home, model_name="fraud", version="2", model_dir=str(broken),
                                   rows=rows, expected=expected, limits=LIMITS)
    assert result.action == rollout.ROLLED_BACK and "exited" in result.reason
    _still_serving_v1(home, probe)


def test_local_model_whose_predictions_disagree_is_rolled_back(home, trained_model, probe, tmp_path):
    _first(home, trained_model, probe)
    rows, expected = probe
    wrong = expected[:, ::-1].copy()  # what another model would answer
    result = rollout.rollout_local(home=home, model_name="fraud", version="2", model_dir=str(trained_model),
                                   rows=rows, expected=wrong, limits=LIMITS)
    assert result.action == rollout.ROLLED_BACK and "disagree" in result.reason
    assert "ROLLED BACK" in result.markdown() and "FAIL" in result.markdown()
    _still_serving_v1(home, probe)


def test_local_server_that_times_out_is_rolled_back(home, trained_model, probe):
    _first(home, trained_model, probe)
    rows, expected = probe
    result = rollout.rollout_local(home=home, model_name="fraud", version="2", model_dir=str(trained_model),
                                   rows=rows, expected=expected, limits=LIMITS, ready_timeout=0.5)
    assert result.action == rollout.ROLLED_BACK and "not ready after" in result.reason
    _still_serving_v1(home, probe)


def test_local_first_deployment_that_fails_is_an_error(home, probe, tmp_path):
    (tmp_path / "empty").mkdir()
    rows, expected = probe
    with pytest.raises(DeploymentError, match="could not be deployed"):
        rollout.rollout_local(home=home, model_name="fraud", version="1", model_dir=str(tmp_path / "empty"),
                              rows=rows, expected=expected, limits=LIMITS, ready_timeout=60)
    assert serving.read_state(home, "fraud") is None


# --------------------------------------------------------------------------------------------
# Cluster path: the real kubernetes / kserve clients against the stand-in API server.


@pytest.fixture(scope="module")
def predictor(trained_model, tmp_path_factory):
    """A real KServe model server standing for the InferenceService's predictor."""
    info = serving.start_server(str(trained_model), model_name="fraud", version="x",
                                log_dir=tmp_path_factory.mktemp("predictor"))
    yield info
    serving.stop_server(info)


@pytest.fixture()
def cluster(predictor):
    from kserve import KServeClient

    standin = KubernetesApiStandIn(predictor_url=predictor.url)
    api = rollout.ClusterApi(KServeClient(config_dict=standin.kubeconfig()), poll_seconds=0.05)
    yield standin, api
    standin.close()


def _manifest(version: str, mode: str = "Serverless") -> dict:
    return inference_service.to_manifest(inference_service.build_inference_service(
        name="fraud", namespace="ml", storage_uri=f"gs://models/fraud/{version}", model_name="fraud",
        model_version=version, deployment_mode=mode))


def _calls(standin):
    return [(r.method, r.path.split("?")[0].rsplit("/", 1)[-1]) for r in standin.requests]


def test_cluster_create_then_canary_then_promote(cluster, probe):
    standin, api = cluster
    rows, expected = probe
    first = rollout.rollout_cluster(api, _manifest("1"), rows=rows, expected=expected, limits=LIMITS, ready_timeout=5)
    assert first.action == rollout.CREATED
    post = next(r for r in standin.requests if r.method == "POST")
    assert post.path == "/apis/serving.kserve.io/v1beta1/namespaces/ml/inferenceservices"
    assert post.body["spec"]["predictor"]["model"]["storageUri"] == "gs://models/fraud/1"
    assert "canaryTrafficPercent" not in post.body["spec"]["predictor"]

    standin.requests.clear()
    second = rollout.rollout_cluster(api, _manifest("2"), rows=rows, expected=expected, limits=LIMITS,
                                     canary_percent=10, ready_timeout=5)
    assert second.action == rollout.PROMOTED and second.previous_version == "1"
    patches = [r for r in standin.requests if r.method == "PATCH"]
    assert all(p.content_type == "application/merge-patch+json" for p in patches)
    canary, promote = patches
    assert canary.body["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert canary.body["spec"]["predictor"]["model"]["storageUri"] == "gs://models/fraud/2"
    assert canary.body["metadata"]["labels"]["loopline.dev/model-version"] == "2"
    assert promote.body == {"spec": {"predictor": {"canaryTrafficPercent": None}}}
    stored = standin.objects[("ml", "fraud")]
    assert "canaryTrafficPercent" not in stored["spec"]["predictor"]
    assert stored["spec"]["predictor"]["model"]["storageUri"] == "gs://models/fraud/2"

    standin.requests.clear()
    noop = rollout.rollout_cluster(api, _manifest("2"), rows=rows, expected=expected, limits=LIMITS, ready_timeout=5)
    assert noop.action == rollout.NOOP and [r.method for r in standin.requests] == ["GET"]


def test_cluster_failed_smoke_test_rolls_back_to_the_previous_spec(cluster, probe):
    standin, api = cluster
    rows, expected = probe
    rollout.rollout_cluster(api, _manifest("1"), rows=rows, expected=expected, limits=LIMITS, ready_timeout=5)
    before = standin.objects[("ml", "fraud")]["spec"]
    result = rollout.rollout_cluster(api, _manifest("2"), rows=rows, expected=expected[:, ::-1].copy(),
                                     limits=LIMITS, ready_timeout=5)
    assert result.action == rollout.ROLLED_BACK and "disagree" in result.reason
    rollback = [r for r in standin.requests if r.method == "PATCH"][-1]
    assert rollback.body["spec"]["predictor"]["model"]["storageUri"] == "gs://models/fraud/1"
    assert rollback.body["spec"]["predictor"]["canaryTrafficPercent"] is None
    assert standin.objects[("ml", "fraud")]["spec"] == before
    assert standin.objects[("ml", "fraud")]["metadata"]["labels"]["loopline.dev/model-version"] == "1"


def test_cluster_canary_that_never_gets_ready_rolls_back(cluster, probe):
    standin, api = cluster
    rows, expected = probe
    rollout.rollout_cluster(api, _manifest("1"), rows=rows, expected=expected, limits=LIMITS, ready_timeout=5)
    standin.ready = False
    result = rollout.rollout_cluster(api, _manifest("2"), rows=rows, expected=expected, limits=LIMITS, ready_timeout=0.5)
    assert result.action == rollout.ROLLED_BACK and "not Ready" in result.reason
    assert standin.objects[("ml", "fraud")]["spec"]["predictor"]["model"]["storageUri"] == "gs://models/fraud/1"


@pytest.mark.parametrize("mode", ["Knative", "Serverless"])
def test_cluster_knative_mode_by_either_name_uses_canary_traffic_percent(cluster, probe, mode):
    standin, api = cluster
    rows, expected = probe
    rollout.rollout_cluster(api, _manifest("1", mode), rows=rows, expected=expected, limits=LIMITS, ready_timeout=5)
    result = rollout.rollout_cluster(api, _manifest("2", mode), rows=rows, expected=expected, limits=LIMITS,
                                     canary_percent=20, ready_timeout=5)
    assert result.action == rollout.PROMOTED
    canary = [r for r in standin.requests if r.method == "PATCH"][0]
    assert canary.body["spec"]["predictor"]["canaryTrafficPercent"] == 20 and "canary" not in canary.body["spec"]


@pytest.fixture()
def standard_cluster(predictor):
    """The stand-in API server; the canary's own Service is reached at the real predictor."""
    from kserve import KServeClient

    standin = KubernetesApiStandIn(predictor_url=predictor.url)
    services = []

    def service_url(service, namespace):
        services.append((service, namespace))
        return predictor.url

    api = rollout.ClusterApi(KServeClient(config_dict=standin.kubeconfig()), poll_seconds=0.05, service_url=service_url)
    yield standin, api, services
    standin.close()


@pytest.mark.parametrize("mode", ["Standard", "RawDeployment"])
def test_cluster_standard_mode_canary_is_promoted(standard_cluster, probe, mode):
    standin, api, services = standard_cluster
    rows, expected = probe
    rollout.rollout_cluster(api, _manifest("1", mode), rows=rows, expected=expected, limits=LIMITS, ready_timeout=5)
    standin.requests.clear()
    result = rollout.rollout_cluster(api, _manifest("2", mode), rows=rows, expected=expected, limits=LIMITS,
                                     canary_percent=25, ready_timeout=5)
    assert result.action == rollout.PROMOTED and result.smoke.passed and result.previous_version == "1"
    dry, canary, promote = [r for r in standin.requests if r.method == "PATCH"]
    assert "dryRun=All" in dry.path and "fieldValidation=Strict" in dry.path
    assert "dryRun" not in canary.path
    (entry,) = canary.body["spec"]["canary"]
    assert entry["trafficPercent"] == 25 and entry["predictor"]["name"] == "v2"
    assert entry["predictor"]["model"]["storageUri"] == "gs://models/fraud/2"
    assert "predictor" not in canary.body["spec"]  # the serving predictor is untouched during the canary
    assert services == [("fraud-v2-predictor", "ml")]  # the smoke test went to the canary's own Service
    assert promote.body["spec"]["canary"] is None and promote.body["spec"]["predictor"]["name"] == "v2"
    stored = standin.objects[("ml", "fraud")]
    assert "canary" not in stored["spec"] and stored["spec"]["predictor"]["name"] == "v2"
    assert stored["spec"]["predictor"]["model"]["storageUri"] == "gs://models/fraud/2"
    assert stored["metadata"]["labels"]["loopline.dev/model-version"] == "2"


def test_cluster_standard_mode_failed_canary_is_rolled_back(standard_cluster, probe):
    standin, api, _ = standard_cluster
    rows, expected = probe
    rollout.rollout_cluster(api, _manifest("1", "Standard"), rows=rows, expected=expected, limits=LIMITS, ready_timeout=5)
    before = standin.objects[("ml", "fraud")]["spec"]
    result = rollout.rollout_cluster(api, _manifest("2", "Standard"), rows=rows, expected=expected[:, ::-1].copy(),
                                     limits=LIMITS, ready_timeout=5)
    assert result.action == rollout.ROLLED_BACK and "disagree" in result.reason
    rollback = [r for r in standin.requests if r.method == "PATCH"][-1]
    assert rollback.body == {"metadata": {"labels": {"loopline.dev/model-version": "1"}}, "spec": {"canary": None}}
    assert standin.objects[("ml", "fraud")]["spec"] == before
    assert standin.objects[("ml", "fraud")]["metadata"]["labels"]["loopline.dev/model-version"] == "1"


def test_cluster_standard_mode_canary_that_never_gets_ready_rolls_back(standard_cluster, probe):
    standin, api, services = standard_cluster
    rows, expected = probe
    rollout.rollout_cluster(api, _manifest("1", "Standard"), rows=rows, expected=expected, limits=LIMITS, ready_timeout=5)
    standin.ready = False
    result = rollout.rollout_cluster(api, _manifest("2", "Standard"), rows=rows, expected=expected, limits=LIMITS,
                                     ready_timeout=0.5)
    assert result.action == rollout.ROLLED_BACK and "canary v2" in result.reason and "not Ready" in result.reason
    assert services == [] and "canary" not in standin.objects[("ml", "fraud")]["spec"]


@pytest.mark.parametrize("mode", ["Standard", "RawDeployment"])
def test_cluster_standard_mode_without_spec_canary_refuses(standard_cluster, probe, mode):
    standin, api, _ = standard_cluster
    standin.spec_canary = False  # KServe older than 0.20
    rows, expected = probe
    rollout.rollout_cluster(api, _manifest("1", mode), rows=rows, expected=expected, limits=LIMITS, ready_timeout=5)
    before = json.dumps(standin.objects[("ml", "fraud")], sort_keys=True)
    standin.requests.clear()
    with pytest.raises(DeploymentError, match="older than 0.20, which has no Standard-mode canary"):
        rollout.rollout_cluster(api, _manifest("2", mode), rows=rows, expected=expected, limits=LIMITS, ready_timeout=5)
    assert [r.method for r in standin.requests] == ["GET", "PATCH"]  # the dry run only
    assert json.dumps(standin.objects[("ml", "fraud")], sort_keys=True) == before


def test_an_unknown_deployment_mode_is_refused():
    with pytest.raises(DeploymentError, match="deployment_mode 'Raw' is not a KServe mode"):
        _manifest("1", "Raw")


def test_cluster_transient_api_errors_are_retried(cluster, probe, monkeypatch):
    standin, api = cluster
    monkeypatch.setattr(rollout.time, "sleep", lambda s: None)
    standin.fail_next = [503, 429]
    rows, expected = probe
    result = rollout.rollout_cluster(api, _manifest("1"), rows=rows, expected=expected, limits=LIMITS, ready_timeout=5)
    assert result.action == rollout.CREATED
    assert [r.method for r in standin.requests[:3]] == ["GET", "GET", "GET"]


def test_rbac_grants_exactly_the_verbs_the_rollout_uses(cluster, probe):
    standin, api = cluster
    rows, expected = probe
    rollout.rollout_cluster(api, _manifest("1"), rows=rows, expected=expected, limits=LIMITS, ready_timeout=5)
    rollout.rollout_cluster(api, _manifest("2"), rows=rows, expected=expected, limits=LIMITS, ready_timeout=5)
    rollout.rollout_cluster(api, _manifest("3"), rows=rows, expected=expected[:, ::-1].copy(), limits=LIMITS, ready_timeout=5)
    used = {{"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[r.method]
            for r in standin.requests}
    # /apis/<group>/<version>/namespaces/<namespace>/<resource>[/<name>]: what each request touched
    paths = [r.path.split("?")[0].split("/") for r in standin.requests]
    assert all(p[1] == "apis" and p[4] == "namespaces" for p in paths), paths  # namespaced: a Role can grant it
    touched = {(p[2], p[6]) for p in paths}
    docs = list(yaml.safe_load_all((ROOT / "components" / "deploy_model" / "rbac.yaml").read_text()))
    role = next(d for d in docs if d["kind"] == "Role")
    (rule,) = role["rules"]
    assert {(group, resource) for group in rule["apiGroups"] for resource in rule["resources"]} == touched
    assert set(rule["verbs"]) == used
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]


class HeldController:
    """What the stand-in's controller is asked (tests.standins.kserve_controller runs the serving image): it
    reconciles once released and reports the real predictor, or fails as told."""

    def __init__(self, url: str):
        self.url, self.release, self.seen, self.fail = url, threading.Event(), [], ""

    def reconcile(self, namespace, name, obj):
        self.release.wait(10)
        self.seen.append(obj["spec"]["predictor"]["model"]["storageUri"])
        if self.fail:
            raise RuntimeError(self.fail)
        return {"stable": self.url, "latest": self.url}


def test_with_a_controller_the_status_follows_its_reconciliation(predictor, probe):
    from kserve import KServeClient

    controller = HeldController(predictor.url)
    standin = KubernetesApiStandIn(controller=controller)
    api = rollout.ClusterApi(KServeClient(config_dict=standin.kubeconfig()), poll_seconds=0.05)
    try:
        api.create(_manifest("1"), "ml")
        pending = api.get("fraud", "ml")["status"]
        assert pending["observedGeneration"] == 0 and pending["conditions"][0]["status"] == "Unknown"
        with pytest.raises(TimeoutError):
            api.wait_ready("fraud", "ml", generation=1, timeout=0.3)
        controller.release.set()
        ready = api.wait_ready("fraud", "ml", generation=1, timeout=5)
        assert ready["status"]["components"]["predictor"]["url"] == predictor.url
        assert controller.seen == ["gs://models/fraud/1"]

        controller.fail = "the serving container exited"
        api.patch("fraud", "ml", {"spec": {"predictor": {"canaryTrafficPercent": 10}}})
        deadline = time.monotonic() + 5
        while api.get("fraud", "ml")["status"]["observedGeneration"] != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        (condition,) = api.get("fraud", "ml")["status"]["conditions"]
        assert condition["status"] == "False" and "the serving container exited" in condition["message"]
    finally:
        standin.close()
