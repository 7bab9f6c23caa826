"""Loopline's KServe serving runtime: its manifests against KServe's CRDs, the InferenceService
asking for exactly what it serves, and its container arguments running the local model server."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from loopline.core import images
from loopline.data.tables import read_split
from loopline.model.contract import ServingModel
from loopline.serving import inference_service
from loopline.serving import runtime as serving_runtime
from loopline.serving import server as serving

from .conftest import ROOT, v2_inputs
from .test_serving import _strict

CRDS = ROOT / "tests" / "data" / "kserve"


def _validator(kind: str):
    import jsonschema

    plural = {"ServingRuntime": "servingruntimes", "ClusterServingRuntime": "clusterservingruntimes"}[kind]
    crd = yaml.safe_load((CRDS / f"serving.kserve.io_{plural}.yaml").read_text())
    assert crd["spec"]["names"]["kind"] == kind
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    return jsonschema.Draft7Validator(_strict(version["schema"]["openAPIV3Schema"]))


@pytest.mark.parametrize("kind", ["ClusterServingRuntime", "ServingRuntime"])
def test_the_runtime_validates_against_kserves_crd_with_unknown_fields_rejected(kind):
    validator = _validator(kind)
    manifest = serving_runtime.runtime_manifest(kind, namespace="ml")
    assert sorted(e.message for e in validator.iter_errors(manifest)) == []
    manifest["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert any("imagePullPolicyy" in e.message for e in validator.iter_errors(manifest))


def test_the_compiled_runtime_files_are_the_manifests():
    for name, kind in (("runtime.yaml", "ClusterServingRuntime"), ("runtime-namespaced.yaml", "ServingRuntime")):
        text = (ROOT / "compiled" / "serving" / name).read_text()
        assert yaml.safe_load(text) == serving_runtime.runtime_manifest(kind, image=f"{images.DEFAULT_REGISTRY}/loopline-serving:{images.package_version()}")


def test_the_inference_service_asks_for_this_runtime_and_its_model_format():
    runtime = serving_runtime.runtime_manifest()
    isvc = inference_service.to_manifest(inference_service.build_inference_service(
        name="fraud", namespace="ml", storage_uri="s3://models/fraud/v3", model_name="fraud", model_version="3"))
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    (fmt,) = runtime["spec"]["supportedModelFormats"]
    assert model["modelFormat"] == {"name": fmt["name"], "version": fmt["version"]}
    assert runtime["spec"]["containers"][0]["image"] == images.image("serving")
    assert {"v1", "v2"} <= set(runtime["spec"]["protocolVersions"])


def test_the_runtime_container_arguments_start_the_local_model_server(trained_model, splits, tmp_path):
    """The runtime's own arguments (KServe fills {{.Name}}; /mnt/models is where its storage
    initializer puts the version) start the server the local smoke test runs: V1 and V2 answer."""
    import subprocess
    import sys

    port = serving.free_port()
    runtime_args = serving_runtime.runtime_manifest()["spec"]["containers"][0]["args"]
    assert "--host=0.0.0.0" in runtime_args  # a pod's Service reaches the container on the pod's address
    args = [a.replace("{{.Name}}", "fraud").replace("/mnt/models", str(trained_model))
            .replace(f"={serving_runtime.HTTP_PORT}", f"={port}").replace("--host=0.0.0.0", "--host=127.0.0.1")
            for a in runtime_args]
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "loopline.serving", *args], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    info = serving.ServerInfo("fraud", "1", proc.pid, port, str(trained_model), str(tmp_path / "server.log"))
    try:
        serving.wait_ready(info, proc, timeout=120)
        holdout, spec = read_split(splits["holdout"])
        sample = holdout[list(spec.features)].head(4)
        rows = sample.astype(object).where(sample.notna(), None).to_dict(orient="records")
        expected = ServingModel(trained_model).predict_rows(rows)
        np.testing.assert_allclose(serving.predict(info, rows), expected, atol=1e-5)
        v2 = serving._http_json(f"{info.url}/v2/models/fraud/infer", {"inputs": v2_inputs(sample, spec.features)})
        (output,) = v2["outputs"]
        np.testing.assert_allclose(np.asarray(output["data"]).reshape(output["shape"]), expected, atol=1e-5)
    finally:
        serving.stop_server(info)
        proc.wait(timeout=30)  # reaped by stop_server already: this tells the Popen
        log.close()
