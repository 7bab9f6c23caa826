"""Lines for a person on a terminal: colours (only on a terminal, never with NO_COLOR), one live
line redrawn in place (the running step and its progress bar), and the marks of a step's status.
Elsewhere (a file, a pipe, CI) only whole lines are written."""

from __future__ import annotations

import os
import re
import shutil
from typing import IO

from loopline.core.masking import mask

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def use_color(stream: IO[str]) -> bool:
    """Colours only on a terminal, and never with NO_COLOR set (https://no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Terminal:
    """Lines for a person. On a terminal, one live line (the running step and its progress) is
    redrawn in place; elsewhere (a file, a pipe, CI) only whole lines are written."""

    GREEN, RED, YELLOW, DIM, BOLD, RESET = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[2m", "\x1b[1m", "\x1b[0m"

    def __init__(self, stream: IO[str], *, color: bool | None = None, live: bool | None = None,
                 unicode: bool | None = None):
        self.stream = stream
        self.color = use_color(stream) if color is None else color
        is_tty = isatty(stream)
        self.live_lines = is_tty if live is None else live
        encoding = (getattr(stream, "encoding", "") or "").lower().replace("-", "")
        self.unicode = encoding.startswith("utf") if unicode is None else unicode
        self._live_shown = False
        self.lines_written = 0

    def paint(self, text: str, colour: str) -> str:
        return f"{colour}{text}{self.RESET}" if self.color else text

    def width(self) -> int:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, AttributeError, ValueError):
            columns = 0
        if columns < 20:  # unknown (a pseudo-terminal without a size, a stream)
            columns = shutil.get_terminal_size((100, 24)).columns
        return columns if columns >= 20 else 100

    def line(self, text: str = "") -> None:
        self._clear_live()
        self.stream.write(mask(text) + "\n")
        self.stream.flush()
        self.lines_written += text.count("\n") + 1

    def live(self, text: str) -> None:
        if not self.live_lines:
            return
        visible = ANSI.sub("", text)
        room = self.width() - 1
        if len(visible) > room:  # cut the plain text; colours are dropped on a cut line
            text = visible[: max(0, room - 1)] + "…"
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()
        self._live_shown = True

    def _clear_live(self) -> None:
        if self._live_shown:
            self.stream.write("\r\x1b[2K")
            self._live_shown = False

    def bar(self, done: int, total: int, width: int = 24) -> str:
        filled = int(width * done / total) if total else 0
        full, empty = ("█", "░") if self.unicode else ("#", ".")
        return "[" + full * filled + empty * (width - filled) + "]"

    def mark(self, status: str) -> str:
        marks = {"RUNNING": ("▸", ">"), "SUCCESS": ("✓", "ok"), "FAILURE": ("✗", "!!")}
        colours = {"RUNNING": self.DIM, "SUCCESS": self.GREEN, "FAILURE": self.RED}
        symbol = marks[status][0 if self.unicode else 1]
        return self.paint(symbol, colours[status])


def isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
