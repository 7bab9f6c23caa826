"""The model server's traffic log: every inference request and its 200 response written as KServe's
logger records (traffic_log.py), where no KServe agent runs beside the server (the local model
server, the serving image on Vertex AI or plain Docker).

This stands in for KServe's agent (`pkg/logger/handler.go`): a request is logged as it arrives, its
response only when the answer is HTTP 200; both carry one id, the incoming `Ce-Id` header or else a
new UUID; `endpoint` is `default` or `canary`. Unlike the agent, which logs every proxied call but
the kubelet's probes, only inference calls (`POST /v1/models/<name>:predict`,
`POST /v2/models/<name>/infer`) are logged, so readiness polls and metadata reads never enter the
traffic window.

Settings come from flags (`add_arguments`) or, for the serving image, from the environment:
LOOPLINE_TRAFFIC_LOG_URI (a folder, s3:// or gs:// prefix; empty: no log),
LOOPLINE_TRAFFIC_LOG_FORMAT (json|csv|parquet), LOOPLINE_TRAFFIC_LOG_BATCH_SIZE,
LOOPLINE_TRAFFIC_LOG_BATCH_INTERVAL, LOOPLINE_TRAFFIC_ENDPOINT (default|canary),
LOOPLINE_TRAFFIC_NAMESPACE, LOOPLINE_TRAFFIC_INFERENCE_SERVICE and LOOPLINE_TRAFFIC_LOG_PATH.
With LOOPLINE_TRAFFIC_ENDPOINT_FILE set, the endpoint is read from that file on each request (a
local canary becomes `default` when it is promoted, without a restart).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import logging
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from loopline.traffic import log as traffic_log
from loopline.traffic.log import LogRecord, TrafficLogError, TrafficLogWriter

log = logging.getLogger(__name__)

INFERENCE_PATH = re.compile(r"^/v1/models/[^/]+:predict$|^/v2/models/[^/]+(/versions/[^/]+)?/infer$")
ENV = "LOOPLINE_TRAFFIC_"


@dataclass(frozen=True)
class TrafficSettings:
    """Where and how a model server logs its traffic (empty uri: it does not)."""

    uri: str = ""
    fmt: str = "json"
    batch_size: int = 1
    batch_interval: str = ""
    endpoint: str = "default"
    namespace: str = "default"
    inference_service: str = ""
    component: str = "predictor"
    path: str = ""  # KServe's storage.path: Loopline puts the version here, v<version>
    endpoint_file: str = ""

    def __post_init__(self) -> None:
        traffic_log.extension(self.fmt)
        if self.endpoint not in traffic_log.ENDPOINTS:
            raise TrafficLogError(f"traffic endpoint must be 'default' or 'canary', got '{self.endpoint}'")
        if self.batch_size < 1:
            raise TrafficLogError(f"traffic log batch size must be at least 1, got {self.batch_size}")
        traffic_log.parse_interval(self.batch_interval)

    def argv(self) -> list[str]:
        """The server's command-line flags for these settings."""
        if not self.uri:
            return []
        out = ["--traffic_log_uri", self.uri, "--traffic_log_format", self.fmt,
               "--traffic_log_batch_size", str(self.batch_size), "--traffic_endpoint", self.endpoint,
               "--traffic_namespace", self.namespace, "--traffic_component", self.component]
        for flag, value in (("--traffic_log_batch_interval", self.batch_interval),
                            ("--traffic_inference_service", self.inference_service),
                            ("--traffic_log_path", self.path), ("--traffic_endpoint_file", self.endpoint_file)):
            if value:
                out += [flag, value]
        return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--traffic_log_uri", default=env(f"{ENV}LOG_URI", ""),
                        help="log every inference request and its response under this folder, s3:// or gs:// prefix")
    parser.add_argument("--traffic_log_format", default=env(f"{ENV}LOG_FORMAT", "json"), choices=traffic_log.FORMATS)
    parser.add_argument("--traffic_log_batch_size", type=int, default=int(env(f"{ENV}LOG_BATCH_SIZE", "1")))
    parser.add_argument("--traffic_log_batch_interval", default=env(f"{ENV}LOG_BATCH_INTERVAL", ""))
    parser.add_argument("--traffic_endpoint", default=env(f"{ENV}ENDPOINT", "default"), choices=traffic_log.ENDPOINTS)
    parser.add_argument("--traffic_namespace", default=env(f"{ENV}NAMESPACE", "default"))
    parser.add_argument("--traffic_inference_service", default=env(f"{ENV}INFERENCE_SERVICE", ""))
    parser.add_argument("--traffic_component", default=env(f"{ENV}COMPONENT", "predictor"))
    parser.add_argument("--traffic_log_path", default=env(f"{ENV}LOG_PATH", ""))
    parser.add_argument("--traffic_endpoint_file", default=env(f"{ENV}ENDPOINT_FILE", ""))


