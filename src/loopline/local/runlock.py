"""One `loopline run` per local state folder (LOOPLINE_HOME) at a time.

Two runs on one folder would share its registry, its model servers and its serving state: both
would take the first deployment, and the champion alias would go to whichever wrote last. The
lock is an exclusive `flock` on `<home>/run.lock`, which the operating system releases when the
holder ends in any way; the file names the holder, so that a second run can say who it is.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from loopline.core.errors import LooplineError

LOCK_FILE = "run.lock"


class RunLocked(LooplineError):
    """Another run holds the folder."""


def _describe(holder: dict) -> str:
    if not holder:
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder.get("started", 0)))
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {started}: {holder.get('command', '')}".rstrip(": ")


class RunLock:
    """`with RunLock(home):` holds the folder for one run, or raises RunLocked naming the holder."""

    def __init__(self, home: str | Path, *, what: str = ""):
        self.path = Path(home) / LOCK_FILE
        self.what = what or " ".join(["loopline", *sys.argv[1:2]])
        self._fh = None

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def __enter__(self) -> RunLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held until __exit__
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise RunLocked(
                f"another loopline run is using {self.path.parent} ({_describe(self.holder())}); "
                "wait for it to end, or give this run another --home"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                             "command": self.what}))
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        if self._fh is None:
            return
        try:
            self._fh.seek(0)
            self._fh.truncate()
        finally:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
