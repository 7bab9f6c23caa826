"""The whole loop on one machine: kfp.local, an MLflow SQLite store and a local KServe server.

`loopline run` runs the training pipeline, then the drift monitor on a new batch (which
retrains when the batch drifted), and prints what happened.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loopline import registry
from loopline.core import failures
from loopline.core.errors import StepFailed, one_line
from loopline.core.files import write_text
from loopline.core.logs import quiet_libraries
from loopline.data import checks as input_checks
from loopline.data import tables as data_lib
from loopline.drift.settings import DriftSettings
from loopline.evaluation.metrics import HEADLINE_METRICS
from loopline.local import container_runner
from loopline.local.runguard import ServersOfRun
from loopline.local.runlock import RunLock
from loopline.model.contract import read_metadata
from loopline.ops import domains
from loopline.ops.cluster import ClusterSettings
from loopline.registry import object_store
from loopline.serving import server as serving
from loopline.tuning.study import TuningSettings
from loopline.tuning.training import check_constant_features

log = logging.getLogger("loopline.run")


@dataclass
class TaskResult:
    name: str
    status: str
    output: Any = None
    artifacts: dict[str, dict] = field(default_factory=dict)  # name -> {uri, metadata}
    seconds: float = 0.0  # wall time, from the previous task's end (tasks run one at a time locally)


@dataclass
class PipelineRun:
    pipeline: str
    run_dir: Path
    seconds: float
    tasks: dict[str, TaskResult]

    def task(self, component: str) -> TaskResult | None:
        """The last task of a component in this run (`load-data`, then nested `load-data-2` ...)."""
        matches = [t for n, t in self.tasks.items() if re.fullmatch(rf"{component}(-\d+)?", n)]
        return matches[-1] if matches else None


@dataclass
class LoopSettings:
    home: Path
    data_uri: str
    target: str
    current_uri: str = ""
    ignore_columns: list[str] = field(default_factory=list)
    feature_kinds: dict[str, str] = field(default_factory=dict)
    model_name: str = "loopline-model"
    thresholds: dict[str, Any] | None = None  # None: the training pipeline's DEFAULT_THRESHOLDS
    n_trials: int = TuningSettings.n_trials
    max_epochs: int = TuningSettings.max_epochs
    seed: int = TuningSettings.seed
    drift_share: float = DriftSettings.drift_share
    keep_serving: bool = False
    runner: str = "subprocess"  # "docker": every step in its image (loopline.local.container_runner)
    tracking_uri: str = ""  # MLflow tracking URI; empty: the SQLite store under the home
    deploy_target: str = "local"  # "kserve": an InferenceService through the Kubernetes API ($KUBECONFIG)
    storage_uri: str = ""  # with kserve: the prefix under which each version gets its own URI
    partition_filter: str = ""  # the rows of data_uri the training pipeline reads (`loopline.data.sources`)


def read_run(run_dir: Path, pipeline: str, seconds: float, started: float) -> PipelineRun:
    """Read each task's executor output of a kfp.local run directory, in the order they ran."""
    tasks: dict[str, TaskResult] = {}
    outputs = sorted(run_dir.glob("*/executor_output.json"), key=lambda p: p.stat().st_mtime)
    previous_end = started
    for path in outputs:
        ended = path.stat().st_mtime
        raw = json.loads(path.read_text())
        artifacts = {
            name: {"uri": entry["artifacts"][0].get("uri", ""), "metadata": entry["artifacts"][0].get("metadata", {})}
            for name, entry in raw.get("artifacts", {}).items()
            if entry.get("artifacts")
        }
        tasks[path.parent.name] = TaskResult(
            name=path.parent.name,
            status="SUCCESS",
            output=raw.get("parameterValues", {}).get("Output"),
            artifacts=artifacts,
            seconds=round(max(0.0, ended - previous_end), 2),
        )
        previous_end = ended
    return PipelineRun(pipeline=pipeline, run_dir=run_dir, seconds=seconds, tasks=tasks)


