"""Names that Loopline hands to another system, checked where they enter, and the paths built
from them, which must stay inside their home.

Each check is the rule of the system that will hold the name:

- MLflow: a registered model name (Loopline also makes it a file name and a Kubernetes label,
  so: letters, digits, `.`, `_`, `-`, at most 128 characters, no `/`, not `.` or `..`), an alias
  (MLflow: word characters and `-`, not `latest`, not `v<number>`), an experiment name (not empty).
- Kubernetes: DNS-1123 labels (namespaces, most object names) and subdomains.
- KServe: an InferenceService name is a DNS-1035 label (starts with a letter) of at most 63.
- Vertex AI: resource ids (pipeline jobs, schedules) and label keys and values.

`inside(home, *parts)` resolves a path built from names and refuses one that leaves `home`:
nothing Loopline writes or deletes from a name is ever outside its home. Standard library only.
"""

from __future__ import annotations

import re
from pathlib import Path

from loopline.core.errors import LooplineError


class InvalidName(LooplineError):
    """A name that the system meant to hold it would refuse, or a path that leaves its home."""

_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ALIAS = re.compile(r"[\w-]{1,255}", re.ASCII)
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_VERTEX_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")
_VERTEX_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_VERTEX_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _need_text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidName(f"{what} must be a string, got {type(value).__name__} {_shown(value)}")
    if not value:
        raise InvalidName(f"{what} is empty")
    return value


def model_name(value: str, what: str = "model name") -> str:
    """A registered model name: MLflow's registry, a folder under the home, a Kubernetes label."""
    _need_text(what, value)
    if not _MODEL.fullmatch(value) or value in (".", ".."):
        raise InvalidName(f"{what} {_shown(value)} is not allowed: use letters, digits, '.', '_' and '-' "
                          "(at most 128, starting with a letter or digit; no '/', spaces or '..')")
    return value


def alias(value: str, what: str = "alias") -> str:
    """An MLflow registry alias."""
    _need_text(what, value)
    if not _ALIAS.fullmatch(value):
        raise InvalidName(f"{what} {_shown(value)} is not an MLflow alias: use letters, digits, '_' and '-'")
    if value.lower() == "latest" or re.fullmatch(r"[vV]\d+", value):
        raise InvalidName(f"{what} {_shown(value)} is reserved by MLflow ('latest' and v<number> name versions)")
    return value


def experiment_name(value: str, what: str = "experiment name") -> str:
    """An MLflow experiment name: any text but empty, on one line."""
    _need_text(what, value)
    if value.strip() != value or any(c in value for c in "\r\n\0"):
        raise InvalidName(f"{what} {_shown(value)} has leading or trailing spaces or control characters")
    return value


def dns_label(value: str, what: str = "name") -> str:
    """A Kubernetes DNS-1123 label (namespaces, services, most objects): lowercase letters,
    digits and '-', at most 63, starting and ending with a letter or digit."""
    _need_text(what, value)
    if not _DNS1123_LABEL.fullmatch(value):
        raise InvalidName(f"{what} {_shown(value)} is not a Kubernetes DNS-1123 label: lowercase letters, digits "
                          "and '-', at most 63, starting and ending with a letter or digit")
    return value


def namespace(value: str, what: str = "namespace") -> str:
    """A Kubernetes namespace (a DNS-1123 label)."""
    return dns_label(value, what)


def dns_subdomain(value: str, what: str = "name") -> str:
    """A Kubernetes DNS-1123 subdomain (at most 253, dot-separated labels)."""
    _need_text(what, value)
    if not _DNS1123_SUBDOMAIN.fullmatch(value) or ".." in value or any(len(p) > 63 for p in value.split(".")):
        raise InvalidName(f"{what} {_shown(value)} is not a Kubernetes DNS-1123 subdomain: lowercase letters, digits, "
                          "'-' and '.', at most 253")
    return value


def inference_service(value: str, what: str = "InferenceService name") -> str:
    """A KServe InferenceService name: a DNS-1035 label (KServe's webhook refuses others)."""
    _need_text(what, value)
    if not _DNS1035_LABEL.fullmatch(value):
        raise InvalidName(f"{what} {_shown(value)} is not allowed by KServe: lowercase letters, digits and '-', "
                          "at most 63, starting with a letter and ending with a letter or digit")
    return value


def vertex_id(value: str, what: str = "Vertex AI resource id") -> str:
    """A Vertex AI resource id (pipeline job, schedule): lowercase letters, digits, '-'."""
    _need_text(what, value)
    if not _VERTEX_ID.fullmatch(value):
        raise InvalidName(f"{what} {_shown(value)} is not a Vertex AI id: lowercase letters, digits and '-', "
                          "at most 128, starting with a letter or digit")
    return value


def vertex_label(key: str, value: str, what: str = "label") -> tuple[str, str]:
    """A Vertex AI label: key `[a-z][a-z0-9_-]{0,62}`, value `[a-z0-9_-]{0,63}`."""
    _need_text(f"{what} key", key)
    if not _VERTEX_LABEL_KEY.fullmatch(key):
        raise InvalidName(f"{what} key {_shown(key)} is not a Vertex AI label key: lowercase letters, digits, '_' "
                          "and '-', at most 63, starting with a letter")
    if not isinstance(value, str) or not _VERTEX_LABEL_VALUE.fullmatch(value):
        raise InvalidName(f"{what} {key}={_shown(value)} is not a Vertex AI label value: lowercase letters, digits, "
                          "'_' and '-', at most 63")
    return key, value


def inside(home: str | Path, *parts: str | Path) -> Path:
    """`home/part/...` resolved (symbolic links and `..` followed); refused when it is not inside
    `home`. Every path Loopline builds from a name goes through here."""
    base = Path(home).resolve()
    for part in parts:
        if not isinstance(part, (str, Path)) or str(part) in ("", ".") or "\0" in str(part):
            raise InvalidName(f"the path part {_shown(part)} under {base} is not a file name")
    target = base.joinpath(*parts).resolve()
    if target != base and base not in target.parents:
        shown = "/".join(str(p) for p in parts)
        raise InvalidName(f"the path {shown!r} leads outside {base} (to {target}): refused, nothing was written or deleted")
    return target
