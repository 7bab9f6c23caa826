"""The record of each `loopline run`: a folder under LOOPLINE_HOME/runs/ with the run's log,
its steps (status, times, inputs, outputs), the pipelines' specs and the run page.

    runs/20261129-022803/
        run.log          everything the run printed (kfp.local, the steps, the libraries)
        run.json         the record below
        specs/<pipeline>.json
        files/           copies of the HTML reports the page links to
        index.html       the run page

Only the standard library here; `loopline.local.console` writes the record, `loopline.local.runpage`
renders it.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loopline.core.masking import mask

RUNS = "runs"
# what a person calls each of Loopline's pipelines
PIPELINE_TITLES = {"loopline-training": "training", "loopline-drift-monitor": "drift monitor"}
LOG_FILE = "run.log"
RECORD_FILE = "run.json"
PAGE_FILE = "index.html"


@dataclass
class StepRecord:
    pipeline: str  # the pipeline's name, e.g. loopline-training
    task: str  # kfp.local's task name, e.g. load-data
    started: float  # seconds since the epoch
    ended: float | None = None
    status: str = "RUNNING"  # RUNNING, SUCCESS, FAILURE
    cause: str = ""  # one line, when the step failed
    headline: str = ""  # what the step found, in one line
    output_file: str = ""  # the step's executor_output.json
    inputs: dict[str, Any] = field(default_factory=dict)  # {"parameters": {...}, "artifacts": {name: {uri, metadata}}}
    output_types: dict[str, str] = field(default_factory=dict)  # output artifact name -> schema title

    @property
    def seconds(self) -> float:
        return round(((self.ended or time.time()) - self.started), 1)

    @property
    def component(self) -> str:
        """The component this task ran (nested copies are named load-data-2 ...)."""
        return re.sub(r"-\d+$", "", self.task)


@dataclass
class PipelineRecord:
    name: str
    started: float
    ended: float | None = None
    status: str = "RUNNING"
    run_dir: str = ""  # kfp.local's run directory under the pipeline root


@dataclass
class RunRecord:
    id: str
    folder: str
    started: float
    ended: float | None = None
    status: str = "RUNNING"  # RUNNING, SUCCESS, FAILURE
    error: str = ""
    command: str = ""
    pipelines: list[PipelineRecord] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    pid: int = 0  # the process of `loopline run` that writes this record

    @property
    def shown_status(self) -> str:
        """The status to show: a run still marked running whose process is gone (killed, the
        machine restarted) was interrupted; it is never shown as running."""
        if self.status == "RUNNING" and not _alive(self.pid):
            return "INTERRUPTED"
        return self.status

    @property
    def path(self) -> Path:
        return Path(self.folder)

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    @property
    def page_path(self) -> Path:
        return self.path / PAGE_FILE

    @property
    def seconds(self) -> float:
        return round(((self.ended or time.time()) - self.started), 1)

    def spec_path(self, pipeline: str) -> Path:
        """Where the pipeline's spec (PipelineSpec as JSON) is kept: the page draws its graph."""
        return self.path / "specs" / f"{pipeline}.json"

    def steps_of(self, pipeline: str) -> list[StepRecord]:
        return [s for s in self.steps if s.pipeline == pipeline]

    def save(self) -> None:
        tmp = self.path / f".{RECORD_FILE}.tmp"
        tmp.write_text(mask(json.dumps(asdict(self), indent=1, default=str)))  # no credentials are kept
        os.replace(tmp, self.path / RECORD_FILE)

    @classmethod
    def load(cls, folder: Path) -> RunRecord:
        raw = json.loads((Path(folder) / RECORD_FILE).read_text())
        raw["pipelines"] = [PipelineRecord(**p) for p in raw.get("pipelines", [])]
        raw["steps"] = [StepRecord(**s) for s in raw.get("steps", [])]
        raw["folder"] = str(Path(folder))  # the folder may have moved since
        return cls(**raw)


def runs_folder(home: Path) -> Path:
    return Path(home) / RUNS


def new_run(home: Path, *, command: str = "") -> RunRecord:
    """A new, empty run folder named after the local time it started."""
    root = runs_folder(home)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        run_id = stamp if n == 0 else f"{stamp}-{n}"
        try:
            (root / run_id).mkdir()
            break
        except FileExistsError:
            continue
    else:
        raise RuntimeError(f"cannot make a new run folder under {root}")
    record = RunRecord(id=run_id, folder=str(root / run_id), started=time.time(), command=command, pid=os.getpid())
    record.save()
    return record