def _init_kfp_local(home: Path, runner=None) -> Path:
    from kfp import local

    root = home / "pipeline_root"
    root.mkdir(parents=True, exist_ok=True)
    # Components run on Loopline's images in a cluster; locally they run in this environment,
    # which holds the same pinned libraries. kfp.local warns about that; it is intended here.
    warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*")
    runner = runner or local.SubprocessRunner(use_venv=False)
    local.init(runner=runner, pipeline_root=str(root.resolve()), raise_on_error=True)
    return root


def _run_pipeline(root: Path, name: str, pipeline, on_pipeline=None, check=None, **arguments) -> PipelineRun:
    if on_pipeline is not None:
        on_pipeline(pipeline)
    before = set(root.iterdir())
    started, wall_started = time.perf_counter(), time.time()
    log.info("running pipeline %s with kfp.local", name)
    failures_file = root.parent / "step_failures.jsonl"
    failures_file.unlink(missing_ok=True)
    os.environ[failures.ENV] = str(failures_file)  # each step's process records the cause of its failure
    try:
        pipeline(**arguments)
    except Exception as exc:
        recorded = failures.last(failures_file)
        new = _new_run_dirs(root, before)
        if check and new and recorded is None:  # a container that failed unnoticed, then a task asked for its outputs
            check(new[-1])
        if isinstance(exc, RuntimeError):  # kfp.local: "Inner task failed"; the cause is the step's
            raise step_failure(name, exc, recorded) from None
        raise
    finally:
        os.environ.pop(failures.ENV, None)
    seconds = time.perf_counter() - started
    new = _new_run_dirs(root, before)
    if not new:
        raise RuntimeError(f"pipeline {name} left no run directory under {root}")
    if check:
        check(new[-1])
    return read_run(new[-1], name, seconds, wall_started)


def _new_run_dirs(root: Path, before: set[Path]) -> list[Path]:
    """The run folders kfp.local made under `root` since `before`, oldest first."""
    return sorted((p for p in set(root.iterdir()) - before if p.is_dir()), key=lambda p: p.stat().st_mtime)


