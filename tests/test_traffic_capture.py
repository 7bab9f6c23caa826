"""Capture: the local model server writing KServe's logger objects for its traffic."""

from __future__ import annotations

import importlib.util
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from loopline.data.tables import read_split
from loopline.serving import server as serving
from loopline.traffic import log as traffic_log
from loopline.traffic.capture import TrafficSettings

from .conftest import ROOT, v2_inputs


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
    record = traffic_log.decode_batch(Path(logs / "risk/fraud/predictor/v1/given-id-request.csv").read_bytes(), "csv")[0]
    assert record.source_uri.endswith("/v1/models/fraud:predict") and record.url == str(logs)