def from_args(args: argparse.Namespace, model_name: str) -> TrafficSettings:
    return TrafficSettings(
        uri=args.traffic_log_uri, fmt=args.traffic_log_format, batch_size=args.traffic_log_batch_size,
        batch_interval=args.traffic_log_batch_interval, endpoint=args.traffic_endpoint,
        namespace=args.traffic_namespace, inference_service=args.traffic_inference_service or model_name,
        component=args.traffic_component, path=args.traffic_log_path, endpoint_file=args.traffic_endpoint_file,
    )


def write_endpoint(path: str | Path, endpoint: str) -> None:
    """Tell a running server which endpoint its traffic belongs to from now on."""
    if endpoint not in traffic_log.ENDPOINTS:
        raise TrafficLogError(f"traffic endpoint must be 'default' or 'canary', got '{endpoint}'")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(endpoint)


class TrafficCapture:
    """ASGI middleware around the model server's application that logs inference calls."""

    def __init__(self, app, settings: TrafficSettings, writer: TrafficLogWriter | None = None) -> None:
        self.app = app
        self.settings = settings
        self.writer = writer or TrafficLogWriter(settings.uri, fmt=settings.fmt, batch_size=settings.batch_size,
                                                 batch_interval=settings.batch_interval, path=settings.path)
        atexit.register(self.close)  # a graceful stop writes the partial batch (a killed server loses it)

    def endpoint(self) -> str:
        if self.settings.endpoint_file:
            try:
                text = Path(self.settings.endpoint_file).read_text().strip()
                if text in traffic_log.ENDPOINTS:
                    return text
            except OSError:
                pass
        return self.settings.endpoint

    def _record(self, kind: str, record_id: str, body: bytes, content_type: str, source: str) -> LogRecord:
        s = self.settings
        return LogRecord(id=record_id, type=kind, body=body, endpoint=self.endpoint(), inference_service=s.inference_service,
                         namespace=s.namespace, component=s.component, content_type=content_type, url=s.uri,
                         source_uri=source, occurrence_time=traffic_log.now_rfc3339())

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http" or scope.get("method") != "POST" or not INFERENCE_PATH.match(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        record_id = headers.get("ce-id") or str(uuid.uuid4())
        content_type = headers.get("content-type", "")
        host = headers.get("host", "")
        source = f"http://{host}{scope.get('path', '')}" if host else scope.get("path", "")
        chunks: list[bytes] = []
        more = True
        while more:  # the whole request body first, as the agent reads it before it proxies
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        await asyncio.to_thread(self.writer.add, self._record("request", record_id, body, content_type, source))
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = 0
        answer: list[bytes] = []

        async def capture(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                answer.append(message.get("body", b""))
            await send(message)

        await self.app(scope, replay, capture)
        if status == 200:  # the agent logs only HTTP 200 answers
            await asyncio.to_thread(self.writer.add, self._record("response", record_id, b"".join(answer),
                                                                  content_type, source))

    def close(self) -> None:
        self.writer.close()
