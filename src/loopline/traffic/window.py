"""The traffic window: what one model was asked and answered in the last `window_hours`, built from
the objects KServe's logger (or Loopline's server in its place: traffic_capture.py) wrote.

- The objects of one InferenceService are listed under
  `<uri>/<namespace>/<inferenceService>/`; an object is in the window when its time in the store
  (last modified) is within the last `window_hours`. Loopline puts a version's objects under
  storage.path `v<version>`, so one version can be read alone; one endpoint (default or canary)
  too, by the records' `endpoint`.
- Request bodies are decoded into the model's feature columns: V1 `{"instances": [{feature:
  value}, ...]}` (or rows as lists in feature order) and V2 `{"inputs": [...]}` (one tensor per
  feature, or one [n, features] tensor). Each response's probabilities (V1 `predictions`, V2
  `outputs`) are joined to its request by their shared id: `prediction` is the last class's
  probability, `predicted_class` the index of the largest.
- Nothing is guessed. A request without a response (the server failed, a batch was lost) and a
  response without a request are counted, not used; so are records that cannot be decoded (a
  body that is not JSON, a missing feature column, rows that do not match), each kind counted
  with one example, and objects that cannot be read (truncated, not the format). None becomes a
  row. When more than `max_bad_share` of the records (a bad object counting as one) is bad, the
  window fails with one line naming an object.

Objects are read by a pool of threads (a busy day is tens of thousands of small objects), a
bounded number at a time in the order they were written, so that a request and its response
meet soon and memory holds the window's rows, not the objects.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from loopline.core.errors import DataError, describe, redact
from loopline.traffic import log as traffic_log

log = logging.getLogger(__name__)

MAX_BAD_SHARE = 0.05  # more than this share of bad records fails the window
THREADS = 16
VERSION_PATH = re.compile(r"^v(?P<version>[0-9]+)$")
META = ("request_id", "endpoint", "model_version", "prediction", "predicted_class")
FRAME_ROWS = 50_000  # rows gathered before they become a compact frame


@dataclass(frozen=True, kw_only=True)
class WindowSettings:
    """Which traffic `load_traffic` reads: the one declaration of these settings and their defaults."""

    namespace: str = "default"  # the InferenceService's namespace (the local server logs under "default")
    inference_service: str = ""  # empty: the InferenceService Loopline names after the model
    window_hours: float = 24.0
    version: str = ""  # empty: every version
    endpoint: str = ""  # default, canary, or empty for both
    max_bad_share: float = MAX_BAD_SHARE

    def __post_init__(self) -> None:
        if self.endpoint and self.endpoint not in traffic_log.ENDPOINTS:
            raise DataError(f"endpoint must be 'default' or 'canary' (or empty for both), got '{self.endpoint}'")
        if not self.window_hours > 0:
            raise DataError(f"window_hours must be more than 0, got {self.window_hours}")
        if not 0 <= self.max_bad_share <= 1:
            raise DataError(f"max_bad_share must be between 0 and 1, got {self.max_bad_share}")


class NoTraffic(DataError):
    """No objects were logged for the model in the window."""


class BadTraffic(DataError):
    """More of the traffic log is bad than the stated share."""


@dataclass
class WindowCounts:
    objects: int = 0
    bad_objects: int = 0
    requests: int = 0
    responses: int = 0
    pairs: int = 0
    unpaired_requests: int = 0
    unpaired_responses: int = 0
    undecodable: int = 0
    examples: dict = field(default_factory=dict)  # kind of fault -> one example "<object>: <reason>"
    rows_per_version: Counter = field(default_factory=Counter)
    rows_per_endpoint: Counter = field(default_factory=Counter)

    @property
    def rows(self) -> int:
        return sum(self.rows_per_endpoint.values())

    def bad_share(self) -> float:
        total = self.requests + self.responses + self.bad_objects  # undecodable records are among the first two
        return (self.undecodable + self.bad_objects) / total if total else 0.0

    def line(self) -> str:
        per_version = ", ".join(f"v{v} {n:,}" for v, n in sorted(self.rows_per_version.items())) or "none"
        per_endpoint = ", ".join(f"{e} {n:,}" for e, n in sorted(self.rows_per_endpoint.items())) or "none"
        text = (f"{self.objects:,} objects ({self.bad_objects:,} unreadable), {self.requests:,} requests, "
                f"{self.responses:,} responses, {self.pairs:,} pairs, unpaired: {self.unpaired_requests:,} requests "
                f"and {self.unpaired_responses:,} responses, {self.undecodable:,} undecodable; rows {self.rows:,} "
                f"(versions: {per_version}; endpoints: {per_endpoint})")
        if self.examples:
            text += "; e.g. " + next(iter(self.examples.values()))
        return text

    def metrics(self) -> dict[str, float]:
        out = {k: float(getattr(self, k)) for k in ("objects", "bad_objects", "requests", "responses", "pairs",
                                                    "unpaired_requests", "unpaired_responses", "undecodable")}
        out["rows"] = float(self.rows)
        out.update({f"rows_v{v}": float(n) for v, n in self.rows_per_version.items()})
        out.update({f"rows_{e}": float(n) for e, n in self.rows_per_endpoint.items()})
        return out

    def fault(self, kind: str, where: str, reason: str) -> None:
        self.examples.setdefault(kind, f"{where}: {reason}")


@dataclass
class Window:
    frame: object  # pandas DataFrame: the features, then META
    counts: WindowCounts
    features: list[str]


def _object_time(info: dict) -> datetime | None:
    for key in ("LastModified", "updated", "mtime", "timeCreated", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, UTC)
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            continue
    return None


def list_window(uri: str, *, namespace: str, inference_service: str, window_hours: float = 24.0,
                version: str = "", now: datetime | None = None):
    """(filesystem, [(path, version, time)]) of the objects in the window, oldest first."""
    import fsspec

    base = traffic_log.object_prefix(uri, namespace=namespace, inference_service=inference_service, component="")
    try:
        fs, root = fsspec.core.url_to_fs(base)
        found = fs.find(root, detail=True) if fs.exists(root) else {}
    except Exception as exc:
        raise DataError(f"cannot list the traffic log under {redact(base)}: {describe(exc, 300)}") from exc
    since = (now or datetime.now(UTC)) - timedelta(hours=window_hours)
    out = []
    for path, info in found.items():
        if info.get("type") == "directory" or path.rpartition(".")[2] not in traffic_log.FORMATS:
            continue
        parts = path[len(root.rstrip("/")) + 1:].split("/")  # component, path..., name
        match = VERSION_PATH.match(parts[1]) if len(parts) > 2 else None
        object_version = match["version"] if match else ""
        if version and object_version != str(version):
            continue
        when = _object_time(info)
        if when is None or when >= since:
            out.append((path, object_version, when or since))
    out.sort(key=lambda item: (item[2], item[0]))
    return fs, out


def _rows_v1(body: dict, features: list[str] | None) -> list:
    instances = body["instances"]
    if not isinstance(instances, list):
        raise ValueError("'instances' is not a list")
    return [row if isinstance(row, dict) else dict(zip(features or [], row, strict=True)) if isinstance(row, list)
            else _bad("an instance is neither an object nor a list") for row in instances]


def _rows_v2(body: dict, features: list[str] | None) -> list:
    inputs = body["inputs"]
    if len(inputs) == 1 and len(inputs[0].get("shape", [])) == 2 and features and inputs[0]["shape"][1] == len(features):
        data, width = inputs[0]["data"], len(features)
        return [dict(zip(features, data[i:i + width], strict=True)) for i in range(0, len(data), width)]
    columns = {t["name"]: t["data"] for t in inputs}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError("the input tensors differ in length")
    n = lengths.pop() if lengths else 0
    return [{name: values[i] for name, values in columns.items()} for i in range(n)]


def _bad(reason: str):
    raise ValueError(reason)


def decode_request(body: bytes, features: list[str] | None) -> list[dict]:
    """Feature rows of a V1 or V2 request body; ValueError names what is wrong."""
    parsed = json.loads(body)
    if not isinstance(parsed, dict):
        raise ValueError("the body is not a JSON object")
    if "instances" in parsed:
        rows = _rows_v1(parsed, features)
    elif "inputs" in parsed:
        rows = _rows_v2(parsed, features)
    else:
        raise ValueError("neither V1 'instances' nor V2 'inputs'")
    for row in rows:
        missing = [f for f in features or () if f not in row]
        if missing:
            raise ValueError(f"missing feature column '{missing[0]}'")
    return rows


def decode_response(body: bytes) -> list[list[float]]:
    """Class probabilities per row of a V1 or V2 response body."""
    parsed = json.loads(body)
    if not isinstance(parsed, dict):
        raise ValueError("the body is not a JSON object")
    if "predictions" in parsed:
        return [[float(p) for p in row] if isinstance(row, list) else [float(row)] for row in parsed["predictions"]]
    if "outputs" in parsed:
        tensor = next((t for t in parsed["outputs"] if t.get("name") == "probabilities"), parsed["outputs"][0])
        data, shape = [float(v) for v in tensor["data"]], tensor.get("shape") or [len(tensor["data"])]
        width = int(shape[1]) if len(shape) > 1 else 1
        return [data[i:i + width] for i in range(0, len(data), width)]
    raise ValueError("neither V1 'predictions' nor V2 'outputs'")


def _read(fs, path: str, features: list[str] | None, endpoint: str):
    """(records decoded, faults) of one object, or the reason it cannot be read."""
    try:
        records = traffic_log.decode_parts(fs.cat_file(path), traffic_log.format_of(path))
    except Exception as exc:
        return None, describe(exc, 200)
    out, faults = [], []
    for kind, record_id, record_endpoint, body in records:
        if endpoint and record_endpoint != endpoint:
            continue
        try:
            value = decode_request(body, features) if kind == "request" else decode_response(body)
        except Exception as exc:  # not JSON, no instances, a missing column: counted, never a row
            faults.append((kind, record_id, describe(exc, 160) if not isinstance(exc, ValueError) else str(exc)[:160]))
            continue
        out.append((kind, record_id, record_endpoint or "default", value))
    return out, faults


def build_window(uri: str, *, model_name: str, namespace: str = "default", inference_service: str = "",
                 window_hours: float = 24.0, version: str = "", endpoint: str = "", features: list[str] | None = None,
                 max_bad_share: float = MAX_BAD_SHARE, threads: int = THREADS, now: datetime | None = None) -> Window:
    """The window of `model_name`'s traffic (see the module's docstring)."""
    import pandas as pd

    if endpoint and endpoint not in traffic_log.ENDPOINTS:
        raise DataError(f"endpoint must be 'default' or 'canary' (or empty for both), got '{endpoint}'")
    if not window_hours > 0:
        raise DataError(f"window_hours must be more than 0, got {window_hours}")
    fs, objects = list_window(uri, namespace=namespace, inference_service=inference_service or model_name,
                              window_hours=window_hours, version=version, now=now)
    if not objects:
        raise NoTraffic(f"no traffic logged for {model_name} under {redact(uri)} in the last {window_hours:g} h")
    counts = WindowCounts(objects=len(objects))
    features = list(features or [])
    pending_requests: dict[str, tuple] = {}
    pending_responses: dict[str, tuple] = {}
    feature_rows: list[dict] = []
    meta: dict[str, list] = {name: [] for name in META}
    frames = []
    chunk = max(1, threads) * 8

    def emit(rows, probabilities, record_id, where_endpoint, object_version):
        if not features and rows:  # no feature list given: the first request's columns
            features.extend(rows[0])
        feature_rows.extend(rows)
        for proba in probabilities:
            best = max(range(len(proba)), key=proba.__getitem__) if proba else -1
            for name, value in zip(META, (record_id, where_endpoint, object_version, proba[-1] if proba else math.nan,
                                          best), strict=True):
                meta[name].append(value)
        counts.rows_per_version[object_version or "?"] += len(rows)
        counts.rows_per_endpoint[where_endpoint] += len(rows)
        if len(feature_rows) >= FRAME_ROWS:
            flush()

    def flush():
        if feature_rows:
            frame = pd.DataFrame.from_records(feature_rows, columns=features)
            for name in META:
                frame[name] = meta[name]
            frames.append(frame)
            feature_rows.clear()
            for values in meta.values():
                values.clear()

    def pair(record_id, request, response, path):
        (where_endpoint, object_version, rows), (_, _, probabilities) = request, response
        if len(rows) != len(probabilities):
            counts.undecodable += 1
            counts.fault("rows", path, f"response {record_id} has {len(probabilities)} rows for a request of {len(rows)}")
            return
        counts.pairs += 1
        emit(rows, probabilities, record_id, where_endpoint, object_version)

    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="traffic-window") as pool:
        for start in range(0, len(objects), chunk):  # a bounded number of objects in flight
            batch = objects[start:start + chunk]
            for (path, object_version, _), (decoded, faults) in zip(
                    batch, pool.map(lambda item: _read(fs, item[0], features or None, endpoint), batch), strict=True):
                if decoded is None:
                    counts.bad_objects += 1
                    counts.fault("object", path, faults)
                    continue
                for kind, record_id, reason in faults:
                    counts.requests += kind == "request"
                    counts.responses += kind == "response"
                    counts.undecodable += 1
                    counts.fault(kind, path, f"{kind} {record_id}: {reason}")
                for kind, record_id, where_endpoint, value in decoded:
                    if kind == "request":
                        counts.requests += 1
                        request = (where_endpoint, object_version, value)
                        if record_id in pending_responses:
                            pair(record_id, request, pending_responses.pop(record_id), path)
                        else:
                            pending_requests[record_id] = request
                    else:
                        counts.responses += 1
                        response = (where_endpoint, object_version, value)
                        if record_id in pending_requests:
                            pair(record_id, pending_requests.pop(record_id), response, path)
                        else:
                            pending_responses[record_id] = response
    counts.unpaired_requests, counts.unpaired_responses = len(pending_requests), len(pending_responses)
    if counts.bad_share() > max_bad_share:
        example = counts.examples.get("object") or next(iter(counts.examples.values()), "")
        raise BadTraffic(f"{counts.bad_share():.1%} of the traffic log of {model_name} under {redact(uri)} is bad "
                         f"(more than {max_bad_share:.0%}): {redact(example)}")
    flush()
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({n: [] for n in (*features, *META)})
    log.info("traffic window of %s under %s, last %g h: %s", model_name, redact(uri), window_hours, redact(counts.line()))
    return Window(frame, counts, features)
