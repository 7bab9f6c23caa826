"""Drift of logged traffic against a reference profile: drifted, no drift, and the verdict of its
own when the window has too few pairs or nothing was logged."""

from __future__ import annotations

import json

import pytest

from loopline.core.errors import DataError
from loopline.data import checks as input_checks
from loopline.data import demo as demo_data
from loopline.drift import reference_profile
from loopline.traffic import drift as traffic_drift
from loopline.traffic import log as traffic_log
from loopline.traffic.log import LogRecord


@pytest.fixture(scope="module")
def profile():
    frame = demo_data.demo_transactions(3000, seed=7)
    spec = input_checks.build_spec(frame, target=demo_data.DEMO_TARGET, feature_kinds={},
                                   ignore_columns=list(demo_data.DEMO_IGNORE), source_uri="demo")
    return reference_profile.build(frame, spec)


def log_stream(uri: str, n: int, *, shift: float, seed: int) -> None:
    """`n` rows of demo traffic, one row a request, answered, 50 pairs an object."""
    frame = demo_data.demo_transactions(max(n, 100), shift=shift, seed=seed).head(n)
    frame = frame.drop(columns=[demo_data.DEMO_TARGET, *demo_data.DEMO_IGNORE])
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    records = []
    for i, row in enumerate(rows):
        common = dict(endpoint="default", inference_service="fraud", namespace="default")
        records.append(LogRecord(id=f"r{i}", type="request", body=json.dumps({"instances": [row]}).encode(), **common))
        records.append(LogRecord(id=f"r{i}", type="response", body=b'{"predictions": [[0.8, 0.2]]}', **common))
    for start in range(0, len(records), 100):
        traffic_log.write_batch(uri, records[start:start + 100], "json", path="v1")


def test_shifted_traffic_drifts_and_the_same_traffic_does_not(profile, tmp_path):
    log_stream(str(tmp_path / "same"), 1500, shift=0.0, seed=8)
    log_stream(str(tmp_path / "shifted"), 1500, shift=1.0, seed=8)
    same = traffic_drift.judge(profile, str(tmp_path / "same"), model_name="fraud")
    shifted = traffic_drift.judge(profile, str(tmp_path / "shifted"), model_name="fraud")
    assert same.verdict == traffic_drift.NO_DRIFT and same.judged and not same.drifted
    assert shifted.verdict == traffic_drift.DRIFTED and shifted.drifted
    assert shifted.result.share_drifted > same.result.share_drifted
    assert shifted.counts.pairs == 1500 and shifted.line.startswith("drifted: ")


def test_too_few_pairs_is_not_enough_traffic_never_no_drift(profile, tmp_path):
    log_stream(str(tmp_path), 120, shift=1.0, seed=8)  # shifted, but too little to judge
    verdict = traffic_drift.judge(profile, str(tmp_path), model_name="fraud", min_window_rows=200)
    assert verdict.verdict == traffic_drift.NOT_ENOUGH and not verdict.drifted and not verdict.judged
    assert verdict.result is None and "120 pairs in the last 24 h, fewer than min_window_rows 200" in verdict.line
    judged = traffic_drift.judge(profile, str(tmp_path), model_name="fraud", min_window_rows=100)
    assert judged.judged


def test_nothing_logged_is_not_enough_traffic(profile, tmp_path):
    verdict = traffic_drift.judge(profile, str(tmp_path / "empty"), model_name="fraud")
    assert verdict.verdict == traffic_drift.NOT_ENOUGH and not verdict.judged
    assert f"no traffic logged for fraud under {tmp_path / 'empty'} in the last 24 h" in verdict.line
    with pytest.raises(DataError, match="min_window_rows must be at least 1, got 0"):
        traffic_drift.judge(profile, str(tmp_path), model_name="fraud", min_window_rows=0)
