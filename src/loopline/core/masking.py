"""The one secret filter: every text Loopline persists or prints goes through `mask`.

It hides
- the credentials of URLs (`scheme://user:password@host` becomes `scheme://***@host`),
- the values of `key=value` / `key: value` pairs whose key says it holds a secret (password,
  secret, token, api key, access key, credential), and bearer tokens,
- every value registered as secret (`register`: a KFP token read from a file, a password met in
  a URL before), and the values of environment variables whose name says they are secret
  (`MLFLOW_TRACKING_PASSWORD`, `LOOPLINE_TUNING_STORAGE_PASSWORD`, ...), wherever they appear.

The run's record, its page and log, the steps' Markdown and manifests, `submit --dry-run`'s
output, logging (`MaskingFilter`) and error lines use it. Standard library only.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any
from urllib.parse import unquote

MASK = "***"
# user:password@ in URLs, and key=value / key: value pairs whose key says it holds a secret
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/\s@:]*):(?P<password>[^/\s@]*)@")
_SECRET_WORDS = r"(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|credential)"
_SECRET_PAIR = re.compile(
    rf"(?P<key>\b[\w.-]*{_SECRET_WORDS}s?[\w.-]*)"
    r"(?P<sep>['\"]?\s*[=:]\s*['\"]?)(?P<value>[^\s'\",;&}]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<word>\bBearer\s+)(?P<value>[A-Za-z0-9._~+/=-]{8,})", re.IGNORECASE)
_SECRET_ENV = re.compile(_SECRET_WORDS, re.IGNORECASE)
MIN_REGISTERED = 4  # shorter values would mask ordinary words
MIN_FROM_ENVIRONMENT = 12  # a stand-in key such as "loopline" must not mask the word everywhere

_known: set[str] = set()


def register(value: str | None) -> None:
    """Mask `value` from now on, wherever it appears (and its URL-decoded form)."""
    if not isinstance(value, str) or len(value) < MIN_REGISTERED or value == MASK:
        return
    _known.add(value)
    decoded = unquote(value)
    if decoded != value and len(decoded) >= MIN_REGISTERED:
        _known.add(decoded)


def _environment_secrets() -> list[str]:
    return [value for name, value in os.environ.items()
            if _SECRET_ENV.search(name) and len(value) >= MIN_FROM_ENVIRONMENT and value != MASK]


def _url(match: re.Match) -> str:
    register(match["password"])
    return f"{match['scheme']}{MASK}@"


def _pair(match: re.Match) -> str:
    if match["value"] == MASK:
        return match[0]
    register(match["value"])
    return f"{match['key']}{match['sep']}{MASK}"


def mask(text: str) -> str:
    """`text` without credentials: URL passwords, secret pairs and tokens, and every known secret."""
    if not isinstance(text, str) or not text:
        return text
    text = _URL_CREDENTIALS.sub(_url, text)
    text = _SECRET_PAIR.sub(_pair, text)
    text = _BEARER.sub(lambda m: f"{m['word']}{MASK}", text)
    for value in sorted({*_known, *_environment_secrets()}, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


def mask_data(value: Any) -> Any:
    """The same for the strings inside a JSON-like value (keys included)."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {mask_data(k): mask_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(mask_data(v) for v in value)
    return value


class MaskingFilter(logging.Filter):
    """On a handler: each record's message, arguments merged in, is masked before it is written;
    so is the traceback text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: leave the record as it is
            return True
        record.msg, record.args = mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True


def install(handler: logging.Handler) -> None:
    """Put the filter on `handler` once."""
    if not any(isinstance(f, MaskingFilter) for f in handler.filters):
        handler.addFilter(MaskingFilter())


class MaskingStream:
    """A text stream whose every write is masked first (the command line's stdout and stderr).
    A write that fails (a full disk, a closed pipe) raises an OSError that says which stream; the
    stream's descriptor then goes to /dev/null, so that Python's last flush does not fail again
    (which would end the command with exit code 120)."""

    def __init__(self, stream, what: str = "standard output"):
        self._stream = stream
        self.what = what

    def write(self, text: str) -> int:
        try:
            self._stream.write(mask(text))
        except OSError as exc:
            raise self._lost(exc) from exc
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._lost(exc) from exc

    def _lost(self, exc: OSError) -> OSError:
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
        except (OSError, ValueError, AttributeError):
            pass
        return OSError(exc.errno, f"cannot write to {self.what}: {exc.strerror or exc}")

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def mask_file(path) -> bool:
    """Mask a text file in place (a run's log once the run has ended); True when it changed."""
    from pathlib import Path

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return False
    masked = mask(text)
    if masked == text:
        return False
    tmp = path.with_name(f".{path.name}.masking")
    tmp.write_text(masked, encoding="utf-8", errors="surrogateescape")
    os.replace(tmp, path)
    return True
