"""What a person sees of `loopline run`: a line per step as it starts and as it ends, a progress
bar on a long step, and the summary. Everything else goes to the run's log.

`RunConsole` points this process's standard output and error (file descriptors 1 and 2) at the
run's log for the duration of the run: kfp.local prints each task's streamed output there, the
library logs there, TensorFlow's native messages land there too, whatever runner runs the steps.
A thread follows the log as it grows and recognises kfp.local's task lines, the executor input of
each task, a failed task's exception and the progress lines steps write (`loopline.core.progress`);
`loopline.local.terminal` draws the lines.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from loopline.core import progress
from loopline.core.masking import mask_file
from loopline.local import records as localruns
from loopline.local import runpage
from loopline.local.terminal import ANSI, Terminal, isatty, use_color

_PIPELINE_START = re.compile(r"Running pipeline: '(?P<name>[^']+)'")
_PIPELINE_END = re.compile(r"Pipeline '(?P<name>[^']+)' finished with status (?P<status>[A-Z]+)")
_TASK_START = re.compile(r"Executing task '(?P<task>[^']+)'")
_TASK_END = re.compile(r"Task '(?P<task>[^']+)' finished with status (?P<status>[A-Z]+)")
_EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w.]*(Error|Exception|Failed|Escalated|Exit|Interrupt|Warning)?)(: (?P<message>.*))?$")
_EXECUTOR_INPUT = "Got executor_input:"
# kfp.local indents a task's streamed output by four spaces
_STREAM_INDENT = "    "


class StepTracker:
    """Turns the run log's lines into the run record and the lines a person reads."""

    def __init__(self, record: localruns.RunRecord, terminal: Terminal, *, verbose: bool = False):
        self.record = record
        self.terminal = terminal
        self.verbose = verbose
        self.current: localruns.StepRecord | None = None
        self.pipeline: localruns.PipelineRecord | None = None
        self._input_lines: list[str] | None = None
        self._traceback = False
        self._progress: progress.Progress | None = None
        self._progress_at = 0.0
        self._lock = threading.Lock()

    # -- lines ---------------------------------------------------------------------------------

    def feed(self, raw: str) -> None:
        with self._lock:
            if self.verbose:
                self.terminal.line(raw.rstrip("\n"))
            line = ANSI.sub("", raw.rstrip("\n"))
            if self._input_lines is not None:
                self._collect_input(line)
                return
            if (match := _TASK_START.search(line)) and not line.startswith(_STREAM_INDENT):
                self._step_started(match["task"])
            elif (match := _TASK_END.search(line)) and not line.startswith(_STREAM_INDENT):
                self._step_ended(match["task"], match["status"])
            elif (match := _PIPELINE_START.search(line)) and not line.startswith(_STREAM_INDENT):
                self._pipeline_started(match["name"])
            elif (match := _PIPELINE_END.search(line)) and not line.startswith(_STREAM_INDENT):
                self._pipeline_ended(match["name"], match["status"])
            elif self.current is not None:
                self._step_line(line[len(_STREAM_INDENT):] if line.startswith(_STREAM_INDENT) else line)

    def tick(self) -> None:
        """Redraw the live line (elapsed time) about once a second."""
        with self._lock:
            if self.current is not None and not self.verbose and time.monotonic() - self._progress_at >= 1.0:
                self._draw_live()

    def finish(self, failed: bool) -> None:
        """The run is over: a step still running failed (kfp.local raised instead of logging its
        end) or was stopped."""
        with self._lock:
            self._input_lines = None
            if self.current is not None:
                if not self.current.cause:
                    self.current.cause = "the step exited with an error (no exception was printed)" if failed else "stopped"
                self._step_ended(self.current.task, "FAILURE")
            if self.pipeline is not None and self.pipeline.status == "RUNNING":
                self.pipeline.ended, self.pipeline.status = time.time(), "FAILURE" if failed else "SUCCESS"
            self.record.save()

    # -- events --------------------------------------------------------------------------------

    def _pipeline_started(self, name: str) -> None:
        self.pipeline = localruns.PipelineRecord(name=name, started=time.time())
        self.record.pipelines.append(self.pipeline)
        if not self.verbose:
            title = localruns.PIPELINE_TITLES.get(name, name)
            self.terminal.line("")
            self.terminal.line(self.terminal.paint(f"{title} pipeline ({name})", Terminal.BOLD))
        self.record.save()

    def _pipeline_ended(self, name: str, status: str) -> None:
        if self.pipeline is not None and self.pipeline.name == name:
            self.pipeline.ended, self.pipeline.status = time.time(), status
        self.record.save()

    def _step_started(self, task: str) -> None:
        pipeline = self.pipeline.name if self.pipeline else ""
        self.current = localruns.StepRecord(pipeline=pipeline, task=task, started=time.time())
        self.record.steps.append(self.current)
        self._traceback = False
        self._progress = None
        if not self.verbose:
            if self.terminal.live_lines:
                self._draw_live()
            else:
                self.terminal.line(f"  {self.terminal.mark('RUNNING')} {task:<24} started")
        self.record.save()

    def _step_ended(self, task: str, status: str) -> None:
        step = self.current if self.current is not None and self.current.task == task else None
        if step is None:
            return
        step.ended, step.status = time.time(), status
        if step.output_file:
            outputs = localruns.read_outputs(step.output_file)
            if self.pipeline is not None and not self.pipeline.run_dir:
                self.pipeline.run_dir = str(Path(step.output_file).parent.parent)
            if status == "SUCCESS":
                step.headline = localruns.headline(step.component, outputs)
        if status != "SUCCESS" and not step.cause:
            step.cause = "the step exited with an error (no exception was printed)"
        self.current = None
        if not self.verbose:
            text = step.headline if status == "SUCCESS" else self.terminal.paint(step.cause, Terminal.RED)
            self.terminal.line(f"  {self.terminal.mark(status)} {task:<24} {step.seconds:>6.1f}s  {text}".rstrip())
        self.record.save()

    def _step_line(self, line: str) -> None:
        step = self.current
        if _EXECUTOR_INPUT in line:
            self._input_lines = []
            return
        if (found := progress.parse(line)) is not None:
            self._progress = found
            if not self.verbose:
                self._draw_live()
            return
        if line.startswith("Traceback (most recent call last):"):
            self._traceback = True
            return
        if self._traceback and line and not line[0].isspace():
            match = _EXCEPTION.match(line)
            if match and ("." in match["type"] or match["message"] is not None):
                kind = match["type"].rsplit(".", 1)[-1]
                step.cause = f"{kind}: {match['message']}" if match["message"] else kind
                self._traceback = False  # what follows is the message's other lines, or the next traceback

    def _collect_input(self, line: str) -> None:
        """kfp's executor logs the task's executor input as indented JSON; keep its inputs."""
        text = line[len(_STREAM_INDENT):] if line.startswith(_STREAM_INDENT) else line
        if text.startswith("[KFP Executor") or len(self._input_lines) > 100_000:
            self._input_lines = None  # not the JSON expected; leave it
            self._step_line(text)
            return
        self._input_lines.append(text)
        if text != "}":
            return
        try:
            executor_input = json.loads("\n".join(self._input_lines))
        except ValueError:
            return
        self._input_lines = None
        if self.current is not None:
            _keep_inputs(self.current, executor_input)

    def _draw_live(self) -> None:
        step = self.current
        if step is None or not self.terminal.live_lines:
            return
        self._progress_at = time.monotonic()
        text = f"  {self.terminal.mark('RUNNING')} {step.task:<24} {step.seconds:>6.0f}s"
        if self._progress is not None and self._progress.total:
            p = self._progress
            text += f"  {self.terminal.bar(p.done, p.total)} {p.what} {p.done}/{p.total}"
        self.terminal.live(text)


