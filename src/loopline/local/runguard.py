"""What a local run leaves behind when it ends, in any way: no model server it started.

`loopline run` starts model servers from its deploy steps (each step a process of its own).
Every server is recorded from its start until it is stopped (see `serving.start_server`). When
the run ends — success, error, Ctrl-C, SIGTERM or SIGHUP — the steps still running are ended, and every
server the run started is stopped, except the one serving the champion when the user asked to
keep it (`--keep-serving`), which stays recorded where `loopline serve --stop` finds it.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

from loopline.core.signals import Terminated, terminated_as_interrupt
from loopline.serving import server as serving

__all__ = ["ServersOfRun", "Terminated", "child_pids", "end_children"]

log = logging.getLogger(__name__)


def child_pids(pid: int | None = None) -> list[int]:
    """The direct children of `pid` (this process), from /proc."""
    pid = pid or os.getpid()
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def end_children(timeout: float = 20.0, *, spare: set[int] = frozenset()) -> None:
    """Ask this process's children (the running step) to end, and wait for them; kill what remains.
    `spare`: children left alone (model servers, stopped in their own way)."""
    children = [pid for pid in child_pids() if pid not in spare]
    if not children:
        return
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_running(pid) for pid in children):
        time.sleep(0.2)
    for pid in children:
        if _running(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _running(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class ServersOfRun:
    """`with ServersOfRun(home, model_name, keep_serving=...):` around a local run."""

    def __init__(self, home: str | Path, model_name: str, *, keep_serving: bool = False):
        self.home = Path(home)
        self.model_name = model_name
        self.keep_serving = keep_serving
        self._before: set[int] = set()
        self._children_before: set[int] = set()
        self._signals = None

    def __enter__(self) -> ServersOfRun:
        self._before = {info.pid for info in serving.recorded_servers(self.home)}
        self._children_before = set(child_pids())  # not the run's: left alone when it ends
        self._signals = terminated_as_interrupt()  # SIGTERM and SIGHUP end the run as Ctrl-C does
        self._signals.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None:  # a step still running could start a server after the clean-up
                end_children(spare={info.pid for info in serving.recorded_servers(self.home)} | self._children_before)
            self.stop_started(succeeded=exc_type is None)
        finally:
            if self._signals is not None:
                self._signals.__exit__(None, None, None)
                self._signals = None

    def stop_started(self, *, succeeded: bool) -> list[int]:
        """Stop every server this run started, but the serving one when it is to be kept."""
        state = serving.read_state(self.home, self.model_name)
        keep = state.pid if (state and succeeded and self.keep_serving) else None
        stopped = []
        for info in serving.recorded_servers(self.home):
            if info.pid in self._before or info.pid == keep:
                continue
            serving.stop_server(info)
            stopped.append(info.pid)
            if state and state.pid == info.pid:
                serving.clear_state(self.home, self.model_name)
        if state and state.pid not in self._before and state.pid != keep and not serving.is_alive(state):
            serving.clear_state(self.home, self.model_name)  # the run's server, gone already
        if stopped:
            log.info("stopped %d local model server(s) this run had started", len(stopped))
        return stopped
