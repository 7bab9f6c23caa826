"""Benchmarks (`make bench`): print a table and write `.loopline/bench.json`.

`bench.json` is a list of objects, each with a `name` and its figures; a benchmark replaces
its own entry and keeps the others. `python -m loopline.bench NAME ...` runs only the named
benchmarks (see BENCHMARKS); without names it runs them all.
"""

from __future__ import annotations

import json
import os
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


def _demo_splits(folder: Path, rows: int = 6000) -> dict[str, Path]:
    """The demo data's train and validation splits as Loopline Parquet files."""
    from loopline import data

    folder.mkdir(parents=True, exist_ok=True)
    frame = data.demo_transactions(rows, seed=7)
    spec = data.build_spec(frame, target=data.DEMO_TARGET, ignore_columns=data.DEMO_IGNORE)
    train, validation, _ = data.split(data.conform(frame, spec), spec)
    paths = {"train": folder / "train.parquet", "validation": folder / "validation.parquet"}
    data.write_split(train, spec, paths["train"])
    data.write_split(validation, spec, paths["validation"])
    return paths


PRUNING_TRIALS, PRUNING_MAX_EPOCHS = 16, 20


def bench_tuning_pruning(home: Path) -> list[dict[str, Any]]:
    """Median pruning against none on the demo data, same trials and seed: epochs and best AUC."""
    from loopline import data, training, tuning

    paths = _demo_splits(home / "tuning-pruning")
    train, spec = data.read_split(paths["train"])
    validation, _ = data.read_split(paths["validation"])
    figures: dict[str, dict[str, float]] = {}
    for pruner in ("none", "median"):
        settings = tuning.TuningSettings(n_trials=PRUNING_TRIALS, max_epochs=PRUNING_MAX_EPOCHS, pruner=pruner, seed=42)
        started = time.perf_counter()
        run = training.tune(train, validation, spec, settings=settings)
        trials = run.study.get_trials(deepcopy=False)
        figures[pruner] = {
            "epochs": sum(t.user_attrs.get("epochs", 0) for t in trials),
            "best_auc": float(run.study.best_value),
            "pruned": sum(t.state.name == "PRUNED" for t in trials),
            "seconds": round(time.perf_counter() - started, 1),
        }
    return [{
        "name": "tuning_pruning",
        "trials": PRUNING_TRIALS,
        "max_epochs": PRUNING_MAX_EPOCHS,
        "epochs_pruned": figures["median"]["epochs"],
        "epochs_unpruned": figures["none"]["epochs"],
        "epochs_ratio": round(figures["median"]["epochs"] / figures["none"]["epochs"], 3),
        "auc_pruned": round(figures["median"]["best_auc"], 4),
        "auc_unpruned": round(figures["none"]["best_auc"], 4),
        "auc_delta": round(figures["none"]["best_auc"] - figures["median"]["best_auc"], 4),
        "trials_pruned": figures["median"]["pruned"],
        "seconds_pruned": figures["median"]["seconds"],
        "seconds_unpruned": figures["none"]["seconds"],
    }]


PARALLEL_TRIALS, PARALLEL_MAX_EPOCHS = 16, 6


def _run_workers(paths: dict[str, Path], url: str, study: str, *, workers: int, threads: int, n_trials: int,
                 max_epochs: int, log_dir: Path) -> float:
    """Start `workers` worker processes on one storage and wait for them; return the wall time."""
    import subprocess

    from loopline import tuning

    started = time.perf_counter()
    processes = []
    for worker in range(1, workers + 1):
        command = tuning.worker_command(train=paths["train"], validation=paths["validation"], storage_url=url,
                                        study_name=study, n_trials=n_trials, max_epochs=max_epochs,
                                        worker=worker, threads=threads, pruner="none")
        log = open(log_dir / f"{study}-worker{worker}.log", "w")  # noqa: SIM115 - closed below
        processes.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log))
    for process, log in processes:
        code = process.wait()
        log.close()
        if code != 0:
            raise RuntimeError(f"tuning worker failed (exit {code}); see {log.name}")
    return time.perf_counter() - started


