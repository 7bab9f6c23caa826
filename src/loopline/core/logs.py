"""The one place where Loopline sets up logging: readable step logs, quiet libraries.

Every step (through its component), the tuning worker process and the command line call
`setup_logging()`; library code that talks to a chatty library calls `quiet_libraries()`.
Standard library only.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from loopline.core.masking import install as install_masking

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"
# Libraries whose INFO lines say nothing a Loopline user acts on.
NOISY_LOGGERS = (
    "absl", "tensorflow", "great_expectations", "mlflow", "alembic", "urllib3", "evidently", "numexpr",
    # this module sets its own level to INFO and announces every temporary docs directory
    "great_expectations.data_context.types.base",
)


def quiet_libraries() -> None:
    """Libraries log warnings and errors only; their deprecation and user warnings are hidden;
    TensorFlow's C++ logs, GX analytics and MLflow's progress bars are off."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for category in (UserWarning, DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)


def setup_logging(stream=None) -> None:
    """Readable logs (time, logger, message) at INFO on `stream` (stdout), libraries quiet.
    Inside a KFP task the executor has set up its own handler already; it is kept."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(stream or sys.stdout)
        handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
        root.addHandler(handler)
    for handler in root.handlers:  # every line logged is masked (URL passwords, tokens, secrets)
        install_masking(handler)
    root.setLevel(logging.INFO)
    quiet_libraries()
