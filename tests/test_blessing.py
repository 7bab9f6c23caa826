"""The blessing: bound to the model's URI and content and to the holdout it was judged on."""

from __future__ import annotations

import json

import pytest

from loopline.core.errors import BlessingError
from loopline.evaluation import blessing


def _model(tmp_path):
    root = tmp_path / "model"
    (root / "1" / "variables").mkdir(parents=True)
    (root / "1" / "saved_model.pb").write_bytes(b"graph")
    (root / "1" / "variables" / "variables.index").write_bytes(b"index")
    (root / "loopline_model.json").write_text("{}")
    return root


def _write(tmp_path, **overrides):
    model = _model(tmp_path)
    values = dict(
        blessed=True, model_uri="gs://b/model", model_sha256=blessing.directory_sha256(model), holdout_uri="gs://b/h",
        holdout_sha256="h" * 64, reason="all gates passed", metrics={"roc_auc": 0.9}, champion={"status": "none"},
        gate_report="## Evaluation gate: PASSED", gate_config={"roc_auc": 0.8},
    )
    values.update(overrides)
    return blessing.write(tmp_path / "blessing", **values), model


def test_directory_hash_follows_content_and_names(tmp_path):
    model = _model(tmp_path)
    first = blessing.directory_sha256(model)
    assert first == blessing.directory_sha256(model)
    (model / "1" / "saved_model.pb").write_bytes(b"graph!")
    changed = blessing.directory_sha256(model)
    assert changed != first
    (model / "1" / "saved_model.pb").rename(model / "1" / "other.pb")
    assert blessing.directory_sha256(model) not in (first, changed)
    with pytest.raises(BlessingError, match="model directory not found"):
        blessing.directory_sha256(tmp_path / "nope")


def test_a_blessing_round_trips_and_verifies(tmp_path):
    record, model = _write(tmp_path)
    read = blessing.read(tmp_path / "blessing")
    assert read == json.loads((tmp_path / "blessing").read_text()) == record
    blessing.verify(read, model_uri="gs://b/model", model_sha256=blessing.directory_sha256(model),
                    holdout_sha256="h" * 64)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_uri": "gs://b/other"}, "issued for model 'gs://b/model', not 'gs://b/other'"),
        ({"model_sha256": "0" * 64}, "changed since it was judged"),
        ({"holdout_sha256": "0" * 64}, "another holdout"),
    ],
)
def test_a_mismatch_is_refused(tmp_path, change, message):
    record, model = _write(tmp_path)
    actual = {"model_uri": "gs://b/model", "model_sha256": blessing.directory_sha256(model), "holdout_sha256": "h" * 64}
    with pytest.raises(BlessingError, match=message):
        blessing.verify(record, **{**actual, **change})


def test_a_negative_blessing_is_refused_with_its_reason(tmp_path):
    record, model = _write(tmp_path, blessed=False, reason="roc_auc 0.7000 misses >= 0.8")
    with pytest.raises(BlessingError, match=r"not blessed by the evaluation gate \(roc_auc 0.7000 misses >= 0.8\)"):
        blessing.verify(record, model_uri="gs://b/model", model_sha256=blessing.directory_sha256(model),
                        holdout_sha256="h" * 64)


def test_unreadable_blessings(tmp_path):
    with pytest.raises(BlessingError, match="no blessing at"):
        blessing.read(tmp_path / "missing")
    (tmp_path / "garbage").write_text("{not json")
    with pytest.raises(BlessingError, match="not readable JSON"):
        blessing.read(tmp_path / "garbage")
    (tmp_path / "other").write_text('{"blessed": true}')
    with pytest.raises(BlessingError, match="is not a Loopline blessing"):
        blessing.read(tmp_path / "other")
