"""Submit and schedule with the real kfp.Client and google-cloud-aiplatform clients, against the
KFP and Vertex AI stand-ins on loopback; assertions on the recorded requests."""

from __future__ import annotations

import json

import pytest
import yaml

from loopline import __version__
from loopline.cli import app as cli
from loopline.ops import cron, params, submit

from .conftest import ROOT

COMPILED = ROOT / "compiled"
TRAINING_PARAMS = {"data_uri": "s3://data/transactions.csv", "target": "is_fraud", "tracking_uri": "http://mlflow:5000"}


@pytest.fixture(scope="module")
def training():
    return params.read_pipeline(COMPILED / "training.yaml")


def _vertex(api):
    from google.auth.credentials import AnonymousCredentials

    return submit.VertexTarget(project="loopline-test", location="us-central1", api_endpoint=api.url,
                               credentials=AnonymousCredentials())


# --------------------------------------------------------------------------------------------- KFP


def test_kfp_submit_uploads_the_pipeline_and_a_version_named_after_the_loopline_version(kfp_api, training):
    target = submit.KfpTarget(host=kfp_api.url)
    values = params.check(training, from_file=TRAINING_PARAMS, assignments={"n_trials": "8"})
    result = submit.submit_kfp(training, target, params=values, run_name="nightly", pipeline_root="s3://artifacts/root",
                               service_account="pipeline-runner")

    (upload,) = kfp_api.find("POST", "/pipelines/upload")
    assert upload.query["name"] == "loopline-training"
    (version,) = kfp_api.find("POST", "/pipelines/upload_version")
    expected_version = f"{__version__}-{training.sha256[:12]}"
    assert version.query["name"] == expected_version == result.pipeline_version
    assert version.body["uploadfile"] == (COMPILED / "training.yaml").read_text()  # the compiled YAML, unchanged
    assert training.sha256 in version.query["description"]

    (run,) = kfp_api.created_runs()
    (pipeline_id,) = kfp_api.pipelines
    assert run["display_name"] == "nightly"
    assert run["pipeline_version_reference"] == {"pipeline_id": pipeline_id, "pipeline_version_id": version_id(kfp_api, expected_version)}
    assert "pipeline_spec" not in run  # the run refers to the uploaded version, not a copy of the YAML
    assert run["runtime_config"] == {"pipeline_root": "s3://artifacts/root", "parameters": {**TRAINING_PARAMS, "n_trials": 8}}
    assert run["service_account"] == "pipeline-runner"
    assert run["experiment_id"] == next(e for e in kfp_api.experiments.values() if e["display_name"] == "loopline")["experiment_id"]
    assert result.url == f"{kfp_api.url}/#/runs/details/{result.run_id}"


def version_id(api, name: str) -> str:
    return next(vid for vid, v in api.versions.items() if v["display_name"] == name)


def test_kfp_the_same_yaml_is_uploaded_once(kfp_api, training):
    target = submit.KfpTarget(host=kfp_api.url)
    first = submit.submit_kfp(training, target, params=TRAINING_PARAMS)
    second = submit.submit_kfp(training, target, params=TRAINING_PARAMS)
    assert len(kfp_api.find("POST", "/pipelines/upload")) == 1
    assert len(kfp_api.find("POST", "/pipelines/upload_version")) == 1
    assert first.pipeline_version == second.pipeline_version
    refs = [r["pipeline_version_reference"]["pipeline_version_id"] for r in kfp_api.created_runs()]
    assert refs[0] == refs[1] and len(refs) == 2


def test_kfp_recurring_run_with_the_converted_cron(kfp_api, training):
    target = submit.KfpTarget(host=kfp_api.url, experiment="scheduled")
    schedule = submit.schedule_kfp(training, target, cron=cron.parse("0 3 * * 1"), name="loopline-training",
                                   params=TRAINING_PARAMS)
    (request,) = kfp_api.find("POST", "/recurringruns")
    body = request.body
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    assert int(body["max_concurrency"]) == 1 and body["no_catchup"] is True and body["mode"] == "ENABLE"
    assert body["display_name"] == "loopline-training"
    assert body["runtime_config"]["parameters"] == TRAINING_PARAMS
    assert body["pipeline_version_reference"]["pipeline_version_id"] == version_id(kfp_api, submit.version_name(training))
    assert schedule.id == body_id(kfp_api) and schedule.cron == "0 0 3 * * 1"