def _keep_inputs(step: localruns.StepRecord, executor_input: dict[str, Any]) -> None:
    inputs = executor_input.get("inputs", {})
    step.inputs = {
        "parameters": inputs.get("parameterValues", {}),
        "artifacts": {
            name: {"uri": entry["artifacts"][0].get("uri", ""), "metadata": entry["artifacts"][0].get("metadata", {}),
                   "type": entry["artifacts"][0].get("type", {}).get("schemaTitle", "")}
            for name, entry in inputs.get("artifacts", {}).items() if entry.get("artifacts")
        },
    }
    outputs = executor_input.get("outputs", {})
    step.output_file = outputs.get("outputFile", "")
    step.output_types = {
        name: entry["artifacts"][0].get("type", {}).get("schemaTitle", "")
        for name, entry in outputs.get("artifacts", {}).items() if entry.get("artifacts")
    }


class _Follower(threading.Thread):
    """Reads the log as it grows and hands every whole line to the tracker."""

    def __init__(self, path: Path, tracker: StepTracker, poll: float = 0.1):
        super().__init__(name="loopline-log-follower", daemon=True)
        self.path, self.tracker, self.poll = path, tracker, poll
        self._stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as log:
                pending = ""
                while True:
                    chunk = log.readline()
                    if chunk:
                        pending += chunk
                        if pending.endswith("\n"):
                            self.tracker.feed(pending)
                            pending = ""
                        continue
                    if self._stop_event.is_set():  # the writers are done and everything is read
                        if pending:
                            self.tracker.feed(pending)
                        return
                    self.tracker.tick()
                    self._stop_event.wait(self.poll)
        except BaseException as exc:  # noqa: BLE001 - reported by RunConsole.__exit__
            self.error = exc

    def finish(self) -> None:
        self._stop_event.set()
        self.join()


