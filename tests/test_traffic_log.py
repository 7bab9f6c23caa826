"""KServe logger records written and read back: the object names and fields of KServe's agent, in
JSON, CSV and Parquet, to a local folder, the S3 stand-in (moto) and the Cloud Storage stand-in,
checked with KServe's own format checks (tests/data/kserve_logger/)."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from pathlib import Path

import fsspec
import pytest

from loopline.traffic import log as traffic_log
from loopline.traffic.log import LogRecord, TrafficLogError, TrafficLogWriter

from .conftest import s3_standin_env

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("kserve_format_verifiers", ROOT / "tests" / "data" / "kserve_logger" / "format_verifiers.py")
kserve_checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kserve_checks)

VERIFY = {"json": kserve_checks.verify_json_object, "csv": kserve_checks.verify_csv_object,
          "parquet": kserve_checks.verify_parquet_object}


def pair(n: int, endpoint: str = "default") -> list[LogRecord]:
    """A request and its 200 response, as the server logs them."""
    common = dict(endpoint=endpoint, inference_service="fraud", namespace="risk", component="predictor",
                  url="s3://logs/traffic", source_uri="http://fraud.risk/v1/models/fraud:predict",
                  metadata={"X-Tenant": ["a"]}, annotations={"team": "risk"})
    request = LogRecord(id=f"id-{n}", type="request", body=json.dumps({"instances": [{"amount": n}]}).encode(), **common)
    response = LogRecord(id=f"id-{n}", type="response", body=json.dumps({"predictions": [[0.9, 0.1]]}).encode(), **common)
    return [request, response]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with s3_standin_env(tmp_path_factory.mktemp("s3"), "traffic") as server:
        yield server


@pytest.fixture()
def gcs(monkeypatch):
    import gcsfs

    from .standins.gcs_api import GcsApiStandIn

    with GcsApiStandIn(buckets=("traffic-gcs",)) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        gcsfs.GCSFileSystem.clear_instance_cache()
        yield server
    gcsfs.GCSFileSystem.clear_instance_cache()


def _round_trip(uri: str, fmt: str) -> None:
    # a mixed batch: requests and responses in one object, named after its first record
    records = pair(1) + pair(2, "canary") + pair(3)[:1]
    name = traffic_log.write_batch(uri, records, fmt, path="v2")
    assert name == f"{uri}/risk/fraud/predictor/v2/id-1-request.{fmt}"
    with fsspec.open(name, "rb") as fh:
        data = fh.read()
    VERIFY[fmt](data, expected_records=len(records))  # KServe's own check of the object
    back = traffic_log.decode_batch(data, traffic_log.format_of(name))
    keep = ("id", "type", "body", "endpoint", "inference_service", "namespace", "component", "content_type",
            "url", "source_uri", "metadata", "annotations")
    assert [{k: getattr(r, k) for k in keep} for r in back] == [{k: getattr(r, k) for k in keep} for r in records]


@pytest.mark.parametrize("fmt", traffic_log.FORMATS)
def test_a_batch_round_trips_in_a_local_folder(tmp_path, fmt):
    _round_trip(str(tmp_path / "traffic"), fmt)


@pytest.mark.parametrize("fmt", traffic_log.FORMATS)
def test_a_batch_round_trips_through_the_s3_standin(s3, fmt):
    _round_trip(f"s3://traffic/{fmt}", fmt)


@pytest.mark.parametrize("fmt", traffic_log.FORMATS)
def test_a_batch_round_trips_through_the_gcs_standin(gcs, fmt):
    _round_trip(f"gs://traffic-gcs/logs-{fmt}", fmt)
    assert gcs.object_names("traffic-gcs") == [f"logs-{fmt}/risk/fraud/predictor/v2/id-1-request.{fmt}"]


def test_json_objects_are_kserve_log_requests():
    """One record is an object, more are an array; the type is the CloudEvents type; the body is base64."""
    one = json.loads(traffic_log.encode_batch(pair(7)[:1], "json"))
    assert isinstance(one, dict) and one["reqType"] == "org.kubeflow.serving.inference.request"
    assert base64.b64decode(one["bytes"], validate=True) == pair(7)[0].body
    assert one["url"]["Scheme"] == "s3" and one["url"]["Host"] == "logs"  # Go writes a *url.URL as its struct
    assert isinstance(json.loads(traffic_log.encode_batch(pair(7), "json")), list)
    kserve_checks.verify_json_object(traffic_log.encode_batch(pair(7)[:1], "json"), expected_records=1)


def test_csv_rows_carry_kserve_columns_and_no_time():
    text = traffic_log.encode_batch(pair(4), "csv").decode()
    header, first = text.splitlines()[:2]
    assert header.split(",") == list(kserve_checks.LOG_RECORD_COLUMNS)
    assert "occurrenceTime" not in header and first.endswith(",false")


def test_the_writer_batches_by_size_and_writes_the_rest_on_close(tmp_path):
    writer = TrafficLogWriter(str(tmp_path), fmt="json", batch_size=3, path="v1")
    for n in range(4):
        for record in pair(n):
            writer.add(record)
    assert len(writer.written) == 2  # 6 of the 8 records in two batches of three
    writer.close()
    assert len(writer.written) == 3
    names = sorted(Path(p).name for p in writer.written)
    assert names == ["id-0-request.json", "id-1-response.json", "id-3-request.json"]
    counts = [len(traffic_log.decode_batch(Path(p).read_bytes(), "json")) for p in writer.written]
    assert counts == [3, 3, 2]


def test_the_writer_flushes_a_partial_batch_after_its_interval(tmp_path):
    import time

    writer = TrafficLogWriter(str(tmp_path), fmt="csv", batch_size=100, batch_interval="100ms")
    try:
        for record in pair(1):
            writer.add(record)
        deadline = time.monotonic() + 20
        while not writer.written and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(writer.written) == 1 and writer.written[0].endswith("id-1-request.csv")
    finally:
        writer.close()


def test_a_failed_upload_is_dropped_and_counted(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    writer = TrafficLogWriter(str(blocker), batch_size=1)
    writer.add(pair(1)[0])
    assert writer.written == [] and writer.dropped == 1


@pytest.mark.parametrize("fmt,data", [
    ("json", b'[{"id": "a", "reqType": "org.kubeflow.serving.inference.request", "bytes": "e30="'),  # truncated
    ("json", b"not json"),
    ("json", b'{"id": "a", "reqType": "predict"}'),
    ("json", b'{"id": "a", "reqType": "request", "bytes": "%%%"}'),
    ("csv", b"a,b\n1,2\n"),
    ("parquet", b"PAR1 truncated"),
])
def test_damaged_objects_are_one_error_each(fmt, data):
    for decode in (traffic_log.decode_batch, traffic_log.decode_parts):  # the reader's quick path checks the same
        with pytest.raises(TrafficLogError) as caught:
            decode(data, fmt)
        assert "\n" not in str(caught.value) and str(caught.value)


@pytest.mark.parametrize("fmt", traffic_log.FORMATS)
def test_the_quick_path_reads_what_the_records_say(fmt):
    records = pair(1) + pair(2, "canary")
    parts = traffic_log.decode_parts(traffic_log.encode_batch(records, fmt), fmt)
    assert parts == [(r.type, r.id, r.endpoint, r.body) for r in records]


def test_bad_settings_are_refused_with_one_line(tmp_path):
    with pytest.raises(TrafficLogError, match="format must be one of json, csv, parquet, got 'avro'"):
        TrafficLogWriter(str(tmp_path), fmt="avro")
    with pytest.raises(TrafficLogError, match="batch size must be at least 1"):
        TrafficLogWriter(str(tmp_path), batch_size=0)
    with pytest.raises(TrafficLogError, match="duration such as '5s'"):
        TrafficLogWriter(str(tmp_path), batch_size=2, batch_interval="soon")
    assert traffic_log.parse_interval("1m") == 60 and traffic_log.parse_interval("250ms") == 0.25
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", traffic_log.now_rfc3339())
