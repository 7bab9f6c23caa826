"""A recording HTTP server on loopback: the common part of the stand-ins."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None  # parsed JSON, or {field: text} for multipart uploads
    raw: bytes = b""

    def json(self) -> Any:
        return self.body


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=dict)
    raw: bytes | None = None  # sent as is instead of `body` as JSON (object downloads)
    headers: dict[str, str] = field(default_factory=dict)


def parse_multipart(content_type: str, raw: bytes) -> dict[str, str]:
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    parts = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        parts[name] = part.get_payload(decode=True).decode()
    return parts


class RecordingServer:
    """Subclasses implement `handle(request) -> Reply`. Every request is kept in `requests`."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
                content_type = self.headers.get("Content-Type", "")
                body: Any = None
                if content_type.startswith("multipart/form-data"):
                    body = parse_multipart(content_type, raw)
                elif raw:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = raw.decode(errors="replace")
                request = Request(self.command, url.path, query, {k.lower(): v for k, v in self.headers.items()}, body, raw)
                with standin.lock:
                    standin.requests.append(request)
                    reply = standin.handle(request)
                data = json.dumps(reply.body).encode() if reply.raw is None else reply.raw
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json" if reply.raw is None else "application/octet-stream",
                           **reply.headers}
                for name, value in {**headers, "Content-Length": str(len(data))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RecordingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def find(self, method: str, path_end: str) -> list[Request]:
        """The recorded requests of `method` whose path ends with `path_end`."""
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path.endswith(path_end)]

    def handle(self, request: Request) -> Reply:  # pragma: no cover - abstract
        raise NotImplementedError
