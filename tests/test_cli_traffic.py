"""`loopline traffic`: a file replayed against a real local model server that logs its traffic,
the window read back from the command line, and the exit code and line of an empty prefix."""

from __future__ import annotations

import json

from loopline.cli import app as cli
from loopline.data.tables import read_split
from loopline.serving import server as serving
from loopline.traffic.capture import TrafficSettings


def test_replay_then_window(trained_model, splits, tmp_path, capsys):
    holdout, spec = read_split(splits["holdout"])
    sample = holdout.head(30)
    sample.to_csv(tmp_path / "stream.csv", index=False)
    logs = tmp_path / "traffic"
    traffic = TrafficSettings(uri=str(logs), fmt="parquet", inference_service="fraud", path="v1")
    info = serving.start_server(str(trained_model), model_name="fraud", version="1", log_dir=tmp_path,
                                extra_args=traffic.argv())
    try:
        code = cli.main(["traffic", "replay", str(tmp_path / "stream.csv"), "--url", info.url, "--model", "fraud",
                         "--drop", spec.target, "--rows-per-request", "3", "--id-prefix", "demo", "--json"])
        sent = json.loads(capsys.readouterr().out)
        assert code == 0 and sent == {"requests": 10, "rows": 30, "answered": 10, "failed": 0, "first_failure": ""}
    finally:
        serving.stop_server(info)
    out = tmp_path / "window.parquet"
    code = cli.main(["traffic", "window", str(logs), "--model", "fraud", "--features", ",".join(spec.features),
                     "--out", str(out), "--json"])
    counts = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (counts["requests"], counts["responses"], counts["pairs"], counts["rows"], counts["rows_v1"]) == (10, 10, 10, 30, 30)
    import pandas as pd

    window = pd.read_parquet(out)
    assert sorted(set(window["request_id"])) == sorted(f"demo-{n}" for n in range(10))
    assert list(window.columns[:len(spec.features)]) == list(spec.features)


def test_an_empty_prefix_exits_2_with_one_line(tmp_path, capsys):
    code = cli.main(["traffic", "window", str(tmp_path / "none"), "--model", "fraud", "--hours", "6"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"loopline: error: no traffic logged for fraud under {tmp_path / 'none'} in the last 6 h"


def test_replay_names_a_missing_column_and_an_unreachable_server(demo_csv, capsys):
    assert cli.main(["traffic", "replay", str(demo_csv), "--url", "http://127.0.0.1:9/v1/models/m:predict",
                     "--drop", "nope"]) == 2
    assert "--drop column 'nope' not found in" in capsys.readouterr().err
    assert cli.main(["traffic", "replay", str(demo_csv), "--url", "http://127.0.0.1:9/v1/models/m:predict",
                     "--limit", "2"]) == 2
    assert "loopline: error: cannot reach http://127.0.0.1:9/v1/models/m:predict" in capsys.readouterr().err
