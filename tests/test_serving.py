"""KServe: the InferenceService against KServe's CRD schema, and the real local model server."""

from __future__ import annotations

import copy
import json
import urllib.error

import numpy as np
import pytest
import yaml

from loopline.core.errors import DeploymentError
from loopline.data.tables import read_split
from loopline.model.contract import ServingModel
from loopline.serving import inference_service
from loopline.serving import server as serving

from .conftest import KSERVE_CRD, v2_inputs


def _strict(schema):
    """Reject unknown fields, as the API server does for a structural schema."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node and not node.get(
                "x-kubernetes-preserve-unknown-fields"
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@pytest.fixture(scope="module")
def isvc_validator():
    import jsonschema

    if not KSERVE_CRD.is_file():
        pytest.fail(f"KServe CRD not found at {KSERVE_CRD}")
    crd = yaml.safe_load(KSERVE_CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == inference_service.KSERVE_VERSION)
    return jsonschema.Draft7Validator(_strict(version["schema"]["openAPIV3Schema"]))


def _isvc(**overrides):
    args = dict(name="fraud", namespace="ml", storage_uri="gs://bucket/fraud/3", model_name="fraud",
                model_version="3", pipeline_run="loopline-training-2026-01-01-00-00-00")
    args.update(overrides)
    return inference_service.to_manifest(inference_service.build_inference_service(**args))


@pytest.mark.parametrize(
    "overrides",
    [{}, {"canary_traffic_percent": 10}, {"service_account": "loopline-deployer", "min_replicas": 0, "max_replicas": 4},
     {"runtime_version": "0.1.0", "deployment_mode": "RawDeployment"}, {"deployment_mode": "Standard"},
     {"deployment_mode": "Knative", "cpu": "2", "memory": "4Gi"}],
)
def test_inference_service_validates_against_kserve_crd(isvc_validator, overrides):
    manifest = _isvc(**overrides)
    errors = sorted(e.message for e in isvc_validator.iter_errors(manifest))
    assert errors == []
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1"
    assert manifest["spec"]["predictor"]["model"]["modelFormat"] == {"name": "loopline", "version": "1"}
    assert manifest["spec"]["predictor"]["model"]["runtime"] == "loopline-serving"
    assert manifest["spec"]["predictor"]["model"]["storageUri"] == "gs://bucket/fraud/3"
    assert manifest["metadata"]["labels"]["loopline.dev/model-version"] == "3"


def test_the_schema_check_rejects_unknown_fields(isvc_validator):
    manifest = _isvc()
    manifest["spec"]["predictor"]["model"]["storageURL"] = "gs://typo"
    assert any("storageURL" in e.message for e in isvc_validator.iter_errors(manifest))


def test_label_values_are_kubernetes_safe():
    labels = _isvc(pipeline_run="x" * 80 + "/run:1")["metadata"]["labels"]
    assert all(len(v) <= 63 and v[0].isalnum() and v[-1].isalnum() for v in labels.values())


def test_bad_arguments_are_rejected():
    with pytest.raises(DeploymentError, match="storage_uri"):
        _isvc(storage_uri="")
    with pytest.raises(DeploymentError, match="replicas"):
        _isvc(min_replicas=3, max_replicas=1)


def test_local_kserve_server_answers_like_the_model_in_process(trained_model, splits, tmp_path):
    holdout, spec = read_split(splits["holdout"])
    sample = holdout[list(spec.features)].head(16)
    rows = sample.astype(object).where(sample.notna(), None).to_dict(orient="records")
    expected = ServingModel(trained_model).predict_rows(rows)
    info = serving.start_server(str(trained_model), model_name="fraud", version="1", log_dir=tmp_path)
    try:
        served = np.asarray(serving.predict(info, rows))
        np.testing.assert_allclose(served, expected, atol=1e-6)
        # the V2 (Open Inference Protocol) endpoint of the same server: one tensor per feature
        v2 = serving._http_json(f"{info.url}/v2/models/fraud/infer", {"inputs": v2_inputs(sample, spec.features)})
        (output,) = v2["outputs"]
        assert output["name"] == "probabilities" and output["shape"] == [16, 2]
        np.testing.assert_allclose(np.asarray(output["data"]).reshape(16, 2), expected, atol=1e-6)
        with pytest.raises(urllib.error.HTTPError) as bad:
            serving.predict(info, [{"amount": 1.0}])
        assert bad.value.code == 400 and "channel" in json.loads(bad.value.read())["error"]
    finally:
        serving.stop_server(info)
    assert not serving.is_alive(info)


def test_a_model_that_cannot_load_fails_to_start_with_its_reason(tmp_path):
    (tmp_path / "broken").mkdir()
    with pytest.raises(DeploymentError, match="exited"):
        serving.start_server(str(tmp_path / "broken"), model_name="broken", version="1", log_dir=tmp_path, ready_timeout=60)


@pytest.mark.parametrize("runtime", ["tensorflow", "kserve-tensorflow-serving"])
def test_tf_serving_is_refused_with_the_reason(runtime):
    with pytest.raises(DeploymentError, match="TensorFlow Serving\\) is refused: .* use the runtime 'loopline-serving'"):
        _isvc(runtime=runtime)


def test_a_standard_mode_canary_validates_against_kserve_crd(isvc_validator):
    from loopline.serving import kserve_modes

    manifest = _isvc(deployment_mode="Standard")
    body = kserve_modes.canary_body(_isvc(model_version="4", deployment_mode="Standard"), "4", 10)
    manifest["spec"]["canary"] = body["spec"]["canary"]
    assert sorted(e.message for e in isvc_validator.iter_errors(manifest)) == []
    promoted = copy.deepcopy(manifest)
    promoted["spec"].pop("canary")
    promoted["spec"]["predictor"] = kserve_modes.promote_body(manifest, "4")["spec"]["predictor"]
    assert sorted(e.message for e in isvc_validator.iter_errors(promoted)) == []
    assert promoted["spec"]["predictor"]["name"] == "v4"
