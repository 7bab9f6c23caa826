"""Benchmarks (`make bench`): print a table and write `.loopline/bench.json`.

    python -m loopline.bench                    # every benchmark
    python -m loopline.bench drift_1m           # one (or several) by name

`bench.json` is a list of objects, each with a `name` and its figures; a benchmark replaces
its own entry and keeps the others.

- `local_loop`: wall time of every step of `loopline run` on the demo data.
- `drift_1m`: drift on 1,000,000 rows x (20 numeric + 2 categorical) columns, a few of them
  shifted; Loopline's all-row statistics against a plain numpy/scipy PSI + KS and Evidently's
  DataDriftPreset with default settings, measured in the same run, with verdict agreement;
  then `loopline drift --json` on the same data written as Parquet.
- `validate_1m`: validation of 1,000,000 rows with Loopline's inferred suite against Great
  Expectations' own validate of the same suite and the same checks written in pandas.
- `serving_local`: the local KServe model server against the same SavedModel in-process.
- `tuning_pruning`, `tuning_parallel`, `tuning_resume`: Optuna pruning, shared studies, resuming.
- `model_quality`: Loopline's holdout ROC AUC, accuracy and average precision beside logistic
  regression and HistGradientBoosting on the same split (`bench_quality`).
- `scale`: the training pipeline's steps at 10k, 100k and 1M rows, each in its own process:
  seconds and peak RSS per step (`bench_scale`).
`python -m loopline.bench NAME ...` runs only the named benchmarks; without names, all of them.
Reading files is excluded from the timed computations; generating the data is seeded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline import (
    data,
    drift,
    local,
    serving,
    training,
    tuning,
    tuning_worker,
    validation,
    validation_report,
    validation_suite,
)
from loopline.bench_quality import bench_model_quality
from loopline.bench_scale import bench_scale, bench_scale_sample_200k
from loopline.data import DEMO_IGNORE, DEMO_TARGET
from loopline.home import loopline_home
from loopline.logs import setup_logging
from loopline.model_contract import ServingModel
from loopline.training import tune_and_train
from loopline.validation_suite import ExpectationSpec

ROWS_1M = 1_000_000
N_NUMERIC = 20
CATEGORIES = [f"cat_{i:02d}" for i in range(12)]
# The columns whose distribution the current window shifts; every other column is drawn again
# from the reference's distribution with another seed.
SHIFTED = ["num_00", "num_05", "num_10", "num_15", "cat_1"]
DRIFT_RATIO_TARGET = 2.0  # Loopline within 2x of plain numpy/scipy PSI + KS
EVIDENTLY_SPEEDUP_TARGET = 10.0  # and at least 10x faster than Evidently's default preset
VALIDATE_RATIO_TARGET = 1.5  # validation within 1.5x of GX's own validate
REPEATS = 2  # timed runs of Loopline and of each fast baseline; the best counts


# --------------------------------------------------------------------------------------------
# Helpers


class PeakMemory:
    """Peak resident memory above the starting point while the block runs (sampled every 20 ms)."""

    def __enter__(self) -> PeakMemory:
        import ctypes

        import psutil

        try:  # hand memory freed by earlier steps back to the OS, so that the start is honest
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass

        self._process = psutil.Process()
        self.start = self._process.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def mb(self) -> float:
        return round((self.peak - self.start) / 2**20, 1)


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, peak MB above the start)."""
    with PeakMemory() as memory:
        started = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - started
    return value, round(seconds, 3), memory.mb


