"""Loopline's KFP pipelines. Importing this package imports only `kfp` and the standard library."""

from .drift_monitor import drift_monitor
from .training import training

__all__ = ["training", "drift_monitor"]