def body_id(api) -> str:
    (recurring_id,) = api.recurring
    return recurring_id


def test_kfp_schedules_list_pause_resume_delete(kfp_api, training):
    target = submit.KfpTarget(host=kfp_api.url)
    schedule = submit.schedule_kfp(training, target, cron=cron.parse("@daily"), name="daily", params=TRAINING_PARAMS)
    assert [(s.id, s.name, s.cron, s.state) for s in submit.list_schedules(target)] == [
        (schedule.id, "daily", "0 0 0 * * *", "ENABLED")]
    submit.change_schedule(target, schedule.id, "pause")
    assert submit.list_schedules(target)[0].state == "DISABLED"
    submit.change_schedule(target, schedule.id, "resume")
    submit.change_schedule(target, schedule.id, "delete")
    assert [r.path.rsplit("/", 1)[-1] for r in kfp_api.requests if r.path.startswith("/apis/v2beta1/recurringruns/")] == [
        f"{schedule.id}:disable", f"{schedule.id}:enable", schedule.id]
    assert submit.list_schedules(target) == []


def test_kfp_api_errors_are_one_line(kfp_api):
    target = submit.KfpTarget(host=kfp_api.url)
    with pytest.raises(submit.SubmitError, match=r"KFP at http://127.0.0.1:\d+ answered 404: recurring run nope not found"):
        submit.change_schedule(target, "nope", "pause")
    with pytest.raises(submit.SubmitError, match="cannot reach KFP at http://127.0.0.1:9"):
        submit.KfpTarget(host="http://127.0.0.1:9").client()


# ------------------------------------------------------------------------------------------ Vertex


def test_vertex_pipeline_job_request_and_no_storage_call(vertex_api, training):
    target = _vertex(vertex_api)
    result = submit.submit_vertex(
        training, target, params={**TRAINING_PARAMS, "n_trials": 8}, pipeline_root="gs://bucket/root", run_name="nightly",
        service_account="runner@loopline-test.iam.gserviceaccount.com", network="projects/123/global/networks/ml",
        labels={"team": "risk"}, kms_key="projects/loopline-test/locations/us-central1/keyRings/ml/cryptoKeys/runs",
    )
    (request,) = vertex_api.find("POST", "/pipelineJobs")
    assert request.path == "/v1/projects/loopline-test/locations/us-central1/pipelineJobs"
    body = request.body
    assert body["displayName"] == "nightly"
    assert body["runtimeConfig"] == {"gcsOutputDirectory": "gs://bucket/root",
                                     "parameterValues": {**TRAINING_PARAMS, "n_trials": 8}}
    assert body["serviceAccount"] == "runner@loopline-test.iam.gserviceaccount.com"
    assert body["network"] == "projects/123/global/networks/ml"
    assert body["encryptionSpec"] == {"kmsKeyName": "projects/loopline-test/locations/us-central1/keyRings/ml/cryptoKeys/runs"}
    assert body["labels"] == {"team": "risk", "loopline-version": __version__.replace(".", "-"),
                              "loopline-pipeline": "loopline-training", "loopline-yaml-sha256": training.sha256[:12]}
    assert body["pipelineSpec"]["pipelineInfo"]["name"] == "loopline-training"
    assert body["pipelineSpec"]["root"] == training.spec["root"]
    assert result.run_id == f"projects/loopline-test/locations/us-central1/pipelineJobs/{request.query['pipelineJobId']}"
    assert vertex_api.storage_requests() == []  # the gs:// pipeline root is never touched
    assert submit.run_state(target, result.run_id) == (True, "PIPELINE_STATE_PENDING")
    vertex_api.set_job_state(result.run_id, "PIPELINE_STATE_SUCCEEDED")
    assert submit.run_state(target, result.run_id) == (False, "PIPELINE_STATE_SUCCEEDED")