def bench_tuning_parallel(home: Path) -> list[dict[str, Any]]:
    """Two worker processes sharing one SQLite study against one worker, 16 trials each way.

    One worker uses TensorFlow's default threads (every core); each of the two uses one thread,
    as it would with a CPU limit of 1 in its pod. Times include each process's start (TensorFlow
    import)."""
    from loopline import tuning

    folder = home / "tuning-parallel"
    if folder.exists():
        shutil.rmtree(folder)
    paths = _demo_splits(folder)
    url = f"sqlite:///{folder / 'studies.db'}"
    one = _run_workers(paths, url, "one-worker", workers=1, threads=0, n_trials=PARALLEL_TRIALS,
                       max_epochs=PARALLEL_MAX_EPOCHS, log_dir=folder)
    two = _run_workers(paths, url, "two-workers", workers=2, threads=1, n_trials=PARALLEL_TRIALS,
                       max_epochs=PARALLEL_MAX_EPOCHS, log_dir=folder)
    storage = tuning.open_storage(url)
    import optuna

    epochs = {}
    for name in ("one-worker", "two-workers"):
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        epochs[name] = (sum(t.user_attrs.get("epochs", 0) for t in trials),
                        sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials))
    return [{
        "name": "tuning_parallel",
        "trials": PARALLEL_TRIALS,
        "seconds_one_worker": round(one, 1),
        "seconds_two_workers": round(two, 1),
        "time_ratio": round(two / one, 3),
        "epochs_one_worker": epochs["one-worker"][0],
        "epochs_two_workers": epochs["two-workers"][0],
        "trials_one_worker": epochs["one-worker"][1],
        "trials_two_workers": epochs["two-workers"][1],
        "cores": os.cpu_count(),
        "load_avg_1m_before": round(os.getloadavg()[0], 2),
    }]


RESUME_TRIALS, RESUME_MAX_EPOCHS = 6, 5


def bench_tuning_resume(home: Path) -> list[dict[str, Any]]:
    """A worker killed with SIGKILL while a trial runs, then restarted on the same storage."""
    import signal
    import subprocess

    import optuna

    from loopline import tuning

    folder = home / "tuning-resume"
    if folder.exists():
        shutil.rmtree(folder)
    paths = _demo_splits(folder, rows=3000)
    url, study_name = f"sqlite:///{folder / 'study.db'}", "resume"
    command = tuning.worker_command(train=paths["train"], validation=paths["validation"], storage_url=url,
                                    study_name=study_name, n_trials=RESUME_TRIALS, max_epochs=RESUME_MAX_EPOCHS,
                                    pruner="none", heartbeat_interval=1.0, grace_period=5.0)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def trials():
        try:
            return optuna.load_study(study_name=study_name, storage=url).get_trials(deepcopy=False)
        except Exception:  # not created yet
            return []

    with open(folder / "first.log", "w") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            states = [t.state.name for t in trials()] if (folder / "study.db").exists() else []
            if states.count("COMPLETE") >= RESUME_TRIALS // 2 and "RUNNING" in states:
                break
            time.sleep(0.2)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    before = {t.number: (t.params, t.value) for t in trials() if t.state.name == "COMPLETE"}
    started = time.perf_counter()
    with open(folder / "second.log", "w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise RuntimeError(f"the restarted worker failed (exit {code}); see {folder / 'second.log'}")
    after = trials()
    counted = [t for t in after if t.state.name in ("COMPLETE", "PRUNED")]
    kept = {t.number: (t.params, t.value) for t in counted if t.number in before}
    lost = sum(1 for n, v in before.items() if kept.get(n) != v)
    repeated = len(counted) - len({json.dumps(t.params, sort_keys=True) for t in counted})
    return [{
        "name": "tuning_resume",
        "trials": RESUME_TRIALS,
        "completed_before_kill": len(before),
        "lost_trials": lost + repeated + abs(RESUME_TRIALS - len(counted)),
        "repeated_trials": repeated,
        "stale_trials_failed": sum(t.state.name == "FAIL" for t in after),
        "seconds_after_restart": round(time.perf_counter() - started, 1),
    }]


BENCHMARKS = {
    "local_loop": bench_local_loop,
    "serving_local": bench_serving_local,
    "tuning_pruning": bench_tuning_pruning,
    "tuning_parallel": bench_tuning_parallel,
    "tuning_resume": bench_tuning_resume,
}


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


def main(argv: list[str] | None = None) -> int:
    import argparse

    from loopline import steps

    parser = argparse.ArgumentParser(prog="python -m loopline.bench", description="Loopline benchmarks")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    steps.setup_logging()
    home = loopline_home()
    entries = []
    for name in args.names or BENCHMARKS:
        entries += BENCHMARKS[name](home / "bench")
    write(entries, home / "bench.json")
    print(table(entries))
    print(f"\nwritten to {home / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
