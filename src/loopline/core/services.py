"""Services that do not answer fail fast: within a stated bound, naming the service and its URI.

Loopline talks to MLflow, KFP, Kubernetes, Vertex AI and object stores, each through a client
with its own retries (MLflow's default alone retries for about four minutes). Every first contact
with a service goes through `bounded`: the call runs with the client's retries on, and when it has
not finished after `BOUND_SECONDS` (20 s, or `$LOOPLINE_SERVICE_TIMEOUT`) the command ends with

    loopline: error: cannot reach the MLflow tracking server at http://***@mlflow:5000: no answer within 20s (...)

`reachable(service, uri)` is the quick first look: the host resolves, and its port accepts a TCP
connection, within the same bound; its message says which of the two failed. Standard library only.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from loopline.core.errors import LooplineError, one_line
from loopline.core.masking import mask

T = TypeVar("T")
BOUND_ENV = "LOOPLINE_SERVICE_TIMEOUT"
DEFAULT_BOUND = 20.0
DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306}


class ServiceUnavailable(LooplineError):
    """A service did not answer within the bound, or cannot be reached at all."""


def bound_seconds() -> float:
    """The bound: $LOOPLINE_SERVICE_TIMEOUT seconds (a positive number), else 20."""
    raw = os.environ.get(BOUND_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_BOUND
    except ValueError:
        raise ServiceUnavailable(f"{BOUND_ENV}={raw!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise ServiceUnavailable(f"{BOUND_ENV}={raw!r} must be a positive number of seconds")
    return value


def bounded(service: str, uri: str, fn: Callable[[], T], *, seconds: float | None = None) -> T:
    """`fn()` (the first call to `service` at `uri`), or ServiceUnavailable once `seconds` have
    passed without an answer. `fn`'s own errors are raised as they are."""
    limit = bound_seconds() if seconds is None else seconds
    outcome: dict[str, object] = {}

    def call() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            outcome["error"] = exc

    worker = threading.Thread(target=call, name=f"loopline-{service}-call", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        raise ServiceUnavailable(f"cannot reach {service} at {mask(uri)}: no answer within {limit:g}s "
                                 f"(set {BOUND_ENV} to wait longer)")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def host_port(uri: str) -> tuple[str, int]:
    """The host and port a URI names (the scheme's port when none is given)."""
    parts = urlsplit(uri if "://" in uri else f"http://{uri}")
    scheme = parts.scheme.split("+", 1)[0].lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme, 443)
    except ValueError:
        raise ServiceUnavailable(f"the URI {mask(uri)} has a port that is not a number") from None
    if not parts.hostname:
        raise ServiceUnavailable(f"the URI {mask(uri)} names no host")
    return parts.hostname, port


def reachable(service: str, uri: str, *, seconds: float | None = None) -> None:
    """The host of `uri` resolves and accepts a TCP connection, within the bound; else one line
    naming the service, the URI (credentials masked) and which step failed."""
    limit = bound_seconds() if seconds is None else seconds
    host, port = host_port(uri)

    def connect() -> None:
        try:
            addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ServiceUnavailable(f"cannot reach {service} at {mask(uri)}: the host name {host!r} does not resolve "
                                     f"({exc.strerror or one_line(exc)})") from exc
        last: OSError | None = None
        for family, kind, proto, _, address in addresses:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(limit)
                try:
                    sock.connect(address)
                    return
                except OSError as exc:
                    last = exc
        reason = (last.strerror if last is not None and last.strerror else one_line(last)) if last else "no address"
        raise ServiceUnavailable(f"cannot reach {service} at {mask(uri)}: nothing accepts connections on {host}:{port} "
                                 f"({reason})") from last

    bounded(service, uri, connect, seconds=limit)
