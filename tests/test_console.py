"""The terminal of a local run and its record, on a small real kfp.local pipeline: one step that
reports progress and prints what nobody needs to read, one that fails."""


import io
import json
import re

import pytest
from kfp import dsl

from loopline.core import progress
from loopline.local import console, runpage
from loopline.local import records as localruns
from loopline.local.terminal import Terminal, use_color

from .browser import dump_dom


@dsl.component(base_image="python:3.11")
def count_things(n: int, metrics: dsl.Output[dsl.Metrics]) -> int:
    import logging
    import sys

    logging.basicConfig(stream=sys.stdout, level=logging.INFO)
    from loopline.core import progress

    for i in range(n + 1):
        progress.report("things counted", i, n)
    print("NOISE: a line for the log only")
    metrics.log_metric("counted", n)
    return n


@dsl.component(base_image="python:3.11")
def share_things(n: int) -> float:
    if n > 2:
        raise ValueError(f"cannot share {n} things between two")
    return n / 2


@dsl.pipeline(name="things")
def things(n: int = 2):
    counted = count_things(n=n)
    share_things(n=counted.outputs["Output"])


def run_things(tmp_path, n: int, *, verbose: bool = False):
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"), raise_on_error=True)
    terminal = io.StringIO()
    error = None

    def run(on_pipeline):
        on_pipeline(things)
        things(n=n)
        return {}

    try:
        console.run_and_report(run, home=tmp_path / "home", command=f"things {n}", terminal=terminal, verbose=verbose)
    except RuntimeError as exc:
        error = exc
    (record,) = localruns.list_runs(tmp_path / "home")
    return terminal.getvalue(), error, record


def test_a_person_reads_a_line_per_step_and_the_log_keeps_the_rest(tmp_path):
    shown, error, record = run_things(tmp_path, 2)
    assert error is None
    lines = shown.splitlines()
    assert lines[0] == f"Loopline run {record.id}   log: {record.log_path}"
    step_lines = [line for line in lines if re.match(r"  \S+ (count-things|share-things) ", line)]
    assert [(line.split()[1], line.split()[2] == "started") for line in step_lines] == [
        ("count-things", True), ("count-things", False), ("share-things", True), ("share-things", False)]
    assert re.fullmatch(r"\d+\.\ds", step_lines[1].split()[2])
    assert step_lines[1].endswith("-> 2") and step_lines[3].endswith("-> 1.0")
    # kfp.local's own output, the executor input and the step's prints are in the log only
    log = record.log_path.read_text()
    for quiet in ("NOISE: a line for the log only", "executor_input", "Executing task"):
        assert quiet in log and quiet not in shown
    assert "[loopline progress] things counted 2/2" in log
    # the record: both steps with their inputs, outputs and times
    assert record.status == "SUCCESS" and [s.status for s in record.steps] == ["SUCCESS", "SUCCESS"]
    count, share = record.steps
    assert count.inputs["parameters"] == {"n": 2} and count.output_types == {"metrics": "system.Metrics"}
    assert localruns.read_outputs(count.output_file)["artifacts"]["metrics"]["metadata"] == {"counted": 2}
    assert share.started >= count.ended and record.pipelines[0].name == "things"
    assert record.spec_path("things").is_file()
    # and the page
    assert f"run page: {record.page_path}" in shown and record.page_path.is_file()


def test_a_failed_step_prints_its_cause_and_the_log(tmp_path):
    shown, error, record = run_things(tmp_path, 3)
    (failed,) = [line for line in shown.splitlines() if "share-things" in line and "started" not in line]
    assert failed.endswith("ValueError: cannot share 3 things between two")
    assert str(error) == f"step share-things failed: ValueError: cannot share 3 things between two (the full log: {record.log_path})"
    assert record.status == "FAILURE" and record.steps[-1].status == "FAILURE"
    assert "Traceback" in record.log_path.read_text() and "Traceback" not in shown


def test_the_page_of_a_failed_run_shows_the_failure_in_a_browser(tmp_path):
    _, _, record = run_things(tmp_path, 3)
    dom = dump_dom(record.page_path)
    assert 'data-task="share-things" data-status="FAILURE"' in dom
    assert "cannot share 3 things between two" in dom


