"""Loopline: Kubeflow Pipelines components for the closed ML loop.

The package is the KFP-free library; `loopline.components` and `loopline.pipelines` hold the
KFP interfaces over it. Importing this module is cheap (no TensorFlow, GX or Evidently).
"""

import os as _os
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("loopline")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]

if _os.environ.get("LOOPLINE_STEP_FAILURES"):  # a step of `loopline run`: hand its failure's cause back
    from loopline.core import failures as _failures

    _failures.install()