def _alive(pid: int) -> bool:
    """Whether `pid` is a running `loopline` process (not a pid reused by another program)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return True  # no /proc: trust the pid
    return state != "Z" and b"loopline" in cmdline


def list_runs(home: Path) -> list[RunRecord]:
    """Every recorded run, newest first (folders without a readable record are left out)."""
    root = runs_folder(home)
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        if (folder / RECORD_FILE).is_file():
            try:
                found.append(RunRecord.load(folder))
            except (OSError, ValueError, TypeError):
                continue
    return sorted(found, key=lambda r: r.started, reverse=True)


# ---------------------------------------------------------------------------------------------
# What a finished step found, in one line.


def read_outputs(output_file: str) -> dict[str, Any]:
    """A step's executor output: {"parameters": {...}, "artifacts": {name: {uri, metadata}}}."""
    try:
        raw = json.loads(Path(output_file).read_text())
    except (OSError, ValueError):
        return {"parameters": {}, "artifacts": {}}
    artifacts = {
        name: {"uri": entry["artifacts"][0].get("uri", ""), "metadata": entry["artifacts"][0].get("metadata", {})}
        for name, entry in raw.get("artifacts", {}).items()
        if entry.get("artifacts")
    }
    return {"parameters": raw.get("parameterValues", {}), "artifacts": artifacts}


def _meta(outputs: dict, name: str) -> dict:
    return outputs["artifacts"].get(name, {}).get("metadata", {}) or {}


def _pct(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else "?"


def headline(component: str, outputs: dict[str, Any]) -> str:
    """The one line a person wants about a finished step: rows, expectations met, best trial,
    gate verdict, version, rollout, drift."""
    out = outputs["parameters"].get("Output")
    try:
        if component == "load-data":
            rows = {n: _meta(outputs, n).get("rows") for n in ("train", "validation", "holdout")}
            return "rows: " + ", ".join(f"{n} {r:,}" for n, r in rows.items() if isinstance(r, int))
        if component == "validate-data":
            m = _meta(outputs, "metrics")
            evaluated, failed = int(m["expectations_evaluated"]), int(m["expectations_failed"])
            outcome = _meta(outputs, "report").get("outcome", "")
            return f"{evaluated - failed}/{evaluated} expectations met on {int(m['rows']):,} rows ({outcome})"
        if component == "train-model":
            m, best = _meta(outputs, "metrics"), _meta(outputs, "best_params")
            objective = best.get("objective", "")
            trial = _best_trial(outputs)
            which = f" (trial #{trial})" if trial is not None else ""
            return (f"best of {int(m['trials'])} trials{which}: validation {objective} {float(best['best_value']):.4f}; "
                    f"final model {int(m['final_epochs'])} epochs")
        if component == "tune-model":
            m = _meta(outputs, "metrics")
            return f"{int(m['trials_run_by_this_worker'])} trials run here; the study holds {int(m['trials_in_study'])}"
        if component == "evaluate-model":
            m = _meta(outputs, "metrics")
            shown = ", ".join(f"{k} {m[k]:.4f}" for k in ("roc_auc", "accuracy") if k in m)
            champion = _meta(outputs, "blessing").get("champion_version") or ""
            against = f" vs champion v{champion}" if champion else " (no champion yet)"
            return f"gate {'PASSED' if out else 'FAILED'}: {shown}{against}"
        if component == "register-model":
            return f"registered version {out} as challenger"
        if component == "deploy-model":
            reason = _meta(outputs, "report").get("reason", "")
            return f"rollout {str(out).upper().replace('_', ' ')}" + (f": {reason}" if reason else "")
        if component == "detect-drift":
            m = _meta(outputs, "metrics")
            verdict = "DRIFTED" if out else "no drift"
            return f"{_pct(m.get('share_drifted'))} of features drifted ({int(m.get('drifted_features', 0))}): {verdict}"
        if component == "check-drift-escalation":
            return "retraining may go ahead" if out else "no retraining"
        if component == "trigger-training":
            return "training run started" if out else "no training run started"
    except (KeyError, TypeError, ValueError):
        pass
    if out is not None:
        return f"-> {out}"
    return ""


def _best_trial(outputs: dict) -> int | None:
    uri = outputs["artifacts"].get("best_params", {}).get("uri", "")
    try:
        return int(json.loads(Path(uri).read_text())["best_trial"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
