"""SIGTERM and SIGHUP handled as Ctrl-C is, by `loopline run` and `loopline serve`.

`timeout`, systemd and Kubernetes end a process with SIGTERM; a closed terminal sends SIGHUP. By
default either ends Python at once, without its `finally` blocks: the model servers a command
started stay listening and a running step goes on by itself. Under `terminated_as_interrupt()`
the first such signal raises `Terminated` (a KeyboardInterrupt) in the main thread, so the same
clean-up as for Ctrl-C runs: servers stopped, running steps ended, the champion unchanged. Further
signals while that clean-up runs are ignored, so that it completes. The command then exits with
128 + the signal's number (143 for SIGTERM, 129 for SIGHUP), as a shell reports it. Standard
library only.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """A termination signal, handled as Ctrl-C is: the command ends, and cleans up."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _Once:
    def __init__(self) -> None:
        self.raised = False

    def __call__(self, signum, frame) -> None:
        if self.raised:  # the clean-up of the first signal is running: let it finish
            return
        self.raised = True
        raise Terminated(signum)


@contextlib.contextmanager
def terminated_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `Terminated` (main thread only; elsewhere the
    block runs as it is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in HANDLED}
    handler = _Once()
    for s in HANDLED:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)
