"""The storage of an Optuna study: a database URL checked before anything runs, its password
from the environment, and Optuna's RDBStorage opened with trial heartbeats (several worker
processes open one SQLite file side by side under a lock beside it). Nothing here imports
TensorFlow."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

from loopline.core.errors import TuningConfigError

log = logging.getLogger(__name__)

STORAGE_SCHEMES = ("sqlite", "postgresql", "mysql")

PASSWORD_ENV = "LOOPLINE_TUNING_STORAGE_PASSWORD"

HEARTBEAT_INTERVAL = 10.0  # seconds between a running trial's heartbeats

GRACE_PERIOD = 40.0  # seconds without a heartbeat after which a RUNNING trial is stale


def masked(url: str) -> str:
    """The URL with its password hidden, for messages and tags."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)

def check_storage_url(url: str) -> None:
    """Reject what cannot be a storage URL before anything runs (no connection is made)."""
    if not url:
        return
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme not in STORAGE_SCHEMES:
        raise TuningConfigError(
            f"storage_url '{masked(url)}' is not a database URL: use sqlite:///path/to/study.db or "
            "postgresql://user@host:5432/db, or leave it empty for an in-memory study"
        )
    if scheme == "sqlite":
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path or path == ":memory:":
            raise TuningConfigError(
                f"storage_url '{url}' names no database file: use sqlite:///path/to/study.db "
                "(or leave storage_url empty for an in-memory study)"
            )

def _with_password(url: str) -> str:
    """Insert the password from $LOOPLINE_TUNING_STORAGE_PASSWORD when the URL has none."""
    password = os.environ.get(PASSWORD_ENV, "")
    match = re.match(r"^([^:]+://)([^:/@]+)@(.*)$", url)
    if password and match:
        from urllib.parse import quote

        return f"{match.group(1)}{match.group(2)}:{quote(password, safe='')}@{match.group(3)}"
    return url

def open_storage(
    url: str, *, heartbeat_interval: float = HEARTBEAT_INTERVAL, grace_period: float = GRACE_PERIOD
):
    """None for an in-memory study, else Optuna's RDBStorage with trial heartbeats.

    Raises TuningConfigError (one line, password hidden) when the database cannot be used.
    """
    check_storage_url(url)
    if not url:
        return None
    import optuna

    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    shown = masked(url)
    if scheme == "sqlite":
        folder = sqlite_file(url).parent
        if not folder.is_dir():
            raise TuningConfigError(f"storage_url '{shown}': the folder {folder} does not exist")
        # several worker processes share the file: wait for locks instead of failing at once
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    elif scheme == "postgresql":
        engine_kwargs = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    for attempt in range(4):
        try:
            # a database Optuna has set up already is opened without queueing behind other workers
            first_open = contextlib.nullcontext() if _optuna_sqlite_ready(url) else sqlite_init_lock(url)
            with warnings.catch_warnings(), first_open:  # heartbeats are marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    _with_password(url),
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=int(max(1, heartbeat_interval)),
                    grace_period=int(max(2, grace_period)),
                )
        except ImportError as exc:  # Optuna wraps the missing driver's ModuleNotFoundError
            missing = getattr(exc, "name", None) or getattr(exc.__cause__, "name", None) or "for this URL"
            raise TuningConfigError(f"storage_url '{shown}': the database driver '{missing}' is not installed") from None
        except Exception as exc:  # sqlalchemy's OperationalError, IntegrityError, ArgumentError, ...
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            reason_text = masked(reason[0]) if reason else type(exc).__name__
            # workers starting together on a new database race to create its tables: try again
            racing = any(word in reason_text.lower() for word in ("unique", "already exists", "duplicate", "locked"))
            if not racing or attempt == 3:
                raise TuningConfigError(f"cannot use the tuning storage '{shown}': {reason_text}") from None
            log.info("tuning storage %s: another worker is setting it up (%s); trying again", shown, reason_text)
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")

def sqlite_file(url: str) -> Path | None:
    """The database file of a `sqlite:///` URL (absolute), None for any other URL."""
    prefix = "sqlite:///"
    return Path(url[len(prefix):]).expanduser().resolve() if url.startswith(prefix) else None

def _optuna_sqlite_ready(url: str) -> bool:
    """Whether the SQLite file of `url` holds a complete Optuna schema (Optuna stamps its
    alembic version last when it sets a database up)."""
    path = sqlite_file(url)
    if path is None or not path.is_file():
        return False
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)) as db:
            return db.execute("SELECT count(*) FROM alembic_version").fetchone()[0] > 0
    except sqlite3.Error:  # no such table yet, or not a database: open it under the lock
        return False

@contextlib.contextmanager
def sqlite_init_lock(url: str):
    """Hold an exclusive file lock beside a SQLite database while it is opened (and perhaps
    created) so that processes starting together do not race to create its tables."""
    path = sqlite_file(url)
    if path is None:
        yield
        return
    import fcntl

    lock_path = path.with_suffix(".init-lock")
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
