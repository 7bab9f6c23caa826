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

from loopline.core import services
from loopline.core.errors import LooplineError, RegistryError, one_line

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


# What a registered model needs where it is loaded (MLflow adds itself): the pins of
# requirements.lock (a test holds them equal), never loopline.
MODEL_REQUIREMENTS = ["tensorflow-cpu==2.21.0", "pandas==2.3.3", "numpy==2.4.6"]


def pyfunc_code_path() -> str:
    """The pyfunc model as code (loopline/model/mlflow_pyfunc_code.py): MLflow copies the file into the model."""
    return str(Path(__file__).parents[1] / "model" / "mlflow_pyfunc_code.py")


def _signature(features: dict[str, str], classes: list[str]):
    """Every feature column is required. A numeric one is `Any` to MLflow, whose `double` refuses
    a column of integers; the model converts it to a number and refuses what is not one."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    inputs = Schema(
        [ColSpec(AnyType() if kind == "numeric" else "string", name, required=True) for name, kind in features.items()]
    )
    outputs = Schema([ColSpec("double", str(c)) for c in classes])
    return ModelSignature(inputs=inputs, outputs=outputs)


def save_pyfunc(path: str | Path, model_dir: str | Path, meta: dict, *, input_example=None, mlflow_model=None) -> None:
    """Save a Loopline SavedModel as an MLflow pyfunc model that loads without loopline."""
    import mlflow.pyfunc

    # save_model with an explicit signature writes the input example as is (no TensorFlow here).
    mlflow.pyfunc.save_model(
        str(path),
        python_model=pyfunc_code_path(),
        artifacts={SAVED_MODEL_ARTIFACT: str(model_dir)},
        signature=_signature(meta["features"], meta["classes"]),
        input_example=input_example,
        pip_requirements=MODEL_REQUIREMENTS,
        mlflow_model=mlflow_model,
    )


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


QUICK_CHECK = RetryPolicy(attempts=1)


def check_store(tracking_uri: str, *, retry: RetryPolicy | None = QUICK_CHECK) -> None:
    """Fail with one line naming the URI when the MLflow store cannot be used: a SQLite file that
    is not a database, a folder that cannot hold one, a server that does not answer or fails."""
    shown = safe_uri(tracking_uri)
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri[len("sqlite:///"):])
        if path.exists():
            if not path.is_file():
                raise RegistryError(f"the MLflow store {shown} is not a file")
            with open(path, "rb") as fh:
                head = fh.read(16)
            if head and head != b"SQLite format 3\x00":
                raise RegistryError(f"the MLflow store {shown} is not an SQLite database (corrupt or another kind of file)")
            if head:
                _check_sqlite_store(path, shown)
        elif not path.parent.is_dir():
            raise RegistryError(f"the MLflow store {shown} cannot be created: {path.parent} is not a folder")
    elif tracking_uri.startswith(("http://", "https://")):  # a server: it answers within the bound, or fails naming it
        services.reachable("the MLflow tracking server", tracking_uri)
        services.bounded("the MLflow tracking server", tracking_uri,
                         lambda: _check_server(tracking_uri, retry or DEFAULT_RETRY))
        client = connect(tracking_uri)
        services.bounded("the MLflow tracking server", tracking_uri, lambda: _probe(client, tracking_uri, shown, retry))
        return
    client = connect(tracking_uri)
    _probe(client, tracking_uri, shown, retry)


def _check_sqlite_store(path: Path, shown: str) -> None:
    """An SQLite file that is damaged (truncated, overwritten) or holds another program's tables
    is named before MLflow touches it (MLflow would add its tables to a foreign database)."""
    import contextlib
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            verdict = db.execute("PRAGMA quick_check").fetchone()
    except sqlite3.DatabaseError as exc:
        raise RegistryError(f"the MLflow store {shown} is damaged ({exc}): restore it from a copy, or move it "
                            "away to start a new registry") from exc
    if verdict and verdict[0] != "ok":
        raise RegistryError(f"the MLflow store {shown} is damaged ({verdict[0]}): restore it from a copy, or move "
                            "it away to start a new registry")
    if tables and not {"alembic_version", "experiments"} <= tables:
        shown_tables = ", ".join(sorted(tables)[:5])
        raise RegistryError(f"the MLflow store {shown} is an SQLite database of something else (tables: "
                            f"{shown_tables}): give Loopline a file of its own")


def _probe(client, tracking_uri: str, shown: str, retry: RetryPolicy | None) -> None:
    """One registry call: the store is a working MLflow store."""

    def probe() -> None:
        client.search_registered_models(max_results=1)

    try:
        with_retries(probe, what=f"checking the MLflow store {shown}", tracking_uri=tracking_uri, retry=retry)
    except RegistryError as exc:
        raise RegistryError(f"the MLflow store {shown} is unavailable: {one_line(exc)}") from None
    except Exception as exc:
        raise RegistryError(f"the MLflow store {shown} cannot be used: {type(exc).__name__}: {one_line(exc, 300)}") from None


def _check_server(tracking_uri: str, retry: RetryPolicy) -> None:
    """The tracking server answers its health check (retried as registry calls are)."""
    import urllib.error
    import urllib.request

    shown = safe_uri(tracking_uri)
    delay = retry.initial_delay
    for attempt in range(1, max(1, retry.attempts) + 1):
        try:
            with urllib.request.urlopen(f"{shown.rstrip('/')}/health", timeout=10):  # noqa: S310 - the user's server
                return
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and exc.code != 429:
                return  # it answers; the search below says whether it is an MLflow server
            reason = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            reason = str(getattr(exc, "reason", "") or exc)
        if attempt >= retry.attempts:
            raise RegistryError(f"the MLflow tracking server {shown} does not answer ({reason}) after {attempt} "
                                f"attempt{'s' if attempt > 1 else ''}")
        log.warning("the MLflow tracking server %s does not answer (%s); retrying in %.1fs", shown, reason, delay)
        time.sleep(delay)
        delay = min(delay * retry.factor, retry.max_delay)


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


def model_signature(features: dict[str, str], classes: list[str]):
    """The MLflow signature of a Loopline model: raw named features in, one probability per class out."""
    return _signature(features, classes)


def local_tracking_uri(home: str | Path) -> str:
    """The SQLite store Loopline uses on one machine."""
    path = Path(home).resolve() / "mlflow.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"
