"""The traffic window: logged objects of one model in the last hours, requests decoded (V1 and V2)
and joined to their responses by id, everything else counted; in a local folder, through the S3
stand-in (moto) and the Cloud Storage stand-in, and through the load_traffic component."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from loopline.traffic import log as traffic_log
from loopline.traffic import window as traffic_window
from loopline.traffic.log import LogRecord
from loopline.traffic.window import BadTraffic, NoTraffic

from .conftest import art, s3_standin_env

FEATURES = ["amount", "merchant"]


def rec(kind: str, rid: str, body, endpoint: str = "default") -> LogRecord:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return LogRecord(id=rid, type=kind, body=data, endpoint=endpoint, inference_service="fraud", namespace="default")


def v1(amount: float, merchant: str = "shop") -> dict:
    return {"instances": [{"amount": amount, "merchant": merchant}]}


def v2(amounts: list[float]) -> dict:
    return {"inputs": [{"name": "amount", "shape": [len(amounts)], "datatype": "FP32", "data": amounts},
                       {"name": "merchant", "shape": [len(amounts)], "datatype": "BYTES", "data": ["web"] * len(amounts)}]}


def answer(p: float) -> dict:
    return {"predictions": [[1 - p, p]]}


def answer_v2(ps: list[float]) -> dict:
    data = [v for p in ps for v in (1 - p, p)]
    return {"outputs": [{"name": "probabilities", "shape": [len(ps), 2], "datatype": "FP32", "data": data}]}


def write_traffic(uri: str, fmt: str) -> None:
    """v1: 3 pairs (one canary), a request whose answer failed, a response whose request was lost,
    a body that is not JSON; v2: one V2 request of two rows and its answer, in another batch."""
    batch1 = [rec("request", "a", v1(10.0)), rec("response", "a", answer(0.1)),
              rec("request", "b", v1(20.0)), rec("response", "b", answer(0.2)),
              rec("request", "c", v1(30.0), "canary"), rec("response", "c", answer(0.3), "canary"),
              rec("request", "lost-answer", v1(40.0))]
    batch2 = [rec("response", "lost-request", answer(0.5)), rec("request", "garbled", b"{not json")]
    traffic_log.write_batch(uri, batch1, fmt, path="v1")
    traffic_log.write_batch(uri, batch2, fmt, path="v1")
    traffic_log.write_batch(uri, [rec("request", "v2-x", v2([1.0, 2.0]))], fmt, path="v2")
    traffic_log.write_batch(uri, [rec("response", "v2-x", answer_v2([0.6, 0.7]))], fmt, path="v2")


def check(window) -> None:
    c = window.counts
    assert (c.objects, c.bad_objects, c.requests, c.responses, c.pairs) == (4, 0, 6, 5, 4)
    assert (c.unpaired_requests, c.unpaired_responses, c.undecodable) == (1, 1, 1)
    assert "garbled" in c.examples["request"]
    assert dict(c.rows_per_version) == {"1": 3, "2": 2} and dict(c.rows_per_endpoint) == {"default": 4, "canary": 1}
    frame = window.frame.sort_values("amount").reset_index(drop=True)
    assert frame["amount"].tolist() == [1.0, 2.0, 10.0, 20.0, 30.0]
    assert frame["prediction"].round(6).tolist() == [0.6, 0.7, 0.1, 0.2, 0.3]  # each answer joined to its request
    assert frame["request_id"].tolist() == ["v2-x", "v2-x", "a", "b", "c"]
    assert frame["predicted_class"].tolist() == [1, 1, 0, 0, 0]
    assert frame["merchant"].tolist() == ["web", "web", "shop", "shop", "shop"]


@pytest.mark.parametrize("fmt", traffic_log.FORMATS)
def test_the_window_pairs_and_counts_in_a_local_folder(tmp_path, fmt):
    write_traffic(str(tmp_path), fmt)
    window = traffic_window.build_window(str(tmp_path), model_name="fraud", features=FEATURES, max_bad_share=0.5)
    check(window)
    assert "4 pairs, unpaired: 1 requests and 1 responses, 1 undecodable" in window.counts.line()


@pytest.mark.parametrize("fmt", traffic_log.FORMATS)
def test_the_window_through_the_s3_standin(tmp_path, fmt):
    with s3_standin_env(tmp_path / "s3", "traffic"):
        write_traffic(f"s3://traffic/logs-{fmt}", fmt)
        check(traffic_window.build_window(f"s3://traffic/logs-{fmt}", model_name="fraud", features=FEATURES,
                                          max_bad_share=0.5))


@pytest.mark.parametrize("fmt", traffic_log.FORMATS)
def test_the_window_through_the_gcs_standin(monkeypatch, fmt):
    import gcsfs

    from .standins.gcs_api import GcsApiStandIn

    with GcsApiStandIn(buckets=("traffic-gcs",)) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        gcsfs.GCSFileSystem.clear_instance_cache()
        try:
            write_traffic("gs://traffic-gcs/logs", fmt)
            check(traffic_window.build_window("gs://traffic-gcs/logs", model_name="fraud", features=FEATURES,
                                              max_bad_share=0.5))
        finally:
            gcsfs.GCSFileSystem.clear_instance_cache()


def test_one_version_or_one_endpoint(tmp_path):
    write_traffic(str(tmp_path), "json")
    only_v2 = traffic_window.build_window(str(tmp_path), model_name="fraud", features=FEATURES, version="2")
    assert only_v2.counts.objects == 2 and only_v2.counts.pairs == 1 and len(only_v2.frame) == 2
    canary = traffic_window.build_window(str(tmp_path), model_name="fraud", features=FEATURES, endpoint="canary")
    assert canary.counts.pairs == 1 and canary.frame["amount"].tolist() == [30.0]


def test_objects_older_than_the_window_are_left_out(tmp_path):
    old = traffic_log.write_batch(str(tmp_path), [rec("request", "old", v1(1.0)), rec("response", "old", answer(0.9))], "json")
    traffic_log.write_batch(str(tmp_path), [rec("request", "new", v1(2.0)), rec("response", "new", answer(0.8))], "json")
    hours_ago = time.time() - 30 * 3600
    os.utime(old, (hours_ago, hours_ago))
    day = traffic_window.build_window(str(tmp_path), model_name="fraud", features=FEATURES)
    assert day.counts.objects == 1 and day.frame["request_id"].tolist() == ["new"]
    two_days = traffic_window.build_window(str(tmp_path), model_name="fraud", features=FEATURES, window_hours=48)
    assert two_days.counts.pairs == 2


def test_an_empty_prefix_is_no_traffic(tmp_path):
    with pytest.raises(NoTraffic) as caught:
        traffic_window.build_window(str(tmp_path / "nothing"), model_name="fraud")
    assert str(caught.value) == f"no traffic logged for fraud under {tmp_path / 'nothing'} in the last 24 h"


def test_corrupt_objects_and_missing_columns_are_counted_never_rows(tmp_path):
    good = [rec("request", f"g{n}", v1(float(n))) for n in range(20)] + [rec("response", f"g{n}", answer(0.5)) for n in range(20)]
    traffic_log.write_batch(str(tmp_path), good, "json", path="v1")
    folder = Path(tmp_path) / "default" / "fraud" / "predictor" / "v1"
    (folder / "x-request.json").write_bytes(traffic_log.encode_batch(good[:2], "json")[:25])  # truncated
    traffic_log.write_batch(str(tmp_path), [rec("request", "m", {"instances": [{"amount": 1.0}]})], "json", path="v1")
    window = traffic_window.build_window(str(tmp_path), model_name="fraud", features=FEATURES)
    c = window.counts
    assert (c.objects, c.bad_objects, c.undecodable, c.pairs) == (3, 1, 1, 20)
    assert "x-request.json" in c.examples["object"]
    assert "missing feature column 'merchant'" in c.examples["request"]
    assert len(window.frame) == 20 and "m" not in set(window.frame["request_id"])


def test_too_much_bad_traffic_fails_with_one_line_naming_an_object(tmp_path):
    traffic_log.write_batch(str(tmp_path), [rec("request", "a", v1(1.0)), rec("response", "a", answer(0.5))], "csv")
    folder = Path(tmp_path) / "default" / "fraud" / "predictor"
    (folder / "broken-request.csv").write_bytes(b"\x00\x01 not csv")
    with pytest.raises(BadTraffic) as caught:
        traffic_window.build_window(str(tmp_path), model_name="fraud", features=FEATURES)
    message = str(caught.value)
    assert "\n" not in message and "broken-request.csv" in message and "more than 5%" in message


def test_the_load_traffic_component_writes_the_window_and_its_counts(tmp_path):
    import pandas as pd
    from kfp import dsl

    from loopline import components

    write_traffic(str(tmp_path / "logs"), "parquet")
    outs = {"window": art(dsl.Dataset, tmp_path, "window"), "metrics": art(dsl.Metrics, tmp_path, "metrics"),
            "summary": art(dsl.Markdown, tmp_path, "summary")}
    pairs = components.load_traffic.python_func(traffic_log_uri=str(tmp_path / "logs"), model_name="fraud",
                                                features=FEATURES, max_bad_share=0.5, **outs)
    assert pairs == 4
    assert outs["metrics"].metadata["unpaired_requests"] == 1 and outs["metrics"].metadata["rows_v2"] == 2
    assert len(pd.read_parquet(outs["window"].path)) == 5
    assert "4 pairs" in Path(outs["summary"].path).read_text()
    empty = {k: art(type(v), tmp_path / "empty", k) for k, v in outs.items()}
    assert components.load_traffic.python_func(traffic_log_uri=str(tmp_path / "none"), model_name="fraud",
                                               features=FEATURES, **empty) == 0
    assert "no traffic logged for fraud under" in Path(empty["summary"].path).read_text()


def test_the_benchmark_traffic_is_a_window_of_mixed_batches(tmp_path):
    """The benchmark's objects: batches of 100 records mixing requests and answers, all paired."""
    from tools.bench import traffic as bench_traffic

    features = bench_traffic.write_pairs(str(tmp_path), 1000, threads=2)
    window = traffic_window.build_window(str(tmp_path), model_name=bench_traffic.MODEL, features=features)
    c = window.counts
    assert (c.objects, c.pairs, c.unpaired_requests, c.unpaired_responses, c.undecodable) == (20, 1000, 0, 0, 0)
    assert dict(c.rows_per_endpoint) == {"default": 900, "canary": 100}
    assert list(window.frame.columns[:len(features)]) == features and window.frame[features].notna().any().all()


def test_credentials_in_the_uri_are_never_printed():
    with pytest.raises(NoTraffic) as caught:
        traffic_window.build_window("memory://reader:s3cr3t@traffic/logs", model_name="fraud")
    assert "s3cr3t" not in str(caught.value) and "memory://***@traffic/logs" in str(caught.value)
