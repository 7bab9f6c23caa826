"""Benchmarks (`make bench`): print a table and write `.loopline/bench.json`.

`bench.json` is a list of objects, each with a `name` and its figures; a benchmark replaces
its own entry and keeps the others.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from loopline.steps import loopline_home


def bench_local_loop(home: Path) -> list[dict[str, Any]]:
    """Wall time of every step of `loopline run` on the demo data with default settings."""
    from loopline import local
    from loopline.data import DEMO_IGNORE, DEMO_TARGET

    if home.exists():
        shutil.rmtree(home)
    data_uri, current_uri = local.prepare_demo_data(home)
    settings = local.LoopSettings(home=home, data_uri=data_uri, target=DEMO_TARGET, current_uri=current_uri,
                                  ignore_columns=list(DEMO_IGNORE))
    started = time.perf_counter()
    summary = local.run_loop(settings)
    total = time.perf_counter() - started
    entries = []
    for pipeline in summary["pipelines"]:
        entries.append(
            {
                "name": f"local_loop_{pipeline['pipeline']}",
                "seconds": pipeline["seconds"],
                "steps": {step["task"]: step["seconds"] for step in pipeline["steps"]},
            }
        )
    entries.append({"name": "local_loop", "seconds": round(total, 1), "rows": 6000,
                    "pipelines": [p["pipeline"] for p in summary["pipelines"]]})
    return entries


def write(entries: list[dict[str, Any]], path: Path) -> None:
    existing = json.loads(path.read_text()) if path.is_file() else []
    names = {e["name"] for e in entries}
    merged = [e for e in existing if e.get("name") not in names] + entries
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=2))


def table(entries: list[dict[str, Any]]) -> str:
    lines = [f"{'benchmark':<32} {'figure':<24} {'value':>10}", "-" * 68]
    for entry in entries:
        for key, value in entry.items():
            if key == "name":
                continue
            if isinstance(value, dict):
                for sub, v in value.items():
                    lines.append(f"{entry['name']:<32} {key + '.' + sub:<24} {v:>10}")
            else:
                lines.append(f"{entry['name']:<32} {key:<24} {str(value):>10}")
    return "\n".join(lines)


def main() -> int:
    from loopline import steps

    steps.setup_logging()
    home = loopline_home()
    entries = bench_local_loop(home / "bench")
    write(entries, home / "bench.json")
    print(table(entries))
    print(f"\nwritten to {home / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
