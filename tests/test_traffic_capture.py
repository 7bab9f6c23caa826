"""Capture: KServe's logger block in every InferenceService Loopline writes (checked against the
CRD, unknown fields rejected), and the local model server writing the same objects."""

from __future__ import annotations

import importlib.util
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from loopline.core.errors import DeploymentError
from loopline.data.tables import read_split
from loopline.model.contract import ServingModel
from loopline.serving import inference_service, kserve_modes, rollout, targets
from loopline.serving import server as serving
from loopline.traffic import log as traffic_log
from loopline.traffic import window as traffic_window
from loopline.traffic.capture import TrafficSettings

from .conftest import KSERVE_CRD, ROOT, v2_inputs
from .test_serving import _isvc, _strict

TRAFFIC = {"uri": "s3://traffic/logs", "format": "parquet", "batch_size": 100, "batch_interval": "5s"}


@pytest.fixture(scope="module")
def strict_validator():
    """KServe's InferenceService schema, unknown fields rejected (as tests/test_serving.py builds it)."""
    import jsonschema
    import yaml

    crd = yaml.safe_load(KSERVE_CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == inference_service.KSERVE_VERSION)
    return jsonschema.Draft7Validator(_strict(version["schema"]["openAPIV3Schema"]))


@pytest.mark.parametrize("mode", ["Serverless", "Standard"])
def test_the_logger_block_validates_against_the_crd(strict_validator, mode):
    manifest = _isvc(traffic_log=TRAFFIC, deployment_mode=mode)
    assert sorted(e.message for e in strict_validator.iter_errors(manifest)) == []
    assert manifest["spec"]["predictor"]["logger"] == {
        "mode": "all", "url": "s3://traffic/logs", "storage": {"path": "v3", "parameters": {"format": "parquet"}},
        "batchSize": 100, "batchInterval": "5s"}
    if mode == "Standard":  # the canary of the next version logs under its own version
        body = kserve_modes.canary_body(_isvc(model_version="4", deployment_mode=mode, traffic_log=TRAFFIC), "4", 10)
        manifest["spec"]["canary"] = body["spec"]["canary"]
        assert sorted(e.message for e in strict_validator.iter_errors(manifest)) == []


def test_an_unknown_logger_field_is_rejected(strict_validator):
    manifest = _isvc(traffic_log=TRAFFIC)
    manifest["spec"]["predictor"]["logger"]["batchsize"] = 5
    assert any("batchsize" in e.message for e in strict_validator.iter_errors(manifest))
    assert "logger" not in _isvc()["spec"]["predictor"]  # no traffic log: no logger block


def test_deploy_settings_check_the_traffic_log():
    with pytest.raises(DeploymentError, match="traffic_log_uri must be an s3://, gs:// or abfs:// prefix"):
        targets.DeploySettings(target="kserve", traffic_log_uri="/tmp/logs")
    with pytest.raises(DeploymentError, match="format must be one of json, csv, parquet, got 'xml'"):
        targets.DeploySettings(traffic_log_uri="s3://b/l", traffic_log_format="xml")
    assert targets.DeploySettings(traffic_log_uri="/tmp/logs").traffic_log()["uri"] == "/tmp/logs"  # local: a folder


def _post(url: str, body: dict, headers: dict | None = None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


_spec = importlib.util.spec_from_file_location("kserve_format_verifiers", ROOT / "tests" / "data" / "kserve_logger" / "format_verifiers.py")
kserve_checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kserve_checks)


