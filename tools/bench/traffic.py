"""The `traffic_window` benchmark: building the traffic window (traffic_window.py) from logged
request/response pairs in KServe's JSON logger format, batchSize 100 (a batch mixes requests and
answers, as the agent's one queue does).

- 1,000,000 pairs (20,000 objects) in a local folder: wall seconds and peak memory.
- 100,000 pairs (2,000 objects) through the S3 stand-in (moto's server on loopback).

Writing the objects is not timed; the demo transactions give the request bodies (V1 instances).
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from loopline.data import demo as demo_data
from loopline.traffic import log as traffic_log
from loopline.traffic import window as traffic_window
from tools.bench.measure import timed

BATCH = 100  # records per object
MODEL = "fraud"


def write_pairs(uri: str, pairs: int, *, seed: int = 11, threads: int = 8) -> list[str]:
    """`pairs` logged request/response pairs under `uri`, BATCH records an object; the feature names."""
    frame = demo_data.demo_transactions(min(pairs, 20_000), seed=seed).drop(columns=[demo_data.DEMO_TARGET, *demo_data.DEMO_IGNORE])
    features = list(frame.columns)
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    common = {"inference_service": MODEL, "namespace": "default", "url": uri}

    def batch(start: int) -> None:
        records = []
        for n in range(start, min(start + BATCH // 2, pairs)):
            rid = f"{n:08d}-bench"
            endpoint = "canary" if n % 10 == 0 else "default"
            request = json.dumps({"instances": [rows[n % len(rows)]]}).encode()
            p = (n % 97) / 97
            records.append(traffic_log.LogRecord(id=rid, type="request", body=request, endpoint=endpoint, **common))
            records.append(traffic_log.LogRecord(id=rid, type="response", body=json.dumps({"predictions": [[1 - p, p]]}).encode(),
                                                 endpoint=endpoint, **common))
        traffic_log.write_batch(uri, records, "json", path="v1")

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(batch, range(0, pairs, BATCH // 2)))
    return features


def _entry(name: str, uri: str, pairs: int, features: list[str]) -> dict[str, Any]:
    """Wall seconds, this process's CPU seconds (the figure that does not depend on what else the
    machine runs) and peak memory of building the window."""
    cpu = time.process_time()
    window, seconds, peak = timed(lambda: traffic_window.build_window(uri, model_name=MODEL, features=features))
    cpu = round(time.process_time() - cpu, 3)
    c = window.counts
    return {"name": name, "pairs_logged": pairs, "objects": c.objects, "pairs": c.pairs, "rows": c.rows,
            "unpaired": c.unpaired_requests + c.unpaired_responses, "undecodable": c.undecodable,
            "seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak,
            "goal": "at most 60 s and 2 GB" if pairs >= 1_000_000 else ""}


def bench_traffic_window(home: Path, *, local_pairs: int = 1_000_000, s3_pairs: int = 100_000) -> list[dict[str, Any]]:
    from tools.rehearsal import STANDIN_CREDENTIALS, s3_standin

    folder = home / "traffic_window"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    features = write_pairs(str(folder / "local"), local_pairs)
    entries = [_entry("traffic_window_local", str(folder / "local"), local_pairs, features)]
    shutil.rmtree(folder / "local")

    import os

    import boto3
    import s3fs

    server = s3_standin(folder).start()
    saved = {k: os.environ.get(k) for k in (*STANDIN_CREDENTIALS, "AWS_ENDPOINT_URL")}
    os.environ.update({**STANDIN_CREDENTIALS, "AWS_ENDPOINT_URL": server.url})
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        boto3.client("s3").create_bucket(Bucket="bench-traffic")
        write_pairs("s3://bench-traffic/logs", s3_pairs)
        entries.append(_entry("traffic_window_s3_standin", "s3://bench-traffic/logs", s3_pairs, features))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()
    return entries
