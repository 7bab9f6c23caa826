"""The MLflow store Loopline talks to: connection, visible retries, experiments, and the pyfunc
packaging of a Loopline SavedModel (its wrapper and signature).

Tuning logs its studies through this module; the registry (`loopline.registry`) registers
versions through it. MLflow is imported where it is used.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pandas as pd

from loopline.errors import LooplineError, RegistryError, one_line

log = logging.getLogger(__name__)

EXPERIMENT = "loopline"
SAVED_MODEL_ARTIFACT = "saved_model"

# MLflow error codes worth another attempt.
TRANSIENT_CODES = {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED", "ABORTED"}

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts in all, and the exponential backoff between them (seconds)."""

    attempts: int = 4
    initial_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0


DEFAULT_RETRY = RetryPolicy()


def _pyfunc_class():
    import mlflow.pyfunc

    class LooplineTFModel(mlflow.pyfunc.PythonModel):
        """Serves the Loopline SavedModel through MLflow's pyfunc interface (probabilities per class)."""

        def load_context(self, context):
            from loopline.model_contract import ServingModel

            self.model = ServingModel(context.artifacts[SAVED_MODEL_ARTIFACT])

        def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
            proba = self.model.predict_frame(pd.DataFrame(model_input))
            return pd.DataFrame(proba, columns=self.model.classes)

    return LooplineTFModel


def _signature(features: dict[str, str], classes: list[str]):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema(
        [ColSpec("double" if kind == "numeric" else "string", name, required=False) for name, kind in features.items()]
    )
    outputs = Schema([ColSpec("double", str(c)) for c in classes])
    return ModelSignature(inputs=inputs, outputs=outputs)


def safe_uri(uri: str) -> str:
    """The URI without credentials, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return uri


def connect(tracking_uri: str):
    import mlflow
    from mlflow import MlflowClient

    if not tracking_uri:
        raise LooplineError("tracking_uri is empty: give the MLflow tracking server URI or a sqlite:/// path")
    # Loopline's RetryPolicy retries, visibly; MLflow's client would otherwise retry silently for
    # minutes before the first error reaches it.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    mlflow.set_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def is_transient(exc: BaseException) -> bool:
    """Connection problems, timeouts, server errors and rate limits; not bad requests."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, MlflowException):
        text = str(exc)
        return (
            exc.error_code in TRANSIENT_CODES
            or text.startswith("API request to")
            or "database is locked" in text
        )
    return False


def with_retries(fn: Callable[[], T], *, what: str, tracking_uri: str, retry: RetryPolicy | None = None) -> T:
    """Run `fn`, retrying transient registry errors with exponential backoff."""
    retry = retry or DEFAULT_RETRY
    delay = retry.initial_delay
    for attempt in range(1, max(1, retry.attempts) + 1):
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            reason = one_line(exc, 300)
            if attempt >= retry.attempts:
                raise RegistryError(
                    f"{what} did not complete: the MLflow registry at {safe_uri(tracking_uri)} is still unavailable "
                    f"after {attempt} attempts ({reason}); the champion alias was not touched"
                ) from None
            log.warning(
                "%s: registry unavailable (attempt %d/%d: %s); retrying in %.1fs",
                what, attempt, retry.attempts, reason, delay,
            )
            time.sleep(delay)
            delay = min(delay * retry.factor, retry.max_delay)
    raise AssertionError("unreachable")  # pragma: no cover


def ensure_experiment(client, tracking_uri: str, name: str = EXPERIMENT) -> str:
    """The id of the experiment `name`, created if needed; with a SQLite store its artifacts live
    beside the database file rather than in the working directory."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if tracking_uri.startswith("sqlite:///"):
        location = (Path(tracking_uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created by a parallel worker in the meantime
        return client.get_experiment_by_name(name).experiment_id


def pyfunc_model():
    """The MLflow pyfunc wrapper of a Loopline SavedModel."""
    return _pyfunc_class()()


def model_signature(features: dict[str, str], classes: list[str]):
    """The MLflow signature of a Loopline model: raw named features in, one probability per class out."""
    return _signature(features, classes)


def local_tracking_uri(home: str | Path) -> str:
    """The SQLite store Loopline uses on one machine."""
    path = Path(home).resolve() / "mlflow.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"