def test_the_local_server_logs_requests_and_their_answers(trained_model, splits, tmp_path):
    holdout, spec = read_split(splits["holdout"])
    sample = holdout[list(spec.features)].head(3)
    rows = sample.astype(object).where(sample.notna(), None).to_dict(orient="records")
    logs = tmp_path / "traffic"
    traffic = TrafficSettings(uri=str(logs), fmt="csv", namespace="risk", inference_service="fraud", path="v1",
                              endpoint="canary")
    info = serving.start_server(str(trained_model), model_name="fraud", version="1", log_dir=tmp_path,
                                extra_args=traffic.argv())
    try:
        v1 = _post(info.predict_url, {"instances": rows}, {"Ce-Id": "given-id"})
        _post(f"{info.url}/v2/models/fraud/infer", {"inputs": v2_inputs(sample, spec.features)})
        with pytest.raises(urllib.error.HTTPError) as bad:
            _post(info.predict_url, {"instances": [{"amount": 1.0}]})
        assert bad.value.code == 400
        serving.is_alive(info)  # a readiness poll: not inference traffic, not logged
    finally:
        serving.stop_server(info)
    objects = sorted((logs / "risk" / "fraud" / "predictor" / "v1").iterdir())
    assert len(objects) == 5  # three requests, two 200 answers; batch size 1
    assert (logs / "risk" / "fraud" / "predictor" / "v1" / "given-id-request.csv").is_file()
    for path in objects:
        kserve_checks.verify_csv_object(path.read_bytes(), expected_records=1)
    records = [r for path in objects for r in traffic_log.decode_batch(path.read_bytes(), "csv")]
    requests = {r.id: r for r in records if r.type == "request"}
    responses = {r.id: r for r in records if r.type == "response"}
    assert len(requests) == 3 and set(responses) < set(requests)  # the 400 answer is not logged
    assert {r.endpoint for r in records} == {"canary"} and {r.namespace for r in records} == {"risk"}
    assert json.loads(responses["given-id"].body)["predictions"] == v1["predictions"]
    assert json.loads(requests["given-id"].body) == {"instances": rows}
    window = traffic_window.build_window(str(logs), model_name="fraud", namespace="risk",
                                         features=list(spec.features), max_bad_share=0.5)
    c = window.counts
    assert (c.requests, c.responses, c.pairs, c.unpaired_requests, c.undecodable) == (3, 2, 2, 0, 1)
    assert "missing feature column" in c.examples["request"]
    assert dict(c.rows_per_endpoint) == {"canary": 6} and dict(c.rows_per_version) == {"1": 6}
    given = window.frame[window.frame["request_id"] == "given-id"]
    assert given["prediction"].round(5).tolist() == [round(p[-1], 5) for p in v1["predictions"]]
    record = traffic_log.decode_batch(Path(logs / "risk/fraud/predictor/v1/given-id-request.csv").read_bytes(), "csv")[0]
    assert record.source_uri.endswith("/v1/models/fraud:predict") and record.url == str(logs)



def test_a_local_canary_logs_as_canary_until_it_is_promoted(trained_model, splits, tmp_path):
    """A first deployment's traffic is `default`; the next version's smoke test is `canary`
    traffic under v2, and what it serves once promoted is `default` again, without a restart."""
    holdout, spec = read_split(splits["holdout"])
    sample = holdout[list(spec.features)].head(4)
    rows = sample.astype(object).where(sample.notna(), None).to_dict(orient="records")
    expected = ServingModel(trained_model).predict_rows(rows)
    limits = rollout.SmokeLimits(rows=len(rows), tolerance=1e-5, max_p95_ms=5000)
    home, logs = tmp_path / "home", tmp_path / "traffic"
    traffic = TrafficSettings(uri=str(logs), fmt="json", inference_service="fraud")
    try:
        for version in ("1", "2"):
            result = rollout.rollout_local(home=home, model_name="fraud", version=version, model_dir=str(trained_model),
                                           rows=rows, expected=expected, limits=limits, traffic=traffic)
            assert result.action in (rollout.CREATED, rollout.PROMOTED)
        _post(serving.read_state(home, "fraud").predict_url, {"instances": rows[:1]}, {"Ce-Id": "after-promotion"})
    finally:
        serving.stop_server(serving.read_state(home, "fraud"))
    folder = logs / "default" / "fraud" / "predictor"
    endpoints = {}
    for version in ("v1", "v2"):
        for path in (folder / version).iterdir():
            for record in traffic_log.decode_batch(path.read_bytes(), "json"):
                endpoints.setdefault(version, []).append(record.endpoint)
    assert set(endpoints["v1"]) == {"default"} and len(endpoints["v1"]) == 2 * len(rows)  # its smoke test
    assert endpoints["v2"].count("canary") == 2 * len(rows) and endpoints["v2"].count("default") == 2
    assert (folder / "v2" / "after-promotion-request.json").is_file()
