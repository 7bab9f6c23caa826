"""Exclusive claims (leases) in the MLflow registry.

MLflow has no compare-and-set on aliases or tags. What its stores do refuse atomically is a
second registered model of the same name: the SQL store's unique key and the tracking server
both answer RESOURCE_ALREADY_EXISTS. A lease is therefore a registered model named
`<model>.lease.<purpose>`: whoever creates it holds it; it is deleted when the work is done. A
holder that died leaves it behind; after its time-to-live anyone may break it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass

from loopline.core.errors import RegistryError

log = logging.getLogger(__name__)

TAG_HOLDER = "loopline.lease.holder"
TAG_TTL = "loopline.lease.ttl_seconds"
ALREADY = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")
MISSING = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def lease_name(model_name: str, purpose: str) -> str:
    return f"{model_name}.lease.{purpose}"


def default_holder(detail: str = "") -> str:
    return f"{detail or 'pid'} ({socket.gethostname()}, pid {os.getpid()})"


@dataclass
class Lease:
    name: str
    holder: str


@dataclass
class Held:
    """Somebody else's lease: who, since when (seconds since the epoch)."""

    name: str
    holder: str
    since: float

    def describe(self) -> str:
        return f"{self.name} held by {self.holder or 'an unnamed holder'} since {time.strftime('%H:%M:%S UTC', time.gmtime(self.since))}"


def _code(exc: BaseException) -> str:
    return getattr(exc, "error_code", "") or ""


def acquire(client, name: str, *, holder: str, ttl_seconds: float) -> Lease | Held:
    """Create the lease `name`. Returns the Lease, or who holds it when it exists and is live."""
    from mlflow.exceptions import MlflowException

    for _ in range(3):
        try:
            client.create_registered_model(
                name, tags={TAG_HOLDER: holder, TAG_TTL: str(int(ttl_seconds))},
                description="Loopline lease: held while one run does what only one may do at a time; deleted after",
            )
            return Lease(name, holder)
        except MlflowException as exc:
            if _code(exc) not in ALREADY:
                raise
        try:
            existing = client.get_registered_model(name)
        except MlflowException as exc:
            if _code(exc) in MISSING:  # released in the meantime: try again
                continue
            raise
        since = (existing.creation_timestamp or 0) / 1000.0
        ttl = float(existing.tags.get(TAG_TTL, ttl_seconds) or ttl_seconds)
        held = Held(name, existing.tags.get(TAG_HOLDER, ""), since)
        if time.time() - since <= ttl:
            return held
        log.warning("breaking the expired lease %s (older than %.0f s)", held.describe(), ttl)
        _delete(client, name)
    raise RegistryError(f"could not take the lease {name}: it keeps changing hands")


def release(client, lease: Lease) -> None:
    """Delete the lease (nothing when it is gone already)."""
    _delete(client, lease.name)


def _delete(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model(name)
    except MlflowException as exc:
        if _code(exc) not in MISSING:
            raise
