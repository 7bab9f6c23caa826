"""One immutable storage URI per model version: what an InferenceService's `storageUri` names.

A version's files (the SavedModel in TF Serving layout and Loopline's metadata: everything
Loopline's model server loads) go either

- under a storage prefix the user gives: `<prefix>/<model_name>/v<version>/`, copied there once by
  `publish`, which writes `loopline-version.json` (name, version, content digest) last; a URI that
  already holds another model's files is never overwritten; or
- nowhere new: the version's own folder in the MLflow artifact store (`registry.serving_storage_uri`),
  which MLflow never rewrites.

KServe's storage initializer copies the folder at that URI into the predictor's /mnt/models.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from loopline.core.errors import DeploymentError
from loopline.registry.object_store import _reason

log = logging.getLogger(__name__)

MARKER = "loopline-version.json"
CLUSTER_SCHEMES = ("gs://", "s3://", "pvc://", "hdfs://", "webhdfs://", "azure://", "https://", "oci://")


def digest(folder: str | Path) -> str:
    """sha256 over the folder's relative file paths and contents (the marker file excluded)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MARKER):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def version_uri(prefix: str, model_name: str, version: str) -> str:
    return f"{prefix.rstrip('/')}/{model_name}/v{version}"


def is_cluster_readable(uri: str) -> bool:
    """Whether KServe's storage initializer can fetch `uri` in a pod (not a path on this machine)."""
    return uri.startswith(CLUSTER_SCHEMES)


def publish(local_dir: str | Path, prefix: str, model_name: str, version: str) -> str:
    """Copy a version's model folder to its own URI under `prefix` (once) and return that URI."""
    import fsspec

    uri = version_uri(prefix, model_name, version)
    want = {"model_name": model_name, "version": str(version), "sha256": digest(local_dir)}
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        marker = f"{path}/{MARKER}"
        if fs.exists(marker):
            with fs.open(marker, "rb") as fh:
                have = json.loads(fh.read())
            if have.get("sha256") != want["sha256"]:
                raise DeploymentError(
                    f"{uri} already holds another model (sha256 {str(have.get('sha256'))[:12]}, this one "
                    f"{want['sha256'][:12]}): a version's URI is never overwritten"
                )
            log.info("version %s of %s is already at %s", version, model_name, uri)
            return uri
        fs.makedirs(path, exist_ok=True)
        fs.put(f"{Path(local_dir)}/", path.rstrip("/") + "/", recursive=True)
        with fs.open(marker, "wb") as fh:  # last: its presence means the folder is complete
            fh.write(json.dumps(want, indent=2).encode())
    except DeploymentError:
        raise
    except Exception as exc:
        raise DeploymentError(f"cannot copy version {version} of {model_name} to {uri}: {_reason(exc)}") from None
    log.info("copied version %s of %s to %s", version, model_name, uri)
    return uri
