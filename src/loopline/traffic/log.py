"""KServe's inference logger records, as its agent writes them to blob storage, and a writer of
the same objects where no KServe agent runs.

The record is KServe's `LogRequest` (kserve/kserve `pkg/logger/types.go`, KServe 0.20): `id` (the
incoming `Ce-Id`, else a UUID, shared by a request and its response), `reqType` (the CloudEvents
type `org.kubeflow.serving.inference.request` or `.response`), `endpoint` (`default` or
`canary`), `inferenceService`, `namespace`, `component`, `contentType`, the body base64 in
`bytes`, `url`, `sourceUri`, `metadata` (matched headers) and `annotations`.

A batch is one object, named after its first record
(`pkg/logger/store.go`):

    <prefix>/<namespace>/<inferenceService>/<component>/<path>/<first record id>-<request|response>.<ext>

- json: a batch of one record is that record's object, a longer batch an array; one batch can
  mix requests and responses (`marshaller_json.go`).
- csv and parquet: one flattened row per record, the columns of `logRecordColumns()`
  (`marshaller_record.go`): url, bytes (base64), contentType, reqType, id, sourceUri,
  inferenceService, namespace, component, endpoint, metadata and annotations (JSON text),
  certName, tlsSkipVerify. No row carries the time it happened.

`TrafficLogWriter` stands in for KServe's agent where none runs (Loopline's local model server,
the serving image on Vertex AI or plain Docker): it batches records by size and interval, as the
agent's `batchSize` and `batchInterval` do, and writes the very same objects to a local folder,
s3:// or gs:// through fsspec. Like the agent, it drops a batch it could not upload (logged,
never retried) and loses nothing else but what is in memory when the process is killed.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import logging
import posixpath
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime

from loopline.core.errors import DataError, describe, redact

log = logging.getLogger(__name__)

REQUEST_TYPE = "org.kubeflow.serving.inference.request"  # CloudEvents types (pkg/logger/worker.go)
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
KINDS = {"request": REQUEST_TYPE, "response": RESPONSE_TYPE}
ENDPOINTS = ("default", "canary")
FORMATS = ("json", "csv", "parquet")
# pkg/logger/marshaller_record.go logRecordColumns(), in order
COLUMNS = ("url", "bytes", "contentType", "reqType", "id", "sourceUri", "inferenceService", "namespace",
           "component", "endpoint", "metadata", "annotations", "certName", "tlsSkipVerify")


class TrafficLogError(DataError):
    """A traffic log object or setting cannot be used."""


@dataclass(frozen=True)
class LogRecord:
    """One logged request or response (KServe's LogRequest)."""

    id: str
    type: str  # "request" or "response"
    body: bytes
    endpoint: str = "default"
    inference_service: str = ""
    namespace: str = ""
    component: str = "predictor"
    content_type: str = "application/json"
    url: str = ""  # the logger's URL (where the record is sent)
    source_uri: str = ""  # the URL the request came to
    metadata: dict = field(default_factory=dict)  # header -> [values]
    annotations: dict = field(default_factory=dict)
    occurrence_time: str = ""  # RFC 3339; JSON objects only (KServe's rows carry no time)

    def __post_init__(self) -> None:
        if self.type not in KINDS:
            raise TrafficLogError(f"record type must be 'request' or 'response', got '{self.type}'")

    @property
    def req_type(self) -> str:
        return KINDS[self.type]

    # JSON: the LogRequest as Go's encoding/json writes it ---------------------------------------

    def to_json(self) -> dict:
        out: dict = {}
        if self.url:
            out["url"] = _go_url(self.url)
        out["bytes"] = base64.b64encode(self.body).decode()
        for key, value in (("contentType", self.content_type), ("reqType", self.req_type), ("id", self.id)):
            if value:
                out[key] = value
        if self.source_uri:
            out["sourceUri"] = _go_url(self.source_uri)
        for key, value in (("inferenceService", self.inference_service), ("namespace", self.namespace),
                           ("component", self.component), ("endpoint", self.endpoint)):
            if value:
                out[key] = value
        if self.metadata:
            out["metadata"] = self.metadata
        if self.annotations:
            out["annotations"] = self.annotations
        out["occurrenceTime"] = self.occurrence_time or "0001-01-01T00:00:00Z"
        return out

    @classmethod
    def from_json(cls, item) -> LogRecord:
        if not isinstance(item, dict):
            raise TrafficLogError(f"a JSON record must be an object, got {type(item).__name__}")
        return cls(
            id=str(item.get("id") or ""), type=_kind(item.get("reqType")), body=_unbase64(item.get("bytes")),
            endpoint=str(item.get("endpoint") or ""), inference_service=str(item.get("inferenceService") or ""),
            namespace=str(item.get("namespace") or ""), component=str(item.get("component") or ""),
            content_type=str(item.get("contentType") or ""), url=_url_text(item.get("url")),
            source_uri=_url_text(item.get("sourceUri")), metadata=item.get("metadata") or {},
            annotations=item.get("annotations") or {},
            occurrence_time="" if str(item.get("occurrenceTime", "")).startswith("0001-") else str(item.get("occurrenceTime") or ""),
        )

    # CSV and Parquet: the flattened logRecord -------------------------------------------------

    def to_row(self) -> dict:
        return {"url": self.url, "bytes": base64.b64encode(self.body).decode(), "contentType": self.content_type,
                "reqType": self.req_type, "id": self.id, "sourceUri": self.source_uri,
                "inferenceService": self.inference_service, "namespace": self.namespace,
                "component": self.component, "endpoint": self.endpoint,
                "metadata": json.dumps(self.metadata, separators=(",", ":")) if self.metadata else "",
                "annotations": json.dumps(self.annotations, separators=(",", ":")) if self.annotations else "",
                "certName": "", "tlsSkipVerify": False}

    @classmethod
    def from_row(cls, row: dict) -> LogRecord:
        return cls(
            id=str(row.get("id") or ""), type=_kind(row.get("reqType")), body=_unbase64(row.get("bytes")),
            endpoint=str(row.get("endpoint") or ""), inference_service=str(row.get("inferenceService") or ""),
            namespace=str(row.get("namespace") or ""), component=str(row.get("component") or ""),
            content_type=str(row.get("contentType") or ""), url=str(row.get("url") or ""),
            source_uri=str(row.get("sourceUri") or ""), metadata=_json_text(row.get("metadata"), "metadata"),
            annotations=_json_text(row.get("annotations"), "annotations"),
        )


def _kind(req_type) -> str:
    """'request' or 'response' from the CloudEvents type (or its last part, as KServe's keys use it)."""
    text = str(req_type or "")
    kind = text.rpartition(".")[2]
    if kind not in KINDS:
        raise TrafficLogError(f"reqType '{text[:80]}' is neither a request nor a response")
    return kind


def _unbase64(value) -> bytes:
    if not value:
        return b""
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError as exc:
        raise TrafficLogError(f"bytes is not base64 ({describe(exc, 80)})") from exc


def _json_text(value, name: str) -> dict:
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return {}
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError) as exc:
        raise TrafficLogError(f"{name} is not JSON text") from exc
    return parsed if isinstance(parsed, dict) else {}