class RunConsole:
    """For the duration of a local run: fds 1 and 2 into the run's log, a person's view of the
    steps on the terminal (or every log line with `verbose`), the record kept up to date."""

    def __init__(self, home: Path, *, verbose: bool = False, terminal: IO[str] | None = None, command: str = ""):
        self.home = Path(home)
        self.verbose = verbose
        self._terminal_stream = terminal
        self.command = command
        self.record: localruns.RunRecord | None = None
        self.terminal: Terminal | None = None
        self._saved: tuple[int, int] | None = None
        self._follower: _Follower | None = None

    def __enter__(self) -> RunConsole:
        self.record = localruns.new_run(self.home, command=self.command)
        stream = self._terminal_stream or sys.stdout
        sys.stdout.flush()
        sys.stderr.flush()
        # The terminal keeps its own descriptor; 1 and 2 now write to the log.
        self._saved = (os.dup(1), os.dup(2))
        if self._terminal_stream is None:
            stream = open(os.dup(self._saved[0]), "w", buffering=1, encoding=sys.stdout.encoding or "utf-8",  # noqa: SIM115
                          errors="replace", closefd=True)
            self._own_stream = stream
        else:
            self._own_stream = None
        self.terminal = Terminal(stream, color=use_color(sys.stdout) if self._terminal_stream is None else None,
                                 live=isatty(sys.stdout) if self._terminal_stream is None else None)
        log_fd = os.open(self.record.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        # Python's own streams too (they may not be fds 1 and 2, e.g. under a test runner), line
        # by line so that the log follows the run as it goes.
        self._streams = sys.stdout, sys.stderr
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        tracker = StepTracker(self.record, self.terminal, verbose=self.verbose)
        self._follower = _Follower(self.record.log_path, tracker)
        self._follower.start()
        self.terminal.line(f"Loopline run {self.record.id}   log: {self.record.log_path}")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self._follower.finish()
        self._follower.tracker.finish(failed=exc_type is not None)
        sys.stdout.close()
        sys.stderr.close()
        sys.stdout, sys.stderr = self._streams
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        if self._own_stream is not None:
            self.terminal.stream.flush()
            self._own_stream.close()
            self.terminal.stream = sys.stdout
        mask_file(self.record.log_path)  # the steps wrote to it unfiltered; what is kept has no credentials
        record = self.record
        record.ended = time.time()
        record.status = "SUCCESS" if exc_type is None else "FAILURE"
        if exc is not None:
            record.error = self.failure_line(exc)
        record.save()
        if self._follower.error is not None:  # the run itself went on; say why its lines are missing
            self.terminal.line(f"loopline: the terminal view stopped: {self._follower.error!r}")

    def failure_line(self, exc: BaseException) -> str:
        """One line: the failed step and its cause, else the exception's first line."""
        failed = next((s for s in reversed(self.record.steps) if s.status == "FAILURE"), None)
        if failed is not None:
            return f"step {failed.task} failed: {failed.cause}"
        text = str(exc).strip().splitlines()
        return text[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------


def keep_spec(record: localruns.RunRecord, pipeline) -> None:
    """Keep a pipeline's spec in the run folder: the run page draws its graph from it."""
    from google.protobuf import json_format

    spec = json_format.MessageToDict(pipeline.pipeline_spec)
    path = record.spec_path(spec["pipelineInfo"]["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec))


def run_and_report(run, *, home: Path, verbose: bool = False, command: str = "", summary_text=None,
                   terminal: IO[str] | None = None):
    """Run `run(on_pipeline)` (the local loop) under a RunConsole; then print the summary, write
    the run page and print where it is. A failed step is raised as a RuntimeError of one line:
    the step, its cause and the log's path."""
    session = RunConsole(home, verbose=verbose, command=command, terminal=terminal)
    try:
        with session:
            summary = run(lambda pipeline: keep_spec(session.record, pipeline))
    except BaseException as exc:
        if session.record is None:  # the run folder could not be made
            raise
        _write_page(session)
        if isinstance(exc, RuntimeError):
            raise RuntimeError(f"{session.record.error} (the full log: {session.record.log_path})") from exc
        raise
    session.record.summary = summary if isinstance(summary, dict) else {}
    session.record.save()
    if summary_text is not None:
        session.terminal.line(summary_text(summary))
    _write_page(session)
    return summary


def _write_page(session: RunConsole) -> None:
    try:
        page = runpage.write(session.record)
    except Exception as exc:  # noqa: BLE001 - the run's outcome stands; say why there is no page
        session.terminal.line(f"run page: not written ({type(exc).__name__}: {exc}); the full log: {session.record.log_path}")
        return
    session.terminal.line(f"\nrun page: {page}\nthe full log: {session.record.log_path}")


def runs_table(home: Path) -> str:
    """The past local runs, newest first, with their pages."""
    runs = localruns.list_runs(home)
    if not runs:
        return f"no runs under {localruns.runs_folder(home)} yet: `loopline run` makes one"
    lines = [f"{'run':<18} {'status':<8} {'took':>7}  {'steps':<14} page"]
    for run in runs:
        done = sum(s.status == "SUCCESS" for s in run.steps)
        failed = sum(s.status == "FAILURE" for s in run.steps)
        steps = f"{done} ok" + (f", {failed} failed" if failed else "")
        page = run.page_path if run.page_path.is_file() else "(no page)"
        lines.append(f"{run.id:<18} {run.shown_status.lower():<8} {run.seconds:>6.0f}s  {steps:<14} {page}")
    return "\n".join(lines)
