"""Headless Chromium for tests that look at a page as a person would (Debian's `chromium`)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# The network is not needed; these keep Chromium from reaching for it.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str:
    """The browser's path; the test is skipped, saying why, where none is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium here: install Debian's `chromium` package to run the browser tests")


def _run(args: list[str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="loopline-chromium-") as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=180)


def dump_dom(page: Path) -> str:
    """The DOM Chromium built from the page, serialised."""
    result = _run(["--dump-dom", page.resolve().as_uri()])
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def screenshot(page: Path, png: Path, *, width: int = 1200, height: int = 3000) -> Path:
    result = _run([f"--window-size={width},{height}", f"--screenshot={png}", page.resolve().as_uri()])
    assert result.returncode == 0 and png.is_file(), result.stderr[-2000:]
    return png


def pixels_of(png: Path, colour: str, *, tolerance: int = 12) -> int:
    """How many pixels of the screenshot have (nearly) this colour, e.g. "#1c7ed6"."""
    from PIL import Image

    want = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    image = Image.open(png).convert("RGB")
    return sum(
        count for count, rgb in image.getcolors(maxcolors=image.width * image.height)
        if all(abs(a - b) <= tolerance for a, b in zip(rgb, want, strict=True))
    )
