"""Progress of a long step, as log lines the local run's terminal recognises.

A step logs `[loopline progress] tuning trials 2/4`; the log keeps it as it is, and
`loopline run` (see `loopline.local.console`) turns it into a progress bar. Only the standard
library here: every layer may report progress.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

log = logging.getLogger("loopline.core.progress")

MARKER = "[loopline progress]"
_PATTERN = re.compile(re.escape(MARKER) + r" (?P<what>.+?) (?P<done>\d+)/(?P<total>\d+)\s*$")


@dataclass(frozen=True)
class Progress:
    what: str
    done: int
    total: int


def report(what: str, done: int, total: int) -> None:
    """Log that `done` of `total` units of `what` (e.g. "tuning trials") are finished."""
    log.info("%s %s %d/%d", MARKER, what, done, total)


def parse(line: str) -> Progress | None:
    """The progress a log line reports, or None."""
    if MARKER not in line:
        return None
    match = _PATTERN.search(line)
    if not match:
        return None
    return Progress(match["what"], int(match["done"]), int(match["total"]))