def test_vertex_needs_a_gcs_pipeline_root(vertex_api, training):
    with pytest.raises(submit.SubmitError, match="Vertex AI needs a gs:// pipeline root"):
        submit.submit_vertex(training, _vertex(vertex_api), params=TRAINING_PARAMS, pipeline_root="s3://x")
    assert vertex_api.requests == []


def test_vertex_schedule_create_list_pause_resume_delete(vertex_api, training):
    target = _vertex(vertex_api)
    schedule = submit.schedule_vertex(training, target, cron=cron.parse("TZ=Europe/Berlin 0 3 * * 1"), name="weekly",
                                      params=TRAINING_PARAMS, pipeline_root="gs://bucket/root",
                                      service_account="runner@loopline-test.iam.gserviceaccount.com")
    (request,) = vertex_api.find("POST", "/schedules")
    body = request.body
    assert body["cron"] == "TZ=Europe/Berlin 0 3 * * 1" and body["maxConcurrentRunCount"] == "1"
    assert body["displayName"] == "weekly"
    job = body["createPipelineJobRequest"]
    assert job["parent"] == "projects/loopline-test/locations/us-central1"
    assert job["pipelineJob"]["runtimeConfig"]["parameterValues"] == TRAINING_PARAMS
    assert job["pipelineJob"]["serviceAccount"] == "runner@loopline-test.iam.gserviceaccount.com"
    assert job["pipelineJob"]["labels"]["loopline-pipeline"] == "loopline-training"
    assert (schedule.state, schedule.cron) == ("ACTIVE", "TZ=Europe/Berlin 0 3 * * 1")

    assert [(s.id, s.state) for s in submit.list_schedules(target)] == [(schedule.id, "ACTIVE")]
    submit.change_schedule(target, schedule.id, "pause")
    assert submit.list_schedules(target)[0].state == "PAUSED"
    submit.change_schedule(target, schedule.id, "resume")
    submit.change_schedule(target, schedule.id, "delete")
    changes = [(r.method, r.path.rsplit("/", 1)[-1]) for r in vertex_api.requests if r.method in ("POST", "DELETE")]
    short = schedule.id.rsplit("/", 1)[-1]
    assert changes == [("POST", "schedules"), ("POST", f"{short}:pause"), ("POST", f"{short}:resume"), ("DELETE", short)]
    assert submit.list_schedules(target) == [] and vertex_api.storage_requests() == []


# --------------------------------------------------------------------------------------------- CLI


def test_cli_submit_to_kfp_with_params_file_and_overrides(kfp_api, tmp_path, capsys):
    params_file = tmp_path / "training.yaml"
    params_file.write_text(yaml.safe_dump({**TRAINING_PARAMS, "n_trials": 4, "thresholds": {"roc_auc": 0.8}}))
    code = cli.main(["submit", "--pipeline", "training", "--kfp-host", kfp_api.url, "--params-file", str(params_file),
                     "--param", "n_trials=12", "--param", "ignore_columns=transaction_id", "--run-name", "cli-run",
                     "--experiment", "fraud", "--compiled", str(COMPILED)])
    assert code == 0
    (run,) = kfp_api.created_runs()
    assert run["runtime_config"]["parameters"] == {**TRAINING_PARAMS, "n_trials": 12, "thresholds": {"roc_auc": 0.8},
                                                   "ignore_columns": ["transaction_id"]}
    assert run["display_name"] == "cli-run"
    assert [e["display_name"] for e in kfp_api.experiments.values()] == ["fraud"]
    out = capsys.readouterr().out
    assert f"submitted loopline-training to KFP at {kfp_api.url}: run cli-run" in out and f"{__version__}-" in out


