"""The tuning benchmarks: median pruning, parallel workers sharing a study, resuming a killed worker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from loopline.data import checks as input_checks
from loopline.data import demo as demo_data
from loopline.data import spec as dataset_spec
from loopline.data import tables as data
from loopline.tuning import storage as tuning_storage
from loopline.tuning import study as tuning
from loopline.tuning import training
from loopline.tuning import worker as tuning_worker


def _demo_splits(folder: Path, rows: int = 6000) -> dict[str, Path]:
    """The demo data's train and validation splits as Loopline Parquet files."""

    folder.mkdir(parents=True, exist_ok=True)
    frame = demo_data.demo_transactions(rows, seed=7)
    spec = input_checks.build_spec(frame, target=demo_data.DEMO_TARGET, ignore_columns=demo_data.DEMO_IGNORE)
    train, validation, _ = data.split(dataset_spec.conform(frame, spec), spec, settings=data.SplitSettings())
    paths = {"train": folder / "train.parquet", "validation": folder / "validation.parquet"}
    data.write_split(train, spec, paths["train"])
    data.write_split(validation, spec, paths["validation"])
    return paths

PRUNING_TRIALS, PRUNING_MAX_EPOCHS = 16, 20

def bench_tuning_pruning(home: Path) -> list[dict[str, Any]]:
    """Median pruning against none on the demo data, same trials and seed: epochs and best AUC."""

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

PARALLEL_TRIALS, PARALLEL_MAX_EPOCHS = 16, 15  # max_epochs: the pipeline default

PARALLEL_REPEATS = 2

def _run_workers(paths: dict[str, Path], url: str, study: str, *, workers: int, threads: int, n_trials: int,
                 max_epochs: int, log_dir: Path) -> float:
    """Start `workers` worker processes on one storage and wait for them; return the wall time."""

    started = time.perf_counter()
    processes = []
    for worker in range(1, workers + 1):
        settings = tuning.TuningSettings(storage_url=url, study_name=study, n_trials=n_trials, max_epochs=max_epochs,
                                         pruner="none")
        command = tuning_worker.worker_command(train=paths["train"], validation=paths["validation"], settings=settings,
                                               worker=worker, threads=threads, heartbeat_interval=tuning_storage.HEARTBEAT_INTERVAL,
                                               grace_period=tuning_storage.GRACE_PERIOD)
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

    Workers scale out the way ParallelFor tasks do: each with the same CPU budget (one
    TensorFlow thread, as in a pod with a CPU limit of 1), so `time_ratio` compares two such
    workers with one. Times include each process's start (TensorFlow import) and end. Each way
    runs PARALLEL_REPEATS times, alternating, on a fresh study; the fastest run of each counts
    (every run's time is reported). For reference, one worker given every core (TensorFlow's
    default threads) is measured once (`time_ratio_vs_one_worker_all_cores`)."""

    folder = home / "tuning-parallel"
    if folder.exists():
        shutil.rmtree(folder)
    paths = _demo_splits(folder)
    url = f"sqlite:///{folder / 'studies.db'}"
    load_before = round(os.getloadavg()[0], 2)
    ways = {"one-worker": dict(workers=1, threads=1), "two-workers": dict(workers=2, threads=1)}
    runs = [(f"{name}-{repeat}", name, how) for repeat in range(1, PARALLEL_REPEATS + 1) for name, how in ways.items()]
    runs.append(("one-worker-all-cores", "one-worker-all-cores", dict(workers=1, threads=0)))
    seconds: dict[str, list[float]] = {}
    for study, way, how in runs:
        seconds.setdefault(way, []).append(_run_workers(
            paths, url, study, n_trials=PARALLEL_TRIALS, max_epochs=PARALLEL_MAX_EPOCHS, log_dir=folder, **how))
    storage = tuning_storage.open_storage(url)
    import optuna

    done: dict[str, list[tuple[int, int]]] = {}
    for study, way, _ in runs:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
        done.setdefault(way, []).append((sum(t.user_attrs.get("epochs", 0) for t in trials),
                                         sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)))
    one, two, all_cores = min(seconds["one-worker"]), min(seconds["two-workers"]), seconds["one-worker-all-cores"][0]
    return [{
        "name": "tuning_parallel",
        "trials": PARALLEL_TRIALS,
        "threads_per_worker": 1,
        "seconds_one_worker": round(one, 1),
        "seconds_two_workers": round(two, 1),
        "time_ratio": round(two / one, 3),
        "seconds_one_worker_runs": [round(x, 1) for x in seconds["one-worker"]],
        "seconds_two_workers_runs": [round(x, 1) for x in seconds["two-workers"]],
        "seconds_one_worker_all_cores": round(all_cores, 1),
        "time_ratio_vs_one_worker_all_cores": round(two / all_cores, 3),
        "epochs_one_worker": [e for e, _ in done["one-worker"]],
        "epochs_two_workers": [e for e, _ in done["two-workers"]],
        "trials_one_worker": [n for _, n in done["one-worker"]],
        "trials_two_workers": [n for _, n in done["two-workers"]],
        "cores": os.cpu_count(),
        "load_avg_1m_before": load_before,
    }]

RESUME_TRIALS, RESUME_MAX_EPOCHS = 6, 5

def bench_tuning_resume(home: Path) -> list[dict[str, Any]]:
    """A worker killed with SIGKILL while a trial runs, then restarted on the same storage."""
    import signal

    import optuna

    folder = home / "tuning-resume"
    if folder.exists():
        shutil.rmtree(folder)
    paths = _demo_splits(folder, rows=3000)
    url, study_name = f"sqlite:///{folder / 'study.db'}", "resume"
    settings = tuning.TuningSettings(storage_url=url, study_name=study_name, n_trials=RESUME_TRIALS,
                                     max_epochs=RESUME_MAX_EPOCHS, pruner="none")
    command = tuning_worker.worker_command(train=paths["train"], validation=paths["validation"], settings=settings,
                                           worker=1, threads=0, heartbeat_interval=1.0, grace_period=5.0)
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