def step_failure(pipeline: str, exc: RuntimeError, recorded: dict | None) -> StepFailed:
    """The one line for a failed step: which step of which pipeline, and its own message."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    named = re.search(r"Inner task failed: '([^']+)'", text)
    step = named.group(1) if named else "a step"
    if recorded is None:
        return StepFailed(f"pipeline {pipeline}: {step} failed: {one_line(exc)}")
    verdict = recorded.get("type") in ("ValidationFailed", "DriftEscalated")
    return StepFailed(f"pipeline {pipeline}: {step} failed: {recorded.get('message', '')}", verdict=verdict)


def run_loop(settings: LoopSettings, *, on_pipeline=None) -> dict[str, Any]:
    """Run training, then the drift monitor; return the summary (also printed by the CLI).
    `on_pipeline(pipeline)` is called with each pipeline before it runs.

    One run per local state folder at a time; whatever ends the run, the model servers it started
    are stopped (but the champion's, with `keep_serving`)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    with RunLock(settings.home), ServersOfRun(settings.home, settings.model_name, keep_serving=settings.keep_serving):
        return _run_loop(settings, on_pipeline)


def _run_loop(settings: LoopSettings, on_pipeline=None) -> dict[str, Any]:
    from loopline.pipelines.drift_monitor import build_drift_monitor
    from loopline.pipelines.training import DEFAULT_THRESHOLDS, build_training

    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    os.environ["LOOPLINE_HOME"] = str(home)
    for uri in (settings.data_uri, settings.current_uri):
        object_store.check_readable(uri)
    # Fail fast, before any model is trained, on settings and data that cannot be used.
    parameters = {**{n: getattr(settings, n) for n in ("n_trials", "max_epochs", "seed", "drift_share", "model_name",
                                                       "deploy_target", "storage_uri", "feature_kinds", "ignore_columns")},
                  "tracking_uri": settings.tracking_uri or registry.local_tracking_uri(home),
                  "thresholds": DEFAULT_THRESHOLDS if settings.thresholds is None else settings.thresholds}
    domains.check(parameters)
    split_settings = data_lib.SplitSettings(feature_kinds=dict(settings.feature_kinds or {}),
                                            ignore_columns=list(settings.ignore_columns or []),
                                            partition_filter=settings.partition_filter)
    spec = data_lib.check_input(settings.data_uri, target=settings.target, settings=split_settings)
    domains.check_data(parameters, [*spec.features, spec.target], f"the features and target of {settings.data_uri}")

    check_constant_features(data_lib.read_table(settings.data_uri, settings.partition_filter), spec, where=settings.data_uri)
    if settings.current_uri:  # the drift monitor compares it with, and retrains on, the same columns
        current = data_lib.check_input(settings.current_uri, target=settings.target,
                                       settings=replace(split_settings, partition_filter=""))
        input_checks.check_same_columns(spec, current, where=settings.current_uri)
    quiet_libraries()
    # Retries are for services in a cluster; on one machine a failure is reported at once.
    training, drift_monitor = build_training(ClusterSettings(retries=0)), build_drift_monitor(ClusterSettings(retries=0))
    if settings.runner == "docker":
        return _run_loop_in_containers(settings, training, drift_monitor, on_pipeline)
    tracking_uri = settings.tracking_uri or registry.local_tracking_uri(home)
    object_store.check_tracking_artifacts(tracking_uri)
    registry.check_store(tracking_uri)  # a corrupt store is found now, not after training
    root = _init_kfp_local(home)
    return _run_pipelines(settings, root, training, drift_monitor, tracking_uri, home, settings.data_uri, settings.current_uri,
                          on_pipeline)


def _run_loop_in_containers(settings: LoopSettings, training, drift_monitor, on_pipeline=None) -> dict[str, Any]:
    """The same loop with kfp.local's DockerRunner; what steps share lives under the pipeline root."""
    home = settings.home
    images = {**container_runner.step_images(training), **container_runner.step_images(drift_monitor)}
    # kfp.local makes each run's and task's folders in this process: the image's user must write them.
    with container_runner.Engine(home / "engine") as engine, container_runner.writable_by_steps():
        engine.check_images(list(images.values()))
        root = home / "pipeline_root"
        shared = container_runner.shared_dir(root)
        tracking_uri = settings.tracking_uri or registry.local_tracking_uri(shared)
        object_store.check_tracking_artifacts(tracking_uri)
        registry.check_store(tracking_uri)
        container_runner.share_store(tracking_uri, shared)
        data_uri = container_runner.visible(settings.data_uri, shared)
        current_uri = container_runner.visible(settings.current_uri, shared)
        _init_kfp_local(home, container_runner.docker_runner())
        summary = _run_pipelines(settings, root, training, drift_monitor, tracking_uri, shared, data_uri, current_uri, on_pipeline,
                                 check=lambda run: container_runner.check_tasks(run, images))
        container_runner.annotate(summary, images, engine.kind)
    write_text(home / "last_run.json", json.dumps(summary, indent=2, default=str))  # masked, as every record
    return summary


def _run_pipelines(settings: LoopSettings, root: Path, training, drift_monitor, tracking_uri: str, local_home: Path,
                   data_uri: str, current_uri: str, on_pipeline=None, check=None) -> dict[str, Any]:
    from loopline.pipelines.training import DEFAULT_THRESHOLDS

    home = settings.home
    common = dict(
        target=settings.target,
        tracking_uri=tracking_uri,
        model_name=settings.model_name,
        thresholds=DEFAULT_THRESHOLDS if settings.thresholds is None else settings.thresholds,
        feature_kinds=settings.feature_kinds,
        ignore_columns=settings.ignore_columns,
        n_trials=settings.n_trials,
        max_epochs=settings.max_epochs,
        seed=settings.seed,
        deploy_target=settings.deploy_target,
        storage_uri=settings.storage_uri,
        local_home=str(local_home),
    )
    rows = {"partition_filter": settings.partition_filter} if settings.partition_filter else {}
    runs = [_run_pipeline(root, "training", training, on_pipeline, check=check, data_uri=data_uri, **rows, **common)]
    if current_uri:
        runs.append(
            _run_pipeline(
                root, "drift_monitor", drift_monitor, on_pipeline, check=check,
                reference_data_uri=data_uri, current_data_uri=current_uri,
                drift_share=settings.drift_share, **common,
            )
        )
    summary = summarize(runs, settings, tracking_uri, local_home)
    write_text(home / "last_run.json", json.dumps(summary, indent=2, default=str))  # masked, as every record
    return summary


def summarize(runs: list[PipelineRun], settings: LoopSettings, tracking_uri: str, local_home: Path | None = None) -> dict[str, Any]:
    summary: dict[str, Any] = {"home": str(settings.home), "tracking_uri": tracking_uri, "pipelines": []}
    for run in runs:
        entry: dict[str, Any] = {"pipeline": run.pipeline, "seconds": round(run.seconds, 1), "run_dir": str(run.run_dir),
                                 "steps": [{"task": t.name, "status": t.status, "output": t.output, "seconds": t.seconds}
                                           for t in run.tasks.values()]}
        drift = run.task("detect-drift")
        if drift:
            entry["drifted"] = bool(drift.output)
            entry["share_drifted"] = drift.artifacts.get("metrics", {}).get("metadata", {}).get("share_drifted")
        evaluate = run.task("evaluate-model")
        if evaluate:
            entry["gate_passed"] = bool(evaluate.output)
            entry["holdout_metrics"] = {
                k: v for k, v in evaluate.artifacts.get("metrics", {}).get("metadata", {}).items()
                if k != "gate_passed" and not k.startswith("champion_")
            }
            entry["gate_report"] = _gate_report(evaluate)
        register = run.task("register-model")
        if register:
            entry["registered_version"] = register.output
        deploy = run.task("deploy-model")
        if deploy:
            entry["rollout"] = deploy.output
            rollout_meta = deploy.artifacts.get("report", {}).get("metadata", {})
            entry["rollout_reason"] = rollout_meta.get("reason", "")
            entry["endpoint"] = rollout_meta.get("endpoint", "")
            manifest_meta = deploy.artifacts.get("manifest", {}).get("metadata", {})
            if settings.deploy_target == "kserve" and manifest_meta.get("name"):  # what the cluster was asked to serve
                entry["inference_service"] = f"{manifest_meta.get('namespace', '')}/{manifest_meta['name']}"
                entry["storage_uri"] = manifest_meta.get("storage_uri", "")
        summary["pipelines"].append(entry)

    try:
        summary["aliases"] = registry.aliases(tracking_uri, settings.model_name)
        summary["versions"] = registry.versions(tracking_uri, settings.model_name)
    except Exception as exc:  # no model registered (gate failed on the first run)
        summary["aliases"] = {}
        summary["versions"] = []
        summary["aliases_error"] = str(exc).splitlines()[0]
    state = serving.read_state(local_home or settings.home, settings.model_name)
    if state and serving.is_alive(state):
        summary["endpoint"] = state.predict_url
        source = settings.current_uri or settings.data_uri
        row = data_lib.read_table(source).head(1)
        features = read_metadata(state.model_dir)["features"]
        row = row[list(features)]
        instance = row.astype(object).where(row.notna(), None).to_dict(orient="records")
        summary["prediction"] = {
            "request": {"instances": instance},
            "response": {"predictions": serving.predict(state, instance)},
            "served_version": state.version,
        }
        if not settings.keep_serving:
            serving.stop_server(state)
            serving.clear_state(local_home or settings.home, settings.model_name)
            summary["server"] = "stopped"
        else:
            summary["server"] = f"serving at {state.predict_url} (pid {state.pid})"
    return summary


def _gate_report(evaluate: TaskResult) -> str:
    """The gate table the evaluation step recorded in its blessing."""
    uri = evaluate.artifacts.get("blessing", {}).get("uri", "")
    if not uri or not Path(uri).is_file():
        return ""
    try:
        return json.loads(Path(uri).read_text()).get("gate_report", "")
    except (OSError, json.JSONDecodeError):
        return ""


# Lineage tags shown in the summary (the gate report and metrics are shown above it).
LINEAGE_SHOWN = (
    registry.TAG_DATA_URI, registry.TAG_DATA_SHA256, registry.TAG_HOLDOUT_SHA256, registry.TAG_PIPELINE_NAME,
    registry.TAG_PIPELINE_RUN, registry.TAG_PIPELINE_RUN_ID, registry.TAG_GIT_COMMIT, registry.TAG_GATE_CHAMPION,
    registry.TAG_HYPERPARAMETERS, f"{registry.TAG_IMAGE_PREFIX}trainer",
)


def format_summary(summary: dict[str, Any]) -> str:
    lines = ["", "=" * 78, "Loopline run summary", "=" * 78]
    for entry in summary["pipelines"]:
        # each step's line was printed as it ended (loopline.local.console)
        lines.append(f"\n[{entry['pipeline']}] {entry['seconds']}s  ({entry['run_dir']})")
        for step in entry["steps"]:  # a containerized run: which image ran each step
            if step.get("image"):
                lines.append(f"  {step['task']:<16} ran in [{step['image']}]")
        if "drifted" in entry:
            share = entry.get("share_drifted")
            share_text = f"{share:.0%}" if isinstance(share, (int, float)) else "?"
            lines.append(f"  drift: {share_text} of features drifted -> {'DRIFTED, retraining' if entry['drifted'] else 'no drift'}")
        if "holdout_metrics" in entry:
            shown = {k: entry["holdout_metrics"][k] for k in HEADLINE_METRICS if k in entry["holdout_metrics"]}
            metrics = ", ".join(f"{k}={v:.4f}" for k, v in shown.items())
            lines.append(f"  holdout: {metrics}")
            lines.append(f"  gate: {'PASSED' if entry['gate_passed'] else 'FAILED'}")
            if entry.get("gate_report"):
                lines += ["", *(f"    {line}" if line else "" for line in entry["gate_report"].rstrip().splitlines()), ""]
        if "registered_version" in entry:
            lines.append(f"  registered version: {entry['registered_version']}")
        if "rollout" in entry:
            lines.append(f"  rollout: {entry['rollout'].upper().replace('_', ' ')} ({entry['rollout_reason']})")
        if entry.get("inference_service"):
            lines.append(f"  InferenceService {entry['inference_service']}: storageUri {entry['storage_uri']}")
    aliases = summary.get("aliases") or {}
    lines.append("\nregistry aliases: " + (", ".join(f"{k} -> v{v}" for k, v in sorted(aliases.items())) or "none"))
    for version in summary.get("versions") or []:
        named = f" ({', '.join(version['aliases'])})" if version["aliases"] else ""
        lines.append(f"  v{version['version']}{named}: {version['tags'].get(registry.TAG_PIPELINE_RUN, '')}")
    champion = next((v for v in summary.get("versions") or [] if "champion" in v["aliases"]), None)
    if champion:
        lines.append(f"champion v{champion['version']} lineage:")
        for key in LINEAGE_SHOWN:
            if key in champion["tags"]:
                value = champion["tags"][key]
                lines.append(f"  {key}: {value if len(value) <= 100 else value[:97] + '...'}")
    if "prediction" in summary:
        p = summary["prediction"]
        lines.append(f"endpoint: {summary['endpoint']} (serving v{p['served_version']})")
        lines.append(f"  request:  {json.dumps(p['request'])}")
        lines.append(f"  response: {json.dumps(p['response'])}")
        lines.append(f"server: {summary.get('server')}")
    lines.append(f"MLflow: {summary['tracking_uri']}   (mlflow ui --backend-store-uri {summary['tracking_uri']})")
    return "\n".join(lines)