def test_cli_bad_parameter_sends_nothing(kfp_api, capsys):
    code = cli.main(["submit", "--pipeline", "training", "--kfp-host", kfp_api.url, "--param", "n_trials=many",
                     "--param", "data_uri=a.csv", "--param", "target=y", "--param", "tracking_uri=http://m"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0] == "loopline: error: parameter 'n_trials' of loopline-training expects an integer, got 'many' (--param)"
    assert kfp_api.requests == []


def test_cli_needs_a_target(capsys, monkeypatch):
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    assert cli.main(["submit", "--pipeline", "training"]) == 2
    assert "choose a target: --kfp-host URL" in capsys.readouterr().err


def test_cli_schedule_kfp_says_how_the_cron_was_converted(kfp_api, capsys):
    code = cli.main(["schedule", "--pipeline", "drift_monitor", "--kfp-host", kfp_api.url,
                     "--param", "reference_data_uri=s3://d/ref.csv", "--param", "current_data_uri=s3://d/cur.csv",
                     "--param", "target=is_fraud", "--param", "tracking_uri=http://mlflow:5000"])
    assert code == 0
    captured = capsys.readouterr()
    assert "cron '0 2 * * *' is sent to KFP as '0 0 2 * * *' (6 fields, seconds first)" in captured.err
    (request,) = kfp_api.find("POST", "/recurringruns")
    assert request.body["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"  # the drift monitor's daily default
    assert request.body["display_name"] == "loopline-drift-monitor"
    assert cli.main(["schedules", "list", "--kfp-host", kfp_api.url]) == 0
    assert "loopline-drift-monitor\t0 0 2 * * *\tENABLED" in capsys.readouterr().out
    (schedule_id,) = kfp_api.recurring
    assert cli.main(["schedules", "pause", schedule_id, "--kfp-host", kfp_api.url]) == 0
    assert kfp_api.recurring[schedule_id]["status"] == "DISABLED"


def _service_account_file(path):
    """A service-account key file made for this test (a fresh RSA key). Its universe domain is not
    Google's, so google-auth signs its own JWT for each request and makes no lookup of its own
    (regional access boundaries) on the internet."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "loopline-test", "private_key_id": "test",
        "private_key": pem.decode(), "client_email": "submitter@loopline-test.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": "https://oauth2.loopline.test/token", "universe_domain": "loopline.test",
    }))
    return path


def test_cli_vertex_with_application_default_credentials(vertex_api, tmp_path, monkeypatch, capsys):
    """The CLI authenticates the usual way (Application Default Credentials)."""
    adc = _service_account_file(tmp_path / "adc.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    monkeypatch.setenv("GOOGLE_CLOUD_UNIVERSE_DOMAIN", "loopline.test")
    code = cli.main(["schedule", "--pipeline", "training", "--vertex-project", "loopline-test",
                     "--vertex-location", "us-central1", "--vertex-api-endpoint", vertex_api.url,
                     "--pipeline-root", "gs://bucket/root", "--cron", "TZ=America/New_York 30 4 * * 0",
                     "--label", "team=risk", *sum((["--param", f"{k}={v}"] for k, v in TRAINING_PARAMS.items()), [])])
    assert code == 0, capsys.readouterr().err
    (request,) = vertex_api.find("POST", "/schedules")
    import base64

    payload = request.headers["authorization"].removeprefix("Bearer ").split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["iss"] == "submitter@loopline-test.iam.gserviceaccount.com"  # signed with the ADC key
    assert request.body["cron"] == "TZ=America/New_York 30 4 * * 0"
    assert request.body["createPipelineJobRequest"]["pipelineJob"]["labels"]["team"] == "risk"
    assert vertex_api.storage_requests() == []


def test_cli_vertex_options_are_refused_for_kfp(kfp_api, capsys):
    assert cli.main(["submit", "--pipeline", "training", "--kfp-host", kfp_api.url, "--kms-key", "k"]) == 2
    assert "Vertex AI options; KFP does not use them" in capsys.readouterr().err
    assert kfp_api.requests == []


@pytest.mark.parametrize("command", ["submit", "schedule", "schedules"])
def test_help_documents_every_option(command):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    undocumented = [a.option_strings or a.dest for a in sub._actions if not a.help or a.help == "==SUPPRESS=="]
    assert undocumented == []
    text = sub.format_help()
    for action in sub._actions:
        for option in action.option_strings:
            assert option in text
