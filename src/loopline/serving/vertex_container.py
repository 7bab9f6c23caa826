"""Vertex AI's custom-container contract for Loopline's model server.

Vertex starts the serving container with `AIP_HTTP_PORT` (the port to listen on, 8080 unless
set), `AIP_HEALTH_ROUTE` and `AIP_PREDICT_ROUTE` (the paths it probes and sends predictions to)
and `AIP_STORAGE_URI` (a gs:// copy of the model version's `artifact_uri`). Its request is
`{"instances": [...], "parameters": ...}` and its answer `{"predictions": [...]}`: KServe's V1
body, so the two routes are aliases of the V1 routes of the model; V1 and V2 keep answering.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence

from loopline.core.errors import DeploymentError, one_line

log = logging.getLogger(__name__)

DEFAULT_PORT = 8080


def http_port(argv: Sequence[str], environ: Mapping[str, str], given: int) -> int:
    """`AIP_HTTP_PORT` unless --http_port is on the command line."""
    if any(a == "--http_port" or a.startswith("--http_port=") for a in argv) or not environ.get("AIP_HTTP_PORT"):
        return given
    try:
        return int(environ["AIP_HTTP_PORT"])
    except ValueError as exc:
        raise DeploymentError(f"AIP_HTTP_PORT must be a port number, got {environ['AIP_HTTP_PORT']!r}") from exc


def model_dir(given: str | None, environ: Mapping[str, str]) -> str:
    """--model_dir, else a local copy of `AIP_STORAGE_URI`, fetched now through fsspec (gcsfs,
    with the container's service account), as KServe's storage initializer fetches a storageUri."""
    if given:
        return given
    uri = environ.get("AIP_STORAGE_URI", "")
    if not uri:
        raise DeploymentError("no model: give --model_dir, or AIP_STORAGE_URI (Vertex AI sets it from artifact_uri)")
    import fsspec

    target = tempfile.mkdtemp(prefix="loopline-model-")
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        fs.get(path.rstrip("/") + "/", target.rstrip("/") + "/", recursive=True)
    except Exception as exc:  # the storage client's own errors: missing object, no permission
        raise DeploymentError(f"cannot fetch the model from AIP_STORAGE_URI {uri}: {one_line(exc)}") from exc
    if not os.listdir(target):
        raise DeploymentError(f"AIP_STORAGE_URI {uri} holds no files")
    log.info("fetched the model from %s into %s", uri, target)
    return target


def route_aliases(model_name: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Vertex's routes -> the V1 routes that answer them."""
    aliases = {}
    for variable, v1 in (("AIP_PREDICT_ROUTE", f"/v1/models/{model_name}:predict"),
                         ("AIP_HEALTH_ROUTE", f"/v1/models/{model_name}")):
        route = environ.get(variable, "")
        if route and route != v1:
            aliases[route] = v1
    return aliases


class RouteAliases:
    """ASGI middleware: a request to an aliased path is served by the path it stands for."""

    def __init__(self, app, aliases: dict[str, str]) -> None:
        self.app, self.aliases = app, aliases

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] in self.aliases:
            path = self.aliases[scope["path"]]
            scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)


def serve_routes(kserve_model_server, aliases: dict[str, str]) -> None:
    """Make KServe's REST server answer `aliases` too."""
    if not aliases:
        return
    base = kserve_model_server.RESTServer

    class AliasedRESTServer(base):
        def _register_endpoints(self, app):
            super()._register_endpoints(app)
            app.add_middleware(RouteAliases, aliases=aliases)

    kserve_model_server.RESTServer = AliasedRESTServer
    log.info("Vertex AI routes: %s", ", ".join(f"{a} -> {b}" for a, b in aliases.items()))
