"""Loopline's KFP components, one folder each (`component.py`, `README.md`).

Importing this package imports only `kfp` and the standard library.
"""

from .batch_predict import batch_predict
from .check_drift_escalation import check_drift_escalation
from .deploy_model import deploy_model
from .detect_drift import detect_drift
from .evaluate_model import evaluate_model
from .load_data import load_data
from .load_traffic import load_traffic
from .register_model import register_model
from .train_model import train_model
from .trigger_training import trigger_training
from .tune_model import tune_model
from .validate_data import validate_data

__all__ = [
    "load_data",
    "validate_data",
    "tune_model",
    "train_model",
    "evaluate_model",
    "register_model",
    "deploy_model",
    "detect_drift",
    "check_drift_escalation",
    "trigger_training",
    "batch_predict",
    "load_traffic",
]