def wide_frame(n_rows: int, *, seed: int, shifted: bool = False) -> pd.DataFrame:
    """Seeded synthetic data: 20 numeric columns of four families (normal, lognormal,
    exponential, Poisson counts) and two categorical ones; `shifted` moves the SHIFTED columns
    (numeric ones by 0.75 standard deviations, cat_1's category weights reversed)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(N_NUMERIC):
        name = f"num_{i:02d}"
        family = i % 4
        if family == 0:
            values, sd = rng.normal(10.0 * i, 1.0 + i % 3, n_rows), 1.0 + i % 3
        elif family == 1:
            values, sd = rng.lognormal(1.0, 0.5, n_rows), float(np.sqrt((np.e**0.25 - 1) * np.e ** (2 + 0.25)))
        elif family == 2:
            values, sd = rng.exponential(5.0, n_rows), 5.0
        else:
            values, sd = rng.poisson(4.0, n_rows).astype(np.float64), 2.0
        if shifted and name in SHIFTED:
            values = values + 0.75 * sd
        columns[name] = values
    weights = np.linspace(3.0, 1.0, len(CATEGORIES))
    labels = np.array(CATEGORIES, dtype=object)
    for name in ("cat_0", "cat_1"):
        p = weights[::-1] if (shifted and name in SHIFTED) else weights
        columns[name] = labels[rng.choice(len(labels), n_rows, p=p / p.sum())]
    return pd.DataFrame(columns)


def _kinds(frame: pd.DataFrame) -> dict[str, str]:
    return {c: ("categorical" if c.startswith("cat") else "numeric") for c in frame.columns}


# --------------------------------------------------------------------------------------------
# drift_1m


def plain_psi_ks(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The baseline: PSI (10 bins on the reference's deciles, eps 1e-6) and scipy's KS per numeric
    column, PSI per categorical column, written the plain way."""
    from scipy import stats

    out = {}
    for name in reference.columns:
        if name.startswith("cat"):
            ref = reference[name].value_counts()
            cur = current[name].value_counts()
            index = ref.index.union(cur.index)
            p = np.maximum(ref.reindex(index, fill_value=0).to_numpy() / len(reference), 1e-6)
            q = np.maximum(cur.reindex(index, fill_value=0).to_numpy() / len(current), 1e-6)
            out[name] = {"psi": float(np.sum((q - p) * np.log(q / p)))}
            continue
        a, b = reference[name].to_numpy(), current[name].to_numpy()
        edges = np.unique(np.quantile(a, np.linspace(0, 1, 11))[1:-1])
        edges = np.concatenate([[-np.inf], edges, [np.inf]])
        p = np.maximum(np.histogram(a, edges)[0] / len(a), 1e-6)
        q = np.maximum(np.histogram(b, edges)[0] / len(b), 1e-6)
        ks = stats.ks_2samp(a, b)
        out[name] = {"psi": float(np.sum((q - p) * np.log(q / p))), "ks_statistic": float(ks.statistic),
                     "ks_p_value": float(ks.pvalue)}
    return out


