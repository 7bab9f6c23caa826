"""Small file helpers the steps share. Standard library only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loopline.core.masking import mask


def write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path`, creating its folder; credentials masked (Markdown, manifests,
    reports are read by people)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(mask(text), encoding="utf-8")


def json_dump(value: Any) -> str:
    """Compact, key-sorted JSON; values JSON does not know become strings."""
    return json.dumps(value, sort_keys=True, default=str)
