"""Benchmarks (`make bench`): print a table and write `.loopline/bench.json`.

`bench.json` is a list of objects, each with a `name` and its figures; a benchmark replaces
its own entry and keeps the others.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from loopline.steps import loopline_home


def bench_local_loop(home: Path) -> list[dict[str, Any]]:
    """Wall time of every step of `loopline run` on the demo data with default settings."""
    from loopline import local
    from loopline.data import DEMO_IGNORE, DEMO_TARGET

    if home.exists():
        shutil.rmtree(home)
    data_uri, current_uri = local.prepare_demo_data(home)
    settings = local.LoopSettings(home=home, data_uri=data_uri, target=DEMO_TARGET, current_uri=current_uri,
                                  ignore_columns=list(DEMO_IGNORE))
    started = time.perf_counter()
    summary = local.run_loop(settings)
    total = time.perf_counter() - started
    entries = []
    for pipeline in summary["pipelines"]:
        entries.append(
            {
                "name": f"local_loop_{pipeline['pipeline']}",
                "seconds": pipeline["seconds"],
                "steps": {step["task"]: step["seconds"] for step in pipeline["steps"]},
            }
        )
    entries.append({"name": "local_loop", "seconds": round(total, 1), "rows": 6000,
                    "pipelines": [p["pipeline"] for p in summary["pipelines"]]})
    return entries


def _latency_stats(call, batches: list, repeats: int) -> dict[str, float]:
    import numpy as np

    call(batches[0])  # warm-up
    times = []
    rows = 0
    started = time.perf_counter()
    for i in range(repeats):
        batch = batches[i % len(batches)]
        t0 = time.perf_counter()
        call(batch)
        times.append((time.perf_counter() - t0) * 1000.0)
        rows += len(batch)
    elapsed = time.perf_counter() - started
    return {"p50_ms": round(float(np.percentile(times, 50)), 3), "p99_ms": round(float(np.percentile(times, 99)), 3),
            "rows_per_s": round(rows / elapsed, 1)}


def bench_serving_local(home: Path) -> list[dict[str, Any]]:
    """The local KServe model server against the same SavedModel called in-process."""
    from loopline import data, serving
    from loopline.training import ServingModel, tune_and_train

    folder = home / "serving-bench"
    if folder.exists():
        shutil.rmtree(folder)
    frame = data.demo_transactions(4000, seed=7)
    spec = data.build_spec(frame, target=data.DEMO_TARGET, ignore_columns=data.DEMO_IGNORE)
    train, validation, holdout = data.split(data.conform(frame, spec), spec)
    tune_and_train(train, validation, spec, export_dir=folder / "model", n_trials=1, max_epochs=3)
    features = holdout[list(spec.features)]
    records = features.astype(object).where(features.notna(), None).to_dict(orient="records")
    model = ServingModel(folder / "model")
    info = serving.start_server(str(folder / "model"), model_name="bench", version="1", log_dir=folder)
    entries = []
    try:
        for size, repeats in ((1, 300), (64, 100)):
            batches = [records[i: i + size] for i in range(0, len(records) - size, size)][:50]
            server = _latency_stats(lambda b: serving.predict(info, b), batches, repeats)
            inproc = _latency_stats(model.predict_rows, batches, repeats)
            entries.append({
                "name": "serving_local" if size == 1 else f"serving_local_{size}rows",
                "rows_per_request": size,
                "server_p50_ms": server["p50_ms"], "server_p99_ms": server["p99_ms"],
                "server_rows_per_s": server["rows_per_s"],
                "inprocess_p50_ms": inproc["p50_ms"], "inprocess_p99_ms": inproc["p99_ms"],
                "inprocess_rows_per_s": inproc["rows_per_s"],
                "p50_ratio": round(server["p50_ms"] / inproc["p50_ms"], 2),
            })
    finally:
        serving.stop_server(info)
    return entries


def write(entries: list[dict[str, Any]], path: Path) -> None:
    existing = json.loads(path.read_text()) if path.is_file() else []
    names = {e["name"] for e in entries}
    merged = [e for e in existing if e.get("name") not in names] + entries
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=2))


def table(entries: list[dict[str, Any]]) -> str:
    lines = [f"{'benchmark':<32} {'figure':<24} {'value':>10}", "-" * 68]
    for entry in entries:
        for key, value in entry.items():
            if key == "name":
                continue
            if isinstance(value, dict):
                for sub, v in value.items():
                    lines.append(f"{entry['name']:<32} {key + '.' + sub:<24} {v:>10}")
            else:
                lines.append(f"{entry['name']:<32} {key:<24} {str(value):>10}")
    return "\n".join(lines)


def main() -> int:
    from loopline import steps

    steps.setup_logging()
    home = loopline_home()
    entries = bench_local_loop(home / "bench") + bench_serving_local(home / "bench")
    write(entries, home / "bench.json")
    print(table(entries))
    print(f"\nwritten to {home / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
