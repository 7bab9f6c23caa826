"""Ending a process started in its own session, with the processes it started."""

from __future__ import annotations

import os
import subprocess
import time

from loopline.core.processes import stop_group


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_process_and_its_children_end():
    process = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & wait"], start_new_session=True)
    time.sleep(0.3)
    stop_group(process, wait_for_group=True)
    assert process.returncode is not None and not _group_alive(process.pid)


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace():
    process = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60 & sleep 60 & wait"], start_new_session=True)
    time.sleep(0.3)
    started = time.monotonic()
    stop_group(process, grace=0.5, wait_for_group=True)
    assert process.returncode is not None and not _group_alive(process.pid)
    assert time.monotonic() - started < 10


def test_a_group_that_is_gone_already_is_not_an_error():
    """The process ended by itself and was not reaped yet: stop_group reaps it, with its own exit
    code, not a signal's."""
    process = subprocess.Popen(["sh", "-c", "exit 3"], start_new_session=True)
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # it has exited; still unreaped
    assert process.returncode is None
    stop_group(process, grace=5, wait_for_group=True)
    assert process.returncode == 3 and not _group_alive(process.pid)


def test_a_group_reaped_elsewhere_is_not_an_error():
    """Someone else reaped the process (its pid and group are gone): stop_group returns, and the
    Popen no longer counts as running."""
    process = subprocess.Popen(["sh", "-c", "exit 3"], start_new_session=True)
    os.waitpid(process.pid, 0)  # behind the Popen's back
    assert process.returncode is None
    stop_group(process, grace=5, wait_for_group=True)
    assert process.returncode is not None and not _group_alive(process.pid)