def _go_url(text: str) -> dict:
    """A URL as Go's encoding/json writes a *url.URL: the struct's exported fields."""
    parts = urllib.parse.urlsplit(text)
    return {"Scheme": parts.scheme, "Opaque": "", "User": None, "Host": parts.netloc, "Path": parts.path,
            "RawPath": "", "OmitHost": False, "ForceQuery": False, "RawQuery": parts.query, "Fragment": parts.fragment,
            "RawFragment": ""}


def _url_text(value) -> str:
    """A URL from either form (the Go struct, or a string)."""
    if isinstance(value, dict):
        text = f"{value.get('Scheme')}://{value.get('Host', '')}{value.get('Path', '')}" if value.get("Scheme") else str(value.get("Path", ""))
        return text + (f"?{value['RawQuery']}" if value.get("RawQuery") else "")
    return str(value or "")


# --------------------------------------------------------------------------------------------
# Objects: names, bytes written and read back.


def extension(fmt: str) -> str:
    if fmt not in FORMATS:
        raise TrafficLogError(f"traffic log format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    return fmt


def object_prefix(uri: str, *, namespace: str, inference_service: str, component: str = "predictor", path: str = "") -> str:
    """`<uri>/<namespace>/<inferenceService>/<component>/<path>`, empty parts left out as KServe does."""
    parts = [p.strip("/") for p in (namespace, inference_service, component, path) if p and p.strip("/")]
    return posixpath.join(uri.rstrip("/"), *parts) if parts else uri.rstrip("/")


def object_key(uri: str, first: LogRecord, fmt: str, *, path: str = "") -> str:
    """The name of the object holding a batch that starts with `first`."""
    prefix = object_prefix(uri, namespace=first.namespace, inference_service=first.inference_service,
                           component=first.component, path=path)
    return f"{prefix}/{first.id}-{first.type}.{extension(fmt)}"


def encode_batch(records: list[LogRecord], fmt: str) -> bytes:
    """The bytes of one object holding `records`, in the agent's format `fmt`."""
    if not records:
        raise TrafficLogError("a traffic log batch needs at least one record")
    extension(fmt)
    if fmt == "json":
        items = [r.to_json() for r in records]
        return json.dumps(items[0] if len(items) == 1 else items, separators=(",", ":")).encode()
    rows = [r.to_row() for r in records]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow(["true" if row[c] is True else "false" if row[c] is False else row[c] for c in COLUMNS])
        return out.getvalue().encode()
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({c: pa.array([row[c] for row in rows], type=pa.bool_() if c == "tlsSkipVerify" else pa.string())
                      for c in COLUMNS})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def format_of(name: str) -> str:
    ext = name.rpartition(".")[2].lower()
    if ext not in FORMATS:
        raise TrafficLogError(f"{name}: not a traffic log object (extension .{ext}, expected one of {', '.join(FORMATS)})")
    return ext


def decode_batch(data: bytes, fmt: str) -> list[LogRecord]:
    """The records of one object. Any damage (truncated, not the format, a bad record) is a
    TrafficLogError: an object is read whole or not at all."""
    extension(fmt)
    try:
        if fmt == "json":
            parsed = json.loads(data)
            items = parsed if isinstance(parsed, list) else [parsed]
            return [LogRecord.from_json(item) for item in items]
        if fmt == "csv":
            reader = csv.reader(io.StringIO(data.decode("utf-8")))
            header = next(reader, None)
            if header is None or "reqType" not in header or "id" not in header:
                raise TrafficLogError("CSV without KServe's header row")
            out = []
            for row in reader:
                if len(row) != len(header):
                    raise TrafficLogError(f"CSV row of {len(row)} fields under a header of {len(header)}")
                out.append(LogRecord.from_row(dict(zip(header, row, strict=True))))
            return out
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        return [LogRecord.from_row(row) for row in table.to_pylist()]
    except TrafficLogError:
        raise
    except Exception as exc:  # truncated, not UTF-8, not JSON, not Parquet
        raise TrafficLogError(describe(exc, 200)) from exc


def decode_parts(data: bytes, fmt: str) -> list[tuple[str, str, str, bytes]]:
    """(type, id, endpoint, body) of each record of one object: what a reader of traffic needs,
    without the rest of each record (quicker than decode_batch for JSON, with the same checks of
    the type and the base64 body)."""
    if extension(fmt) != "json":
        return [(r.type, r.id, r.endpoint, r.body) for r in decode_batch(data, fmt)]
    try:
        parsed = json.loads(data)
        out = []
        for item in parsed if isinstance(parsed, list) else [parsed]:
            if not isinstance(item, dict):
                raise TrafficLogError(f"a JSON record must be an object, got {type(item).__name__}")
            raw = item.get("bytes")
            body = binascii.a2b_base64(raw, strict_mode=True) if raw else b""
            out.append((_kind(item.get("reqType")), str(item.get("id") or ""), str(item.get("endpoint") or ""), body))
        return out
    except TrafficLogError:
        raise
    except Exception as exc:  # truncated, not JSON, not base64
        raise TrafficLogError(describe(exc, 200)) from exc


# --------------------------------------------------------------------------------------------
# The writer that stands in for KServe's agent.


def _filesystem(uri: str):
    import fsspec

    return fsspec.core.url_to_fs(uri)


def write_batch(uri: str, records: list[LogRecord], fmt: str, *, path: str = "") -> str:
    """Write one batch as one object under `uri` (a folder, s3:// or gs:// prefix); returns its name."""
    name = object_key(uri, records[0], fmt, path=path)
    data = encode_batch(records, fmt)
    fs, target = _filesystem(name)
    fs.makedirs(posixpath.dirname(target), exist_ok=True)
    with fs.open(target, "wb") as out:
        out.write(data)
    return name


def parse_interval(text: str) -> float:
    """Seconds of a Go duration as KServe's batchInterval takes it ("5s", "100ms", "1m"); "" or "0" is none."""
    text = str(text or "").strip()
    if text in ("", "0"):
        return 0.0
    for unit, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * scale
    raise TrafficLogError(f"traffic log batch interval must be a duration such as '5s' or '100ms', got '{text}'")


class TrafficLogWriter:
    """Batches records and writes each batch as one object, as KServe's agent does with
    `batchSize` and `batchInterval`. Stands in for the agent where none runs. Thread-safe;
    `close()` writes what is left."""

    def __init__(self, uri: str, *, fmt: str = "json", batch_size: int = 1, batch_interval: str = "",
                 path: str = "") -> None:
        if not uri:
            raise TrafficLogError("traffic log URI is empty")
        if batch_size < 1:
            raise TrafficLogError(f"traffic log batch size must be at least 1, got {batch_size}")
        self.uri, self.fmt, self.batch_size, self.path = uri.rstrip("/"), extension(fmt), batch_size, path
        self.interval = parse_interval(batch_interval)
        self._buffer: list[LogRecord] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.written: list[str] = []
        self.dropped = 0  # records of batches that could not be uploaded
        self._timer = None
        if self.interval > 0 and batch_size > 1:
            self._timer = threading.Thread(target=self._tick, name="traffic-log-flush", daemon=True)
            self._timer.start()

    def add(self, record: LogRecord) -> None:
        with self._lock:
            self._buffer.append(record)
            batch = self._take() if len(self._buffer) >= self.batch_size else None
        if batch:
            self._write(batch)

    def flush(self) -> None:
        with self._lock:
            batch = self._take()
        if batch:
            self._write(batch)

    def close(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join(timeout=5)
        self.flush()

    def _take(self) -> list[LogRecord]:
        batch, self._buffer = self._buffer, []
        return batch

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def _write(self, batch: list[LogRecord]) -> None:
        try:
            name = write_batch(self.uri, batch, self.fmt, path=self.path)
        except Exception as exc:  # the agent drops a failed upload without retry; so does this
            self.dropped += len(batch)
            log.error("traffic log: dropped a batch of %d records, upload under %s failed: %s",
                      len(batch), redact(self.uri), describe(exc, 300))
            return
        self.written.append(name)


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
