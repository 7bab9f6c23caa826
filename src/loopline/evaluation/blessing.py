"""The blessing: the gate's verdict bound to the exact model and holdout it judged.

The evaluation step writes it (a small JSON file, the `blessing` artifact); registration reads it
back and refuses a model that is not blessed, or whose blessing was issued for another model
(URI or content) or another holdout.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from loopline.core.errors import BlessingError

FORMAT = "loopline.evaluation.blessing/v1"


def directory_sha256(path: str | Path) -> str:
    """SHA-256 over a directory's files: relative paths and contents, in a stable order."""
    root = Path(path)
    if not root.is_dir():
        raise BlessingError(f"model directory not found: {path}")
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def write(
    path: str | Path,
    *,
    blessed: bool,
    model_uri: str,
    model_sha256: str,
    holdout_uri: str,
    holdout_sha256: str,
    reason: str,
    metrics: dict[str, float],
    champion: dict[str, Any],
    gate_report: str,
    gate_config: dict[str, Any],
    baseline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    record = {
        "format": FORMAT,
        "blessed": bool(blessed),
        "model_uri": model_uri,
        "model_sha256": model_sha256,
        "holdout_uri": holdout_uri,
        "holdout_sha256": holdout_sha256,
        "reason": reason,
        "metrics": metrics,
        "champion": champion,
        "baseline": baseline,
        "gate_report": gate_report,
        "gate_config": gate_config,
        "judged_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
    return record


def read(path: str | Path) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise BlessingError(f"no blessing at {path}: the model was not judged by the evaluation gate")
    try:
        record = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BlessingError(f"the blessing at {path} is not readable JSON: {exc}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise BlessingError(f"{path} is not a Loopline blessing (format {FORMAT})")
    return record


def verify(record: dict[str, Any], *, model_uri: str, model_sha256: str, holdout_sha256: str) -> None:
    """Raise BlessingError unless the blessing is positive and names exactly this model and holdout."""
    if record.get("blessed") is not True:
        raise BlessingError(f"the model was not blessed by the evaluation gate ({record.get('reason', 'no reason')}); nothing registered")
    if record.get("model_uri") != model_uri:
        raise BlessingError(
            f"the blessing was issued for model {record.get('model_uri')!r}, not {model_uri!r}; nothing registered"
        )
    if record.get("model_sha256") != model_sha256:
        raise BlessingError(
            f"the model at {model_uri} changed since it was judged (content SHA-256 differs); nothing registered"
        )
    if record.get("holdout_sha256") != holdout_sha256:
        raise BlessingError(
            "the blessing was issued on another holdout (holdout SHA-256 differs); nothing registered"
        )