def test_verbose_streams_the_whole_log(tmp_path):
    shown, error, record = run_things(tmp_path, 2, verbose=True)
    assert error is None
    log = record.log_path.read_text()
    assert "NOISE: a line for the log only" in shown and "Got executor_input:" in shown
    # every line of the log, in order, then where the page and the log are
    assert shown.index(log.splitlines()[0]) < shown.index(log.splitlines()[-1]) < shown.index("run page:")
    assert record.status == "SUCCESS" and [s.task for s in record.steps] == ["count-things", "share-things"]


def test_progress_lines_become_a_bar_on_a_terminal(tmp_path):
    """The log of a real run, replayed into a terminal that redraws its live line."""
    _, _, record = run_things(tmp_path, 2)
    screen = io.StringIO()
    terminal = Terminal(screen, color=False, live=True, unicode=True)
    replay = localruns.RunRecord(id="replay", folder=str(tmp_path / "replay"), started=0.0)
    (tmp_path / "replay").mkdir()
    tracker = console.StepTracker(replay, terminal)
    for line in record.log_path.read_text().splitlines(keepends=True):
        tracker.feed(line)
    drawn = screen.getvalue()
    assert "[████████████████████████] things counted 2/2" in drawn
    assert "[████████████░░░░░░░░░░░░] things counted 1/2" in drawn
    # only the finished lines stay: the live line is cleared before each
    finished = [part for part in re.split(r"\r\x1b\[2K", drawn) if part.endswith("\n")]
    assert any(part.startswith("  ✓ count-things") for part in finished)


def test_colours_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_color(Tty()) and not use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Tty())


def test_progress_lines_are_recognised_where_loggers_put_them():
    line = "    [KFP Executor 2026-11-29 02:30:26,140 INFO]: [loopline progress] tuning trials 3/4"
    assert progress.parse(line) == progress.Progress("tuning trials", 3, 4)
    assert progress.parse("trial 3 of 4: validation roc_auc 0.8652") is None


def test_loopline_runs_lists_the_runs_and_their_pages(tmp_path, capsys):
    from loopline.cli.app import main

    home = tmp_path / "home"
    assert main(["runs", "--home", str(home)]) == 0
    assert "no runs" in capsys.readouterr().out
    older = localruns.new_run(home, command="loopline run")
    older.status, older.ended = "FAILURE", older.started + 3
    older.save()
    newer = localruns.new_run(home, command="loopline run")
    newer.status, newer.ended = "SUCCESS", newer.started + 200
    newer.save()
    runpage.write(newer)
    assert main(["runs", "--home", str(home)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:2] == [newer.id, "success"] and out[1].endswith(str(newer.page_path))
    assert out[2].split()[:2] == [older.id, "failure"] and out[2].endswith("(no page)")
    assert json.loads(newer.path.joinpath("run.json").read_text())["status"] == "SUCCESS"


@pytest.mark.parametrize("status", ["SUCCESS", "FAILURE"])
def test_the_page_needs_no_network(tmp_path, status):
    shown, _, record = run_things(tmp_path, 2 if status == "SUCCESS" else 3)
    page = record.page_path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page
    assert "@import" not in page
    assert not re.search(r"""url\(\s*['"]?(?!#)""", page)  # only references within the page


def test_the_cause_is_the_exception_the_step_ended_with(tmp_path):
    """A chained exception with a message of two lines, as kfp.local streams it."""
    record = localruns.RunRecord(id="r", folder=str(tmp_path), started=0.0)
    tracker = console.StepTracker(record, Terminal(io.StringIO(), color=False, live=False))
    streamed = [
        "Running pipeline: 'p'",
        "Executing task 'validate-data'",
        "    Traceback (most recent call last):",
        '      File "x.py", line 1, in <module>',
        "    KeyError: 'rows'",
        "    ",
        "    During handling of the above exception, another exception occurred:",
        "    ",
        "    Traceback (most recent call last):",
        '      File "x.py", line 3, in <module>',
        "    loopline.core.errors.ValidationFailed: data validation failed (block): 2 critical failures",
        "    columns: amount, hour",
    ]
    for line in streamed:
        tracker.feed(line + "\n")
    tracker.finish(failed=True)
    (step,) = record.steps
    assert step.status == "FAILURE"
    assert step.cause == "ValidationFailed: data validation failed (block): 2 critical failures"
