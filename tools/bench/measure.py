"""What the benchmarks share: timing with peak memory, the bench.json file and the printed table."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class PeakMemory:
    """Peak resident memory above the starting point while the block runs (sampled every 20 ms)."""

    def __enter__(self) -> PeakMemory:
        import ctypes

        import psutil

        try:  # hand memory freed by earlier steps back to the OS, so that the start is honest
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass

        self._process = psutil.Process()
        self.start = self._process.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def mb(self) -> float:
        return round((self.peak - self.start) / 2**20, 1)

def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, peak MB above the start)."""
    with PeakMemory() as memory:
        started = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - started
    return value, round(seconds, 3), memory.mb

def write(entries: list[dict[str, Any]], path: Path) -> None:
    existing = json.loads(path.read_text()) if path.is_file() else []
    names = {e["name"] for e in entries}
    merged = [e for e in existing if e.get("name") not in names] + entries
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=2))

def table(entries: list[dict[str, Any]]) -> str:
    lines = [f"{'benchmark':<24} {'figure':<34} {'value':>14}", "-" * 74]
    for entry in entries:
        for key, value in entry.items():
            if key == "name":
                continue
            if isinstance(value, dict):
                for sub, v in value.items():
                    lines.append(f"{entry['name']:<24} {key + '.' + sub:<34} {v!s:>14}")
            else:
                lines.append(f"{entry['name']:<24} {key:<34} {value!s:>14}")
    return "\n".join(lines)