def evidently_default(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, bool]:
    """Evidently's DataDriftPreset with default settings on all rows: each column's verdict."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    kinds = _kinds(reference)
    definition = DataDefinition(numerical_columns=[c for c, k in kinds.items() if k == "numeric"],
                                categorical_columns=[c for c, k in kinds.items() if k == "categorical"])
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    verdicts = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if str(config.get("type", "")).endswith("ValueDrift"):
            method = str(config.get("method") or "")
            threshold, score = float(config.get("threshold") or 0.0), float(metric["value"])
            is_p_value = "p_value" in method or "test" in method.lower()
            verdicts[config["column"]] = score < threshold if is_p_value else score >= threshold
    return verdicts


def bench_drift_1m(home: Path) -> list[dict[str, Any]]:
    folder = home / "drift_1m"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    reference = wide_frame(ROWS_1M, seed=1)
    current = wide_frame(ROWS_1M, seed=2, shifted=True)
    generated = round(time.perf_counter() - started, 2)
    print(f"drift_1m: generated 2 x {ROWS_1M:,} rows in {generated}s; Loopline's statistics ...", flush=True)
    kinds = _kinds(reference)
    loopline_runs, plain_runs = [], []
    for _ in range(REPEATS):  # alternating, best of each: the machine is shared
        result, seconds, loopline_mb = timed(lambda: drift.compute(reference, current, kinds))
        loopline_runs.append(seconds)
        print(f"drift_1m: Loopline {seconds}s; plain numpy/scipy PSI + KS ...", flush=True)
        plain, seconds, plain_mb = timed(lambda: plain_psi_ks(reference, current))
        plain_runs.append(seconds)
        print(f"drift_1m: numpy/scipy {seconds}s", flush=True)
    loopline_s, plain_s = min(loopline_runs), min(plain_runs)
    same_statistics = all(
        abs(result.features[c]["psi"] - v["psi"]) < 1e-9
        and ("ks_p_value" not in v or (abs(result.features[c]["ks_statistic"] - v["ks_statistic"]) < 1e-12
                                       and abs(result.features[c]["ks_p_value"] - v["ks_p_value"]) < 1e-12))
        for c, v in plain.items()
    )
    print("drift_1m: Evidently DataDriftPreset (default settings, all rows; minutes) ...", flush=True)
    evidently, evidently_s, evidently_mb = timed(lambda: evidently_default(reference, current))
    loopline_drifted = sorted(result.drifted_features)
    evidently_drifted = sorted(c for c, d in evidently.items() if d)

    print("drift_1m: `loopline drift --json` on the same data as Parquet ...", flush=True)
    ref_path, cur_path = folder / "reference.parquet", folder / "current.parquet"
    reference.to_parquet(ref_path)
    current.to_parquet(cur_path)
    cli_started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "loopline.cli", "drift", "--reference", str(ref_path),
                           "--current", str(cur_path), "--json"], capture_output=True, text=True, timeout=900)
    cli_s = round(time.perf_counter() - cli_started, 2)
    cli = json.loads(proc.stdout) if proc.stdout.strip() else {"features": {}}
    cli_flagged = sorted(c for c, f in cli["features"].items() if f["drifted"])

    ratio = round(loopline_s / plain_s, 3)
    speedup = round(evidently_s / loopline_s, 1)
    return [{
        "name": "drift_1m",
        "rows": ROWS_1M,
        "columns": f"{N_NUMERIC} numeric + 2 categorical",
        "shifted_columns": ", ".join(SHIFTED),
        "generate_seconds": generated,
        "loopline_seconds": loopline_s,
        "loopline_seconds_runs": loopline_runs,
        "loopline_peak_mb": loopline_mb,
        "numpy_scipy_seconds": plain_s,
        "numpy_scipy_seconds_runs": plain_runs,
        "numpy_scipy_peak_mb": plain_mb,
        "evidently_default_seconds": evidently_s,
        "evidently_default_peak_mb": evidently_mb,
        "ratio_vs_numpy_scipy": ratio,
        "speedup_vs_evidently": speedup,
        "same_psi_ks_as_numpy_scipy": same_statistics,
        "loopline_drifted": ", ".join(loopline_drifted),
        "evidently_drifted": ", ".join(evidently_drifted),
        "verdicts_agree": loopline_drifted == evidently_drifted == sorted(SHIFTED),
        "cli_seconds": cli_s,
        "cli_exit_code": proc.returncode,
        "cli_flags_exactly_shifted": cli_flagged == sorted(SHIFTED),
        "targets_met": ratio <= DRIFT_RATIO_TARGET and speedup >= EVIDENTLY_SPEEDUP_TARGET,
    }]


# --------------------------------------------------------------------------------------------
# validate_1m


def corrupted_batch(n_rows: int, *, seed: int) -> pd.DataFrame:
    """A batch like the reference, with faults a suite should see: 3% of num_02 far out of range,
    two infinite values in num_03, 2% nulls in num_01 (tolerated), a new category in 0.5% of cat_0
    (an evolution)."""
    frame = wide_frame(n_rows, seed=seed)
    rng = np.random.default_rng(seed + 100)
    frame.loc[rng.choice(n_rows, n_rows * 3 // 100, replace=False), "num_02"] = 1e6
    frame.loc[[5, 7], "num_03"] = np.inf
    frame.loc[rng.choice(n_rows, n_rows // 50, replace=False), "num_01"] = np.nan
    frame.loc[rng.choice(n_rows, n_rows // 200, replace=False), "cat_0"] = "cat_new"
    return frame


def pandas_checks(frame: pd.DataFrame, expectations) -> list[bool]:
    """The same checks as the suite, in pandas: one success per expectation, in order."""
    out = []
    for e in expectations:
        kw, t = e.kwargs, e.type
        col = frame[kw["column"]] if kw.get("column") in frame.columns else None
        mostly = kw.get("mostly", 1.0)
        if t == "expect_table_row_count_to_be_between":
            ok = kw.get("min_value", 0) <= len(frame) <= kw.get("max_value", float("inf"))
        elif t == "expect_table_columns_to_match_set":
            ok = set(frame.columns) == set(kw["column_set"])
        elif t == "expect_column_to_exist":
            ok = col is not None
        elif t == "expect_column_values_to_not_be_null":
            ok = col.notna().mean() >= mostly
        elif t == "expect_column_values_to_be_in_type_list":
            ok = (pd.api.types.is_numeric_dtype(col) if "float64" in kw["type_list"]
                  else col.dropna().map(type).eq(str).all())
        elif t == "expect_column_values_to_be_between":
            values = col.dropna()
            ok = values.between(kw["min_value"], kw["max_value"]).mean() >= mostly if len(values) else True
        elif t == "expect_column_max_to_be_between":
            ok = col.max() <= kw["max_value"]
        elif t == "expect_column_min_to_be_between":
            ok = col.min() >= kw["min_value"]
        elif t == "expect_column_values_to_be_in_set":
            values = col.dropna()
            ok = values.isin(kw["value_set"]).mean() >= mostly if len(values) else True
        elif t == "expect_compound_columns_to_be_unique":
            hashed = pd.util.hash_pandas_object(frame[kw["column_list"]], index=False)
            ok = (~hashed.duplicated(keep=False)).mean() >= mostly
        else:
            raise ValueError(f"no pandas check for {t}")
        out.append(bool(ok))
    return out


def bench_validate_1m(home: Path) -> list[dict[str, Any]]:
    folder = home / "validate_1m"
    folder.mkdir(parents=True, exist_ok=True)
    reference = wide_frame(ROWS_1M, seed=1)
    batch = corrupted_batch(ROWS_1M, seed=3)
    # Warm up both engines (imports, GX's metric registry) on a few rows: not timed.
    small = validation_suite.infer_suite(reference.head(1000))
    validation.run_suite({"warm-up": batch.head(1000)}, small)
    print(f"validate_1m: {ROWS_1M:,} rows; Loopline (infer the suite, validate with GX, Data Docs) ...", flush=True)

    report_path = folder / "validation.html"
    runs: dict[str, list[float]] = {"infer": [], "run": [], "render": [], "loopline": [], "gx": []}
    for _ in range(REPEATS):  # alternating, best of each: the machine is shared
        suite, infer_s, _ = timed(lambda: validation_suite.infer_suite(reference))
        report, run_s, run_mb = timed(lambda s=suite: validation.run_suite({"batch": batch}, s))
        _, render_s, _ = timed(
            lambda r=report, s=suite: report_path.write_text(validation_report.render_html(r, s), encoding="utf-8"))
        for key, value in (("infer", infer_s), ("run", run_s), ("render", render_s)):
            runs[key].append(value)
        runs["loopline"].append(round(infer_s + run_s + render_s, 3))
        print(f"validate_1m: Loopline {runs['loopline'][-1]}s; GX's own validate of the same suite ...", flush=True)
        runner = validation._Runner(suite)  # GX's own context, suite and batch, built once: not timed
        gx_result, gx_s, gx_mb = timed(lambda r=runner: r.validate(batch))
        runs["gx"].append(gx_s)
        print(f"validate_1m: GX {gx_s}s", flush=True)
    best = runs["loopline"].index(min(runs["loopline"]))
    loopline_s, gx_s = runs["loopline"][best], min(runs["gx"])
    infer_s, run_s, render_s = runs["infer"][best], runs["run"][best], runs["render"][best]
    gx_verdicts = [bool(r.success) for r in gx_result.results]
    print("validate_1m: the same checks in pandas ...", flush=True)
    pandas_verdicts, pandas_s, _ = timed(lambda: pandas_checks(batch, [_spec_of(r) for r in gx_result.results]))
    loopline_verdicts = [c.success for c in report.splits[0].checks]
    ratio = round(loopline_s / gx_s, 3)
    return [{
        "name": "validate_1m",
        "rows": ROWS_1M,
        "columns": f"{N_NUMERIC} numeric + 2 categorical",
        "expectations": len(suite.expectations),
        "loopline_seconds": loopline_s,
        "loopline_seconds_runs": runs["loopline"],
        "loopline_infer_suite_seconds": infer_s,
        "loopline_validate_seconds": run_s,
        "loopline_data_docs_seconds": render_s,
        "loopline_peak_mb": run_mb,
        "gx_validate_seconds": gx_s,
        "gx_validate_seconds_runs": runs["gx"],
        "gx_peak_mb": gx_mb,
        "pandas_seconds": pandas_s,
        "ratio_vs_gx": ratio,
        "outcome": report.outcome,
        "failed": ", ".join(f"{c.expectation}({c.column})" for c in report.splits[0].failures),
        "verdicts_agree_gx": loopline_verdicts == gx_verdicts,
        "verdicts_agree_pandas": pandas_verdicts == gx_verdicts,
        "targets_met": ratio <= VALIDATE_RATIO_TARGET,
    }]


def _spec_of(gx_result):
    config = gx_result.expectation_config
    return ExpectationSpec(config.type, dict(config.kwargs))


# --------------------------------------------------------------------------------------------
# local_loop


def bench_local_loop(home: Path) -> list[dict[str, Any]]:
    """Wall time of every step of `loopline run` on the demo data with default settings."""

    home = home / "local_loop"
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

    folder = home / "serving-bench"
    if folder.exists():
        shutil.rmtree(folder)
    frame = data.demo_transactions(4000, seed=7)
    spec = data.build_spec(frame, target=data.DEMO_TARGET, ignore_columns=data.DEMO_IGNORE)
    train, validation, holdout = data.split(data.conform(frame, spec), spec, settings=data.SplitSettings())
    tune_and_train(train, validation, spec, settings=tuning.TuningSettings(n_trials=1, max_epochs=3), export_dir=folder / "model")
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

    folder.mkdir(parents=True, exist_ok=True)
    frame = data.demo_transactions(rows, seed=7)
    spec = data.build_spec(frame, target=data.DEMO_TARGET, ignore_columns=data.DEMO_IGNORE)
    train, validation, _ = data.split(data.conform(frame, spec), spec, settings=data.SplitSettings())
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
    import subprocess

    started = time.perf_counter()
    processes = []
    for worker in range(1, workers + 1):
        settings = tuning.TuningSettings(storage_url=url, study_name=study, n_trials=n_trials, max_epochs=max_epochs,
                                         pruner="none")
        command = tuning_worker.worker_command(train=paths["train"], validation=paths["validation"], settings=settings,
                                               worker=worker, threads=threads, heartbeat_interval=tuning.HEARTBEAT_INTERVAL,
                                               grace_period=tuning.GRACE_PERIOD)
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
    storage = tuning.open_storage(url)
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
    import subprocess

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


BENCHMARKS: dict[str, Callable[[Path], list[dict[str, Any]]]] = {
    "local_loop": bench_local_loop,
    "drift_1m": bench_drift_1m,
    "validate_1m": bench_validate_1m,
    "serving_local": bench_serving_local,
    "tuning_pruning": bench_tuning_pruning,
    "tuning_parallel": bench_tuning_parallel,
    "tuning_resume": bench_tuning_resume,
    "model_quality": bench_model_quality,
    "scale": bench_scale,
    "scale_sample_200k": bench_scale_sample_200k,
}


# --------------------------------------------------------------------------------------------


def write(entries: list[dict[str, Any]], path: Path) -> None:
    existing = json.loads(path.read_text()) if path.is_file() else []
    names = {e["name"] for e in entries}
    merged = [e for e in existing if e.get("name") not in names] + entries
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=2))


def table(entries: list[dict[str, Any]]) -> str:
    lines = [f"{'benchmark':<24} {'figure':<34} {'value':>14}", "-" * 74]
    for entry in entries:
        for key, value in entry.items():
            if key == "name":
                continue
            if isinstance(value, dict):
                for sub, v in value.items():
                    lines.append(f"{entry['name']:<24} {key + '.' + sub:<34} {v!s:>14}")
            else:
                lines.append(f"{entry['name']:<24} {key:<34} {value!s:>14}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m loopline.bench", description="Loopline benchmarks")
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
