"""Where Loopline keeps local state: `.loopline/` (or `$LOOPLINE_HOME`). Standard library only."""

from __future__ import annotations

import os
from pathlib import Path

from loopline.core import names

HOME_ENV = "LOOPLINE_HOME"


def loopline_home(local_home: str = "") -> Path:
    """Where local state lives: the argument, else $LOOPLINE_HOME, else ./.loopline."""
    return Path(local_home or os.environ.get(HOME_ENV) or ".loopline").resolve()


def model_cache_dir(home: Path, model_name: str, version: str) -> Path:
    """Where a registered model version's files are kept on this machine to be served."""
    return names.inside(home, "models", names.model_name(model_name), f"v{version}")
