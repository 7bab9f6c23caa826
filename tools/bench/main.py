"""Benchmarks (`make bench`): print a table and write `.loopline/bench.json`.

    python -m tools.bench                    # every benchmark
    python -m tools.bench drift_1m           # one (or several) by name

`bench.json` is a list of objects, each with a `name` and its figures; a benchmark replaces
its own entry and keeps the others.

- `local_loop`: wall time of every step of `loopline run` on the demo data.
- `drift_1m`: drift on 1,000,000 rows x (20 numeric + 2 categorical) columns, a few of them
  shifted; Loopline's all-row statistics against a plain numpy/scipy PSI + KS and Evidently's
  DataDriftPreset with default settings, measured in the same run, with verdict agreement;
  then `loopline drift --json` on the same data written as Parquet.
- `validate_1m`: validation of 1,000,000 rows with Loopline's inferred suite against Great
  Expectations' own validate of the same suite and the same checks written in pandas.
- `serving_local`: the local KServe model server, and Loopline's serving image in a container
  (Docker or podman; skipped without one), against the same SavedModel in-process.
- `tuning_pruning`, `tuning_parallel`, `tuning_resume`: Optuna pruning, shared studies, resuming.
- `containers`: image sizes, cold and warm builds, the loop in the images against the loop here.
- `model_quality`: Loopline's holdout ROC AUC, accuracy and average precision beside logistic
  regression and HistGradientBoosting on the same split (`bench_quality`).
- `scale`: the whole training pipeline (load to deploy) at 10k, 100k and 1M rows, each step in
  its own process: seconds and each step's own peak RSS (`bench_scale`); LOOPLINE_SCALE_FILES=64
  gives load_data a Hive-partitioned dataset of 64 Parquet files instead of one CSV.
`python -m tools.bench NAME ...` runs only the named benchmarks; without names, all of them.
Reading files is excluded from the timed computations; generating the data is seeded."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from loopline.core import images
from loopline.core.errors import LooplineError
from loopline.core.home import loopline_home
from loopline.core.logs import setup_logging
from loopline.data import checks as input_checks
from loopline.data import demo as demo_data
from loopline.data import spec as dataset_spec
from loopline.data import tables as data
from loopline.data.demo import DEMO_IGNORE, DEMO_TARGET
from loopline.local import run as local
from loopline.local import serving_container
from loopline.model.contract import ServingModel
from loopline.serving import server as serving
from loopline.tuning import study as tuning
from loopline.tuning.training import tune_and_train
from tools.bench.containers import bench_containers
from tools.bench.data import bench_drift_1m, bench_validate_1m
from tools.bench.measure import table, write
from tools.bench.quality import bench_model_quality
from tools.bench.scale import bench_scale, bench_scale_sample_200k
from tools.bench.tuning import bench_tuning_parallel, bench_tuning_pruning, bench_tuning_resume


def bench_local_loop(home: Path) -> list[dict[str, Any]]:
    """Wall time of every step of `loopline run` on the demo data with default settings."""

    home = home / "local_loop"
    if home.exists():
        shutil.rmtree(home)
    data_uri, current_uri = demo_data.prepare_demo_data(home)
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

def _latency_stats(calls: dict[str, Any], batches: list, repeats: int) -> dict[str, dict[str, float]]:
    """p50/p99 and rows/s of each call on the same batches, the calls interleaved request by
    request (their order alternating), so that each sees the same load of this shared machine."""
    names = list(calls)
    for name in names:
        calls[name](batches[0])  # warm-up
    times: dict[str, list[float]] = {name: [] for name in names}
    rows = 0
    for i in range(repeats):
        batch = batches[i % len(batches)]
        for name in (names if i % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            calls[name](batch)
            times[name].append((time.perf_counter() - t0) * 1000.0)
        rows += len(batch)
    return {name: {"p50_ms": round(float(np.percentile(t, 50)), 3), "p99_ms": round(float(np.percentile(t, 99)), 3),
                   "rows_per_s": round(rows / (sum(t) / 1000.0), 1)} for name, t in times.items()}


def bench_serving_local(home: Path) -> list[dict[str, Any]]:
    """The local KServe model server against the same SavedModel called in-process."""

    folder = home / "serving-bench"
    if folder.exists():
        shutil.rmtree(folder)
    frame = demo_data.demo_transactions(4000, seed=7)
    spec = input_checks.build_spec(frame, target=demo_data.DEMO_TARGET, ignore_columns=demo_data.DEMO_IGNORE)
    train, validation, holdout = data.split(dataset_spec.conform(frame, spec), spec, settings=data.SplitSettings())
    tune_and_train(train, validation, spec, settings=tuning.TuningSettings(n_trials=1, max_epochs=3), export_dir=folder / "model")
    features = holdout[list(spec.features)]
    records = features.astype(object).where(features.notna(), None).to_dict(orient="records")
    model = ServingModel(folder / "model")
    info = serving.start_server(str(folder / "model"), model_name="bench", version="1", log_dir=folder)
    container, skipped = _serving_container(folder / "model")
    entries = []
    try:
        for size, repeats in ((1, 300), (64, 100)):
            batches = [records[i: i + size] for i in range(0, len(records) - size, size)][:50]
            calls = {"server": lambda b: serving.predict(info, b), "inproc": model.predict_rows}
            if container:  # the serving image KServe runs, on this machine's container engine
                calls["image"] = lambda b: serving.predict(container.info, b)
            stats = _latency_stats(calls, batches, repeats)
            server, inproc = stats["server"], stats["inproc"]
            entry = {
                "name": "serving_local" if size == 1 else f"serving_local_{size}rows",
                "rows_per_request": size,
                "server_p50_ms": server["p50_ms"], "server_p99_ms": server["p99_ms"],
                "server_rows_per_s": server["rows_per_s"],
                "inprocess_p50_ms": inproc["p50_ms"], "inprocess_p99_ms": inproc["p99_ms"],
                "inprocess_rows_per_s": inproc["rows_per_s"],
                "p50_ratio": round(server["p50_ms"] / inproc["p50_ms"], 2),
            }
            if container:
                image = stats["image"]
                entry.update({
                    "image_p50_ms": image["p50_ms"], "image_p99_ms": image["p99_ms"],
                    "image_rows_per_s": image["rows_per_s"],
                    "image_p50_ratio": round(image["p50_ms"] / inproc["p50_ms"], 2),
                    "image_p99_ratio": round(image["p99_ms"] / inproc["p99_ms"], 2),
                })
            else:
                entry["image"] = f"skipped: {skipped}"
            entries.append(entry)
    finally:
        serving.stop_server(info)
        if container:
            container.stop()
    return entries


def _serving_container(model_dir: Path):
    """Loopline's serving image serving `model_dir`, or None and why not (no engine, no image)."""
    try:
        return serving_container.start(images.image("serving"), model_dir, model_name="bench"), ""
    except LooplineError as exc:
        return None, str(exc)


BENCHMARKS: dict[str, Callable[[Path], list[dict[str, Any]]]] = {
    "local_loop": bench_local_loop,
    "drift_1m": bench_drift_1m,
    "validate_1m": bench_validate_1m,
    "serving_local": bench_serving_local,
    "tuning_pruning": bench_tuning_pruning,
    "tuning_parallel": bench_tuning_parallel,
    "tuning_resume": bench_tuning_resume,
    "containers": bench_containers,
    "model_quality": bench_model_quality,
    "scale": bench_scale,
    "scale_sample_200k": bench_scale_sample_200k,
}

def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tools.bench", description="Loopline benchmarks")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    setup_logging()
    home = loopline_home()
    entries: list[dict[str, Any]] = []
    for name in args.names or BENCHMARKS:
        found = BENCHMARKS[name](home / "bench")
        write(found, home / "bench.json")  # each as it finishes: the long ones take minutes
        entries += found
    print(table(entries))
    print(f"\nwritten to {home / 'bench.json'}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
