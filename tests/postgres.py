"""A real PostgreSQL server for the tests: `initdb` and `pg_ctl` into a temporary folder, on a free
loopback port, for the length of the test session.

Debian's `postgresql` package provides the binaries (`.ci/run` installs it). Where they are missing
the tests that need the server are skipped with a message that says so. PostgreSQL refuses to run
as root, so as root the server runs as the package's `postgres` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MISSING = "PostgreSQL is not installed here (Debian's package `postgresql` provides initdb and pg_ctl)"


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(folders[-1]).parent if folders else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(command: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *command] if user else command


@contextlib.contextmanager
def server(timeout: float = 60.0) -> Iterator[str]:
    """Start a throw-away PostgreSQL server and yield its SQLAlchemy URL (psycopg 3 driver)."""
    bin_dir = binaries()
    if bin_dir is None:
        raise FileNotFoundError(MISSING)
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        pwd.getpwnam(user)  # KeyError when the package's user is missing
    folder = Path(tempfile.mkdtemp(prefix="loopline-pg-"))
    data = folder / "data"
    if user:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    run = {"check": True, "capture_output": True, "text": True, "timeout": timeout}
    subprocess.run(_as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "loopline",
                                    "--auth=trust", "-E", "UTF8", "--no-sync"], user), **run)
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} -c fsync=off"
    subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
                                    "-o", options, "-w", "-t", str(int(timeout)), "start"], user), **run)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL did not listen on 127.0.0.1:{port} within {timeout:.0f} s")
            time.sleep(0.1)
        yield f"postgresql+psycopg://loopline@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], user),
                       capture_output=True, timeout=timeout)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a real PostgreSQL server started for this session (skipped where none is installed)."""
    if binaries() is None:
        pytest.skip(MISSING)
    with server() as url:
        yield url
