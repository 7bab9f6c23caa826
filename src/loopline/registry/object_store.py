"""Object storage (s3://, gs://, ...) as Loopline uses it: through fsspec, with the credentials of
the usual environment variables (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_ENDPOINT_URL for
S3 and S3-compatible stores, GOOGLE_APPLICATION_CREDENTIALS for Cloud Storage; in a cluster they
come from Kubernetes secrets through the cluster settings).

`check_readable` and `check_writable` turn an unreachable store, a missing bucket or object, or
refused credentials into one line naming the URI, so that a run fails before any training.
"""

from __future__ import annotations

import uuid

from loopline.core import services
from loopline.core.errors import LooplineError, one_line

REMOTE_SCHEMES = ("s3://", "s3a://", "gs://", "gcs://", "az://", "abfs://")


class ObjectStoreError(LooplineError):
    """An object store cannot be reached, or refuses the credentials given."""


def is_remote(uri: str) -> bool:
    return uri.startswith(REMOTE_SCHEMES)


def _reason(exc: BaseException) -> str:
    name = type(exc).__name__
    text = one_line(exc, 300)
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the store's own variables)"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError") or "Could not connect" in text:
        return f"the store does not answer ({text})"
    if isinstance(exc, PermissionError) or "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text \
            or "AccessDenied" in text or "Forbidden" in text or "403" in text:
        return f"the store refused the credentials ({text})"
    if isinstance(exc, FileNotFoundError) or "NoSuchBucket" in text:
        return f"not found ({text})"
    if isinstance(exc, ImportError):
        return f"{text} (this environment lacks the store's fsspec back end)"
    return text


def _filesystem(uri: str):
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def check_readable(uri: str) -> None:
    """Raise ObjectStoreError naming `uri` unless it is an object that can be read. A prefix or a
    glob is a dataset of Parquet files: `loopline.data.sources` lists it and names what is wrong."""
    if not is_remote(uri) or any(ch in uri for ch in "*["):
        return
    services.bounded("the object store", uri, lambda: _check_readable(uri))


def _check_readable(uri: str) -> None:
    try:
        fs, path = _filesystem(uri)
        info = fs.info(path)
        if info.get("type") == "directory":
            return
        with fs.open(path, "rb") as fh:
            fh.read(1)
    except ObjectStoreError:
        raise
    except Exception as exc:
        raise ObjectStoreError(f"cannot read {uri}: {_reason(exc)}") from None


def check_writable(uri: str) -> None:
    """Raise ObjectStoreError naming `uri` unless an object can be written (and removed) under it."""
    if not is_remote(uri):
        return
    services.bounded("the object store", uri, lambda: _check_writable(uri))


def _check_writable(uri: str) -> None:
    probe = f"{uri.rstrip('/')}/.loopline-write-check-{uuid.uuid4().hex[:8]}"
    try:
        fs, path = _filesystem(probe)
        with fs.open(path, "wb") as fh:
            fh.write(b"ok")
        fs.rm(path)
    except Exception as exc:
        raise ObjectStoreError(f"cannot write to {uri}: {_reason(exc)}") from None


def check_tracking_artifacts(tracking_uri: str) -> None:
    """With an MLflow server whose artifacts go to object storage, check that this process can
    write there (models are uploaded by the steps straight to the store)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    from loopline import registry

    services.reachable("the MLflow tracking server", tracking_uri)
    try:
        client = registry.connect(tracking_uri)  # MLflow's silent retries off: Loopline's bound applies
        experiment = services.bounded("the MLflow tracking server", tracking_uri,
                                      lambda: client.get_experiment(registry.ensure_experiment(client, tracking_uri)))
    except services.ServiceUnavailable:
        raise
    except Exception as exc:
        raise ObjectStoreError(f"cannot reach the MLflow server {tracking_uri}: {one_line(exc, 300)}") from exc
    check_writable(experiment.artifact_location)
