"""The `scale` benchmark: the training pipeline's data and model steps on the demo generator at
10k, 100k and 1M rows, every step in its own process: wall seconds and peak RSS per step.

    python -m tools.bench scale                       # 10k, 100k, 1M
    LOOPLINE_SCALE_ROWS=10000,100000 python -m tools.bench scale
    LOOPLINE_SCALE_FILES=64 python -m tools.bench scale   # the input as 64 Hive-partitioned Parquet files

Each step's peak is its own: the high-water mark of the step process's resident set since it
started its program (VmHWM of /proc/self/status, read by the step as it ends). A child's
`ru_maxrss` also counts the resident set of the parent at fork (here the bench process, which
generated every row), so it is reported beside it as `ru_maxrss_mb` only for comparison.

Steps: the whole training pipeline. load_data, validate_data, train_model (the pipeline's
defaults: 4 trials, up to 15 epochs; tuning on a stratified sample above
`budget.TUNING_SAMPLE_ROWS` rows, the final model on every row, streamed), evaluate_model (holdout
metrics, the logistic-regression baseline, the gate), register_model (MLflow, a SQLite store in
the bench folder) and deploy_model (the local KServe model server, its smoke test, the champion
alias). The model server the deploy step starts is stopped before the next size, however the
bench ends. Writing the demo data (a CSV, or with LOOPLINE_SCALE_FILES=N a folder of N Parquet
files in `dt=` partitions of 8 files each, which load_data reads as one dataset) is not timed. Goal: 1M rows through these steps in at most 6
minutes on 2 cores, no step above 3 GB.

`scale_sample_200k`: on 200,000 demo rows, the model tuned on the stratified sample against one
tuned on every row (same seed, same trials), both scored on the same holdout. Goal: ROC AUC
within 0.005.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loopline.local.runguard import ServersOfRun
from loopline.tuning.study import TuningSettings

SCALE_ROWS = (10_000, 100_000, 1_000_000)
STEPS = ("load_data", "validate_data", "train_model", "evaluate_model", "register_model", "deploy_model")
MODEL_NAME = "scale"
SECONDS_1M_TARGET, STEP_RSS_TARGET_MB = 360.0, 3072.0
FILES_PER_PARTITION = 8


class _Artifact:
    """What the executors take: a path, a URI and metadata (KFP's artifacts have the same)."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.uri = str(path)
        self.metadata: dict[str, Any] = {}

    def log_metric(self, key: str, value: float) -> None:
        self.metadata[key] = value


def run_step(step: str, folder: Path) -> dict[str, Any]:
    """Run one step on the files in `folder` (in this process); return its metadata."""
    from loopline.data.tables import SplitSettings
    from loopline.evaluation.gate import GateSettings
    from loopline.executors import evaluate_model, load_data, train_model, validate_data
    from loopline.validation.validate import ValidationSettings

    a = {name: _Artifact(folder / name) for name in
         ("train", "validation", "holdout", "model", "metrics", "best_params", "report", "summary", "result",
          "classification_metrics", "blessing")}

    class _Classification(_Artifact):
        def log_confusion_matrix(self, *args):
            pass

        def log_roc_curve(self, *args):
            pass

    if step == "load_data":
        partitioned = (folder / "dataset").is_dir()
        load_data.run(data_uri=str(folder / "dataset") if partitioned else str(folder / "data.csv"), target="is_fraud",
                      train=a["train"], validation=a["validation"], holdout=a["holdout"],
                      settings=SplitSettings(ignore_columns=["transaction_id", *(["dt"] if partitioned else [])]))
    elif step == "validate_data":
        validate_data.run(train=a["train"], validation=a["validation"], holdout=a["holdout"], report=a["report"],
                          metrics=a["metrics"], summary=a["summary"], result=a["result"],
                          settings=ValidationSettings(fail_on_error=False))
    elif step == "train_model":
        train_model.run(train=a["train"], validation=a["validation"], model=a["model"], metrics=a["metrics"],
                        best_params=a["best_params"], report=a["report"], settings=TuningSettings(),
                        pipeline_run="scale")
    elif step == "evaluate_model":
        evaluate_model.run(model=a["model"], holdout=a["holdout"], train=a["train"], metrics=a["metrics"],
                           classification_metrics=_Classification(folder / "cm"), report=a["report"],
                           blessing=a["blessing"], settings=GateSettings(thresholds={"roc_auc": 0.5}))
    elif step == "register_model":
        from loopline.executors import register_model
        from loopline.registry import RegisterSettings, local_tracking_uri

        version = register_model.run(model=a["model"], blessing=a["blessing"], train=a["train"], holdout=a["holdout"],
                                     tracking_uri=local_tracking_uri(folder), model_name=MODEL_NAME,
                                     pipeline_run="scale", settings=RegisterSettings(pipeline_name="scale"))
        (folder / "version").write_text(version)
        return {"version": version}
    elif step == "deploy_model":
        from loopline.executors import deploy_model
        from loopline.registry import local_tracking_uri
        from loopline.serving.targets import DeploySettings

        action = deploy_model.run(model_name=MODEL_NAME, model_version=(folder / "version").read_text(),
                                  tracking_uri=local_tracking_uri(folder), holdout=a["holdout"],
                                  manifest=_Artifact(folder / "manifest"), report=_Artifact(folder / "deploy-report"),
                                  pipeline_run="scale", settings=DeploySettings(local_home=str(folder / "home")))
        return {"rollout": action}
    else:
        raise ValueError(f"unknown step '{step}'")
    return a["metrics"].metadata


def _measure(step: str, folder: Path) -> dict[str, Any]:
    out = folder / f"{step}.json"
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "tools.bench.scale", step, str(folder), str(out)])
    _, status, usage = os.wait4(process.pid, 0)  # its own peak RSS, which Popen.wait does not give
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: the Popen must know
    if status != 0:
        raise RuntimeError(f"step {step} failed at {folder} (status {status})")
    written = json.loads(out.read_text())
    own_kb = written.get("peak_rss_kb")
    return {"seconds": round(seconds, 1),
            "peak_rss_mb": round((own_kb if own_kb is not None else usage.ru_maxrss) / 1024, 1),
            "ru_maxrss_mb": round(usage.ru_maxrss / 1024, 1), "metrics": written["metrics"]}


