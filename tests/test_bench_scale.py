"""The scale benchmark measures each step's own peak memory, not the bench process's resident set
that a child's ru_maxrss inherits at fork; and it writes its input as a partitioned dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd

from loopline.data.tables import read_dataset
from tools.bench import scale as bench_scale

CHILD = "import json; from tools.bench.scale import own_peak_rss_kb; print(json.dumps(own_peak_rss_kb()))"


def test_a_step_s_own_peak_leaves_out_the_parent_s_resident_set():
    ballast = np.ones(96 * 1024 * 1024, dtype=np.float64)  # 768 MiB written, so resident in this process
    process = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    assert status == 0
    own_mb, inherited_mb = json.loads(output) / 1024, usage.ru_maxrss / 1024
    assert inherited_mb >= 700  # what the bench reported before: the parent's resident set at fork
    assert own_mb < inherited_mb - 500  # the step's own program: the ballast is not in it
    del ballast


def test_the_scale_input_as_64_partitioned_parquet_files(tmp_path):
    frame = pd.DataFrame({"transaction_id": range(640), "amount": np.arange(640) * 0.5, "is_fraud": [0, 1] * 320})
    bench_scale.write_data(frame, tmp_path, 64)
    parts = sorted((tmp_path / "dataset").rglob("*.parquet"))
    assert len(parts) == 64 and len({p.parent.name for p in parts}) == 64 // bench_scale.FILES_PER_PARTITION
    read, lineage = read_dataset(str(tmp_path / "dataset"))
    assert lineage["file_count"] == 64 and len(read) == 640
    assert sorted(read["transaction_id"]) == list(range(640))
    bench_scale.write_data(frame, tmp_path, 0)  # back to one CSV: the folder goes
    assert (tmp_path / "data.csv").is_file() and not (tmp_path / "dataset").exists()
