"""`loopline traffic`: replay a dataset against a model endpoint as HTTP requests, and read the
logged traffic window back.

    loopline traffic replay data.csv --url http://127.0.0.1:8080 --model fraud [--drop is_fraud]
    loopline traffic window s3://bucket/traffic --model fraud [--hours 24] [--json]

`replay` sends V1 requests (`{"instances": [...]}`, `--rows-per-request` rows each) and reports
how many were answered; `window` prints the window's counts (traffic_window.py) and exits 2 with
"no traffic logged for <model> under <uri> in the last 24 h" when nothing was logged.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

from loopline.core.errors import DataError, LooplineError, describe
from loopline.data import tables as data
from loopline.serving import inference_service
from loopline.traffic import log as traffic_log
from loopline.traffic import window as traffic_window


def predict_url(url: str, model: str) -> str:
    """The V1 predict URL of `model` at a base URL, or `url` itself when it is one already."""
    if ":predict" in url or "/infer" in url:
        return url
    if not model:
        raise LooplineError("--model is required unless --url is a predict URL (.../v1/models/<name>:predict)")
    return f"{url.rstrip('/')}/v1/models/{model}:predict"


def replay(rows: list[dict], url: str, *, rows_per_request: int = 1, concurrency: int = 4, id_prefix: str = "",
           timeout: float = 30.0) -> dict:
    """Send `rows` as V1 requests; {requests, rows, answered, failed, first_failure}."""
    if rows_per_request < 1:
        raise LooplineError(f"--rows-per-request must be at least 1, got {rows_per_request}")
    chunks = [rows[i:i + rows_per_request] for i in range(0, len(rows), rows_per_request)]
    prefix = id_prefix or uuid.uuid4().hex[:8]

    def send(item):
        number, chunk = item
        request = urllib.request.Request(url, data=json.dumps({"instances": chunk}).encode(),
                                         headers={"Content-Type": "application/json", "Ce-Id": f"{prefix}-{number}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's endpoint
                response.read()
                return ""
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return describe(exc, 200)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        outcomes = list(pool.map(send, enumerate(chunks)))
    failed = [o for o in outcomes if o]
    if chunks and len(failed) == len(chunks) and not failed[0].startswith("HTTP"):
        raise LooplineError(f"cannot reach {url}: {failed[0]}")
    return {"requests": len(chunks), "rows": len(rows), "answered": len(chunks) - len(failed), "failed": len(failed),
            "first_failure": failed[0] if failed else ""}


def cmd_replay(args: argparse.Namespace) -> int:
    frame = data.read_table(args.data)
    missing = [c for c in args.drop or [] if c not in frame.columns]
    if missing:
        raise DataError(f"--drop column '{missing[0]}' not found in {args.data} (columns: {', '.join(map(str, frame.columns))})")
    frame = frame.drop(columns=args.drop or [])
    if args.limit:
        frame = frame.head(args.limit)
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    result = replay(rows, predict_url(args.url, args.model), rows_per_request=args.rows_per_request,
                    concurrency=args.concurrency, id_prefix=args.id_prefix)
    if args.json:
        print(json.dumps(result))
    else:
        failure = f" (first: {result['first_failure']})" if result["failed"] else ""
        print(f"sent {result['requests']:,} requests ({result['rows']:,} rows): {result['answered']:,} answered, "
              f"{result['failed']:,} failed{failure}")
    return 0 if not result["failed"] else 1


def cmd_window(args: argparse.Namespace) -> int:
    window = traffic_window.build_window(
        args.uri, model_name=args.model, namespace=args.namespace,
        inference_service=args.inference_service or inference_service.isvc_name(args.model),
        window_hours=args.hours, version=args.version, endpoint=args.endpoint,
        features=[f for f in (args.features or "").split(",") if f] or None, max_bad_share=args.max_bad_share,
    )
    if args.out:
        window.frame.to_parquet(args.out, index=False)
    if args.json:
        print(json.dumps(window.counts.metrics()))
    else:
        print(window.counts.line())
    return 0


def add_traffic_commands(sub) -> None:
    """The `traffic` subcommand of the `loopline` parser."""
    traffic = sub.add_parser("traffic", help="replay a dataset against an endpoint; read the logged traffic window")
    commands = traffic.add_subparsers(dest="traffic_command", required=True, metavar="COMMAND")
    rep = commands.add_parser("replay", help="send a CSV or Parquet file's rows to a model endpoint as V1 requests")
    rep.add_argument("data", help="CSV or Parquet file (path or URI)")
    rep.add_argument("--url", required=True, help="the server's base URL, or a predict URL")
    rep.add_argument("--model", default="", help="model name in /v1/models/<name>:predict")
    rep.add_argument("--drop", action="append", metavar="COLUMN", help="a column not sent (the label, an id); repeatable")
    rep.add_argument("--rows-per-request", type=int, default=1, help="rows per request (default: %(default)s)")
    rep.add_argument("--concurrency", type=int, default=4, help="requests in flight (default: %(default)s)")
    rep.add_argument("--limit", type=int, default=0, help="send only the first N rows; 0 for all")
    rep.add_argument("--id-prefix", default="", help="prefix of the Ce-Id of each request (default: a random one)")
    rep.add_argument("--json", action="store_true", help="print one JSON object: requests, rows, answered, failed")
    rep.set_defaults(func=cmd_replay)
    win = commands.add_parser("window", help="the logged traffic of one model in the last hours, counted")
    win.add_argument("uri", help="the traffic log's prefix (s3://, gs:// or a folder)")
    win.add_argument("--model", required=True, help="registered model name (the InferenceService is named after it)")
    win.add_argument("--namespace", default="default", help="namespace of the InferenceService (default: %(default)s)")
    win.add_argument("--inference-service", default="", help="InferenceService name; default: the one named after the model")
    win.add_argument("--hours", type=float, default=24.0, help="how far back the window reaches (default: %(default)s)")
    win.add_argument("--version", default="", help="only this model version's traffic")
    win.add_argument("--endpoint", default="", choices=["", *traffic_log.ENDPOINTS], help="only default or canary traffic")
    win.add_argument("--features", default="", help="the model's feature columns, comma-separated; default: the first request's")
    win.add_argument("--max-bad-share", type=float, default=traffic_window.MAX_BAD_SHARE,
                     help="largest share of bad records before the window fails (default: %(default)s)")
    win.add_argument("--out", default="", help="write the window as Parquet here")
    win.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    win.set_defaults(func=cmd_window)
