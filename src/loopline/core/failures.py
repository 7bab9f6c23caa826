"""The one-line cause of a failed step, handed from a step's process to `loopline run`.

kfp.local runs every step in a process of its own and reports a failure as "Inner task failed",
with the cause only inside the task's traceback. When `LOOPLINE_STEP_FAILURES` names a file, a
step that ends with an exception appends its one-line cause there; `loopline run` reads it back.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from loopline.core.errors import describe

ENV = "LOOPLINE_STEP_FAILURES"


def record(exc: BaseException, path: str | os.PathLike | None = None) -> None:
    """Append the one-line cause of `exc` to the failures file (nothing when none is set)."""
    path = path or os.environ.get(ENV)
    if not path:
        return
    entry = {"pid": os.getpid(), "type": type(exc).__name__, "message": describe(exc)}
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
    except OSError:  # reporting must never hide the failure itself
        pass


def install() -> None:
    """Record any exception that ends this process, then let Python report it as usual."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if not issubclass(exc_type, KeyboardInterrupt):
            record(exc)
        previous(exc_type, exc, tb)

    sys.excepthook = hook


def last(path: str | os.PathLike) -> dict | None:
    """The last recorded failure, if any."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return None