def own_peak_rss_kb() -> int | None:
    """This process's own peak resident set (kB) since it started its program: Linux's VmHWM;
    None where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def write_data(frame, folder: Path, files: int) -> None:
    """The demo rows as data.csv, or with `files` > 0 as `files` Parquet parts under
    dataset/dt=<day>/ (FILES_PER_PARTITION parts a day); the other form is removed."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.rmtree(folder / "dataset", ignore_errors=True)
    (folder / "data.csv").unlink(missing_ok=True)
    if files <= 0:
        frame.to_csv(folder / "data.csv", index=False)
        return
    table = pa.Table.from_pandas(frame, preserve_index=False)
    size = -(-table.num_rows // files)
    for index in range(files):
        day = (datetime.date(2026, 11, 1) + datetime.timedelta(days=index // FILES_PER_PARTITION)).isoformat()
        part = folder / "dataset" / f"dt={day}" / f"part-{index:04d}.parquet"
        part.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(index * size, size), part)


def one_size(rows: int, home: Path) -> dict[str, Any]:
    from loopline.data import demo as demo_data

    folder = home / f"scale-{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    files = int(os.environ.get("LOOPLINE_SCALE_FILES", "0") or 0)
    write_data(demo_data.demo_transactions(rows, seed=7), folder, files)
    with ServersOfRun(folder / "home", MODEL_NAME):  # stops the model server deploy_model starts, however it ends
        steps = {step: _measure(step, folder) for step in STEPS}
    entry = size_entry(rows, steps, files)
    print(json.dumps(entry), flush=True)
    return entry


def size_entry(rows: int, steps: dict[str, dict[str, Any]], files: int = 0) -> dict[str, Any]:
    """One size's figures from its steps' measurements (`_measure`, in pipeline order)."""
    train_metrics = steps["train_model"]["metrics"]
    return {
        "rows": rows,
        "input": f"{files} Parquet files in dt= partitions" if files > 0 else "one CSV file",
        "seconds": round(sum(s["seconds"] for s in steps.values()), 1),
        "peak_step_rss_mb": max(s["peak_rss_mb"] for s in steps.values()),
        "steps": {step: {k: s[k] for k in ("seconds", "peak_rss_mb", "ru_maxrss_mb") if k in s}
                  for step, s in steps.items()},
        "rows_per_phase": {k[len("rows_"):]: v for k, v in train_metrics.items() if k.startswith("rows_")},
        "holdout_roc_auc": round(steps["evaluate_model"]["metrics"]["roc_auc"], 4),
        "baseline_roc_auc": round(steps["evaluate_model"]["metrics"]["baseline_roc_auc"], 4),
        "rollout": steps["deploy_model"]["metrics"]["rollout"],
    }


def bench_scale(home: Path) -> list[dict[str, Any]]:
    sizes = [int(r) for r in os.environ.get("LOOPLINE_SCALE_ROWS", "").split(",") if r] or list(SCALE_ROWS)
    found = {str(rows): one_size(rows, home) for rows in sizes}
    return [scale_entry(found, load_average=round(os.getloadavg()[0], 1))]


def scale_entry(found: dict[str, dict[str, Any]], *, load_average: float) -> dict[str, Any]:
    """The `scale` entry of the sizes measured; the goal is judged at 1M rows only."""
    entry: dict[str, Any] = {"name": "scale", "load_average": load_average, "sizes": found}
    if "1000000" in found:
        entry["seconds_1m"] = found["1000000"]["seconds"]
        entry["peak_step_rss_mb"] = found["1000000"]["peak_step_rss_mb"]
        entry["goal_met"] = bool(entry["seconds_1m"] <= SECONDS_1M_TARGET
                                 and entry["peak_step_rss_mb"] <= STEP_RSS_TARGET_MB)
    return entry


SAMPLE_COMPARISON_ROWS, SAMPLE_AUC_GAP = 200_000, 0.005


def bench_scale_sample_200k(home: Path) -> list[dict[str, Any]]:
    """The sample-tuned model against the one tuned on every row, at 200,000 rows."""
    import tempfile

    from loopline.data import checks as input_checks
    from loopline.data import demo as demo_data
    from loopline.data import spec as dataset_spec
    from loopline.data import tables as data
    from loopline.evaluation import metrics as holdout_metrics
    from loopline.model.contract import ServingModel, encode_labels
    from loopline.tuning import budget, training

    frame = demo_data.demo_transactions(SAMPLE_COMPARISON_ROWS, seed=7)
    spec = input_checks.build_spec(frame, target=demo_data.DEMO_TARGET, ignore_columns=demo_data.DEMO_IGNORE)
    train, validation, holdout = data.split(dataset_spec.conform(frame, spec), spec, settings=data.SplitSettings())
    labels = encode_labels(holdout, spec)
    found: dict[str, Any] = {}
    cap = budget.TUNING_SAMPLE_ROWS
    for name, rows in (("sample", cap), ("every_row", len(frame))):
        budget.TUNING_SAMPLE_ROWS = rows  # the cap tuning_rows reads
        try:
            with tempfile.TemporaryDirectory(prefix="loopline-sample-") as folder:
                started = time.perf_counter()
                result = training.tune_and_train(train, validation, spec, settings=TuningSettings(),
                                                 export_dir=Path(folder) / "m")
                seconds = time.perf_counter() - started
                proba = ServingModel(Path(folder) / "m").predict_frame(holdout)
        finally:
            budget.TUNING_SAMPLE_ROWS = cap
        auc = holdout_metrics.evaluate_predictions(labels, proba, spec.classes).metrics["roc_auc"]
        found[name] = {"holdout_roc_auc": round(auc, 4), "seconds": round(seconds, 1), "rows": result.rows}
    return [sample_entry(found, load_average=round(os.getloadavg()[0], 1))]


def sample_entry(found: dict[str, dict[str, Any]], *, load_average: float) -> dict[str, Any]:
    """The sample-tuned model meets the goal when the one tuned on every row is better by at most
    SAMPLE_AUC_GAP holdout ROC AUC."""
    gap = round(found["every_row"]["holdout_roc_auc"] - found["sample"]["holdout_roc_auc"], 4)
    return {"name": "scale_sample_200k", **found, "auc_gap": gap, "goal_met": bool(gap <= SAMPLE_AUC_GAP),
            "load_average": load_average}


if __name__ == "__main__":  # one step in this process: python -m tools.bench.scale STEP FOLDER OUT
    from loopline.core.logs import setup_logging

    setup_logging()
    metrics = run_step(sys.argv[1], Path(sys.argv[2]))
    Path(sys.argv[3]).write_text(json.dumps({"metrics": metrics, "peak_rss_kb": own_peak_rss_kb()}, default=str))
