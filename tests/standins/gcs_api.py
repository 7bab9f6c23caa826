"""Stand-in for the Cloud Storage JSON API, for the real `gcsfs` client (STORAGE_EMULATOR_HOST).

Holds objects in memory and answers only what gcsfs sends for what Loopline does with gs:// data:
bucket metadata (`GET /storage/v1/b/<bucket>`), object metadata (`GET /storage/v1/b/<bucket>/o/<name>`), listing (`GET .../o?prefix=&delimiter=`),
media downloads with byte ranges (`GET /download/storage/v1/b/<bucket>/o/<name>?alt=media`),
multipart and resumable uploads (`POST /upload/storage/v1/b/<bucket>/o?uploadType=...`, then the chunks
to the session) and deletes.
Anything else is answered 501, so that a new kind of call shows up as a failure, not as success.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime
from itertools import count
from urllib.parse import unquote

from .recording import RecordingServer, Reply, Request

OBJECT = re.compile(r"^/(?P<kind>storage|download/storage)/v1/b/(?P<bucket>[^/]+)/o(?:/(?P<name>.+))?$")
BUCKET = re.compile(r"^/storage/v1/b/(?P<bucket>[^/]+)$")
UPLOAD = re.compile(r"^/upload/storage/v1/b/(?P<bucket>[^/]+)/o$")


def _not_found(what: str) -> Reply:
    return Reply(404, {"error": {"code": 404, "message": f"No such object: {what}"}})


class GcsApiStandIn(RecordingServer):
    def __init__(self, buckets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.generations = count(1)
        self.buckets: dict[str, dict[str, tuple[bytes, dict]]] = {name: {} for name in buckets}
        self.sessions: dict[str, tuple[str, str, bytearray]] = {}  # resumable uploads: id -> bucket, name, data

    # what tests use ---------------------------------------------------------------------------

    def put(self, bucket: str, name: str, data: bytes) -> None:
        with self.lock:
            self._store(bucket, name, data)

    def object_names(self, bucket: str) -> list[str]:
        with self.lock:
            return sorted(self.buckets.get(bucket, {}))

    # the API ----------------------------------------------------------------------------------

    def _store(self, bucket: str, name: str, data: bytes) -> dict:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        meta = {"kind": "storage#object", "bucket": bucket, "name": name, "size": str(len(data)),
                "generation": str(next(self.generations)), "metageneration": "1",
                "contentType": "application/octet-stream", "timeCreated": now, "updated": now,
                "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode()}
        self.buckets.setdefault(bucket, {})[name] = (data, meta)
        return meta

    def handle(self, request: Request) -> Reply:
        upload = UPLOAD.match(request.path)
        if upload and request.method in ("POST", "PUT") and request.query.get("upload_id") in self.sessions:
            return self._chunk(request.query["upload_id"], request)  # gcsfs sends the chunks as POST
        if upload and request.method == "POST" and request.query.get("uploadType") == "multipart":
            return self._upload(upload["bucket"], request)
        if upload and request.method == "POST" and request.query.get("uploadType") == "resumable":
            session = str(next(self.generations))
            name = request.query.get("name") or (request.body or {}).get("name")
            self.sessions[session] = (upload["bucket"], name, bytearray())
            return Reply(200, body={}, headers={
                "Location": f"{self.url}{request.path}?uploadType=resumable&upload_id={session}"})
        bucket_only = BUCKET.match(request.path)
        if bucket_only and request.method == "GET":  # bucket metadata (gcsfs asks before writing)
            if bucket_only["bucket"] not in self.buckets:
                return Reply(404, {"error": {"code": 404, "message": f"The specified bucket does not exist: {bucket_only['bucket']}"}})
            return Reply(body={"kind": "storage#bucket", "id": bucket_only["bucket"], "name": bucket_only["bucket"],
                               "location": "US", "storageClass": "STANDARD"})
        match = OBJECT.match(request.path)
        if not match:
            return Reply(501, {"error": {"code": 501, "message": f"not in the stand-in: {request.method} {request.path}"}})
        bucket, name = match["bucket"], unquote(match["name"] or "")
        if bucket not in self.buckets:
            return Reply(404, {"error": {"code": 404, "message": f"The specified bucket does not exist: {bucket}"}})
        objects = self.buckets[bucket]
        if not name and request.method == "GET":
            return self._list(objects, request.query.get("prefix") or "", request.query.get("delimiter"))
        if name not in objects:
            return _not_found(f"{bucket}/{name}")
        data, meta = objects[name]
        if request.method == "DELETE":
            del objects[name]
            return Reply(204, raw=b"")
        if match["kind"] == "download/storage" or request.query.get("alt") == "media":
            return self._media(data, request.headers.get("range"))
        return Reply(body=meta)

    def _list(self, objects: dict[str, tuple[bytes, dict]], prefix: str, delimiter: str | None) -> Reply:
        items, prefixes = [], set()
        for name in sorted(objects):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix):]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
            else:
                items.append(objects[name][1])
        return Reply(body={"kind": "storage#objects", "items": items, "prefixes": sorted(prefixes)})

    @staticmethod
    def _media(data: bytes, range_header: str | None) -> Reply:
        if not range_header:
            return Reply(200, raw=data)
        start_text, _, end_text = range_header.removeprefix("bytes=").partition("-")
        start = int(start_text)
        end = min(int(end_text), len(data) - 1) if end_text else len(data) - 1
        return Reply(206, raw=data[start:end + 1], headers={"Content-Range": f"bytes {start}-{end}/{len(data)}"})

    def _chunk(self, session: str, request: Request) -> Reply:
        bucket, name, data = self.sessions[session]
        data += request.raw
        total = request.headers.get("content-range", "").rpartition("/")[2]
        if total == "*":  # more chunks to come
            return Reply(308, body={}, headers={"Range": f"bytes=0-{len(data) - 1}"})
        del self.sessions[session]
        return Reply(body=self._store(bucket, name, bytes(data)))

    def _upload(self, bucket: str, request: Request) -> Reply:
        boundary = re.search(r'boundary="?([^";]+)"?', request.headers.get("content-type", ""))
        if not boundary:
            return Reply(400, {"error": {"code": 400, "message": "multipart upload without a boundary"}})
        parts = request.raw.split(b"--" + boundary[1].encode())[1:-1]
        contents = []
        for part in parts:
            head, _, body = part.lstrip(b"\r\n").partition(b"\n\n") if b"\r\n\r\n" not in part \
                else part.lstrip(b"\r\n").partition(b"\r\n\r\n")
            contents.append(body[:-2] if body.endswith(b"\r\n") else body[:-1] if body.endswith(b"\n") else body)
        metadata, data = json.loads(contents[0]), contents[1]
        return Reply(body=self._store(bucket, metadata["name"], data))
