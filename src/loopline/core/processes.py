"""Ending a process that was started in its own session (`start_new_session=True`): the process
and every process it started. Standard library only."""

from __future__ import annotations

import os
import signal
import subprocess
import time


def stop_group(process: subprocess.Popen, *, grace: float = 20.0, wait_for_group: bool = False) -> None:
    """SIGTERM to the process group led by `process`; SIGKILL after `grace` seconds. With
    `wait_for_group`, also wait (up to `grace` again) until every member has exited, since a
    server's workers may outlive it for a moment and hold its port. A group that is gone already
    is not an error."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        process.poll()
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill(process.pid)
        process.wait(timeout=10)
    if wait_for_group and not _group_gone(process.pid, grace):
        _kill(process.pid)
        _group_gone(process.pid, 10.0)


def _group_gone(pgid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _kill(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
