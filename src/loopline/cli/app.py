"""The `loopline` command line: run the loop locally, compile the pipelines, serve the champion,
submit and schedule the compiled pipelines on a KFP cluster or on Vertex AI."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from loopline.cli.checks import add_check_commands, out_dir
from loopline.cli.remote import (
    add_run_options,
    add_target_options,
    cmd_schedule,
    cmd_schedules,
    cmd_submit,
)
from loopline.cli.traffic import add_traffic_commands
from loopline.core import names
from loopline.core.errors import LooplineError
from loopline.core.home import loopline_home, model_cache_dir
from loopline.core.logs import setup_logging
from loopline.core.masking import MaskingStream
from loopline.core.signals import Terminated, terminated_as_interrupt
from loopline.drift.settings import DriftSettings
from loopline.local import console
from loopline.ops import cluster
from loopline.serving import server as serving
from loopline.serving import targets
from loopline.tuning.study import TuningSettings


def _home(value: str | None) -> Path:
    return loopline_home(value or "")


MAX_JSON_DEPTH = 32


def _depth(value) -> int:
    """How deeply lists and objects nest in a parsed JSON value (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _json_object(text: str, option: str) -> dict:
    """A JSON object given on the command line."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LooplineError(f"{option} is not valid JSON: {exc}") from None
    except RecursionError as exc:
        raise LooplineError(f"{option} is nested too deeply: give a JSON object of rules") from exc
    if _depth(value) > MAX_JSON_DEPTH:  # whatever Python's recursion limit is
        raise LooplineError(f"{option} is nested too deeply (more than {MAX_JSON_DEPTH} levels): give a JSON object of rules")
    if not isinstance(value, dict):
        raise LooplineError(f"{option} must be a JSON object such as '{{\"roc_auc\": 0.8}}', got a {type(value).__name__}")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    from loopline.local import run as local

    names.model_name(args.model_name, "--model-name")
    home = _home(args.home)
    if args.data:
        if not args.target:
            raise LooplineError("--target is required with --data (the label column)")
        data_uri, current_uri, target = args.data, args.current or "", args.target
        ignore = args.ignore or []
    else:
        from loopline.data.demo import DEMO_IGNORE, DEMO_TARGET, prepare_demo_data

        data_uri, current_uri = prepare_demo_data(home, rows=args.rows)
        target, ignore = DEMO_TARGET, list(DEMO_IGNORE)
    settings = local.LoopSettings(
        home=home,
        data_uri=data_uri,
        target=target,
        current_uri=current_uri,
        ignore_columns=ignore,
        model_name=args.model_name,
        thresholds=None if args.thresholds is None else _json_object(args.thresholds, "--thresholds"),
        n_trials=args.trials,
        max_epochs=args.max_epochs,
        seed=args.seed,
        drift_share=args.drift_share,
        keep_serving=args.keep_serving,
        runner=args.runner,
        tracking_uri=args.tracking_uri or "",
        deploy_target=args.deploy_target,
        storage_uri=args.storage_uri or "",
        partition_filter=args.partition_filter or "",
    )
    if not settings.current_uri:
        print("no --current batch given: running the training pipeline only (no drift monitor)")
    console.run_and_report(lambda on_pipeline: local.run_loop(settings, on_pipeline=on_pipeline),
                         home=home, verbose=args.verbose, command=shlex.join(["loopline", *args.argv]),
                         summary_text=local.format_summary)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    print(console.runs_table(_home(args.home)))
    return 0

def cmd_compile(args: argparse.Namespace) -> int:
    out = out_dir(args.out, "--out")
    from loopline.cli.compile import compile_all

    settings = None
    if args.kubernetes_config:

        settings = cluster.load(args.kubernetes_config)
    written = compile_all(out, registry=args.registry, kubernetes=settings)
    for path in written:
        print(path)
    return 0

def cmd_serve(args: argparse.Namespace) -> int:
    from loopline import registry  # MLflow, pandas

    setup_logging()
    names.model_name(args.model_name, "--model-name")  # it names files under the home: checked first
    names.alias(args.alias, "--alias")
    serving.check_host(args.host)
    home = _home(args.home)
    current = serving.read_state(home, args.model_name)
    if args.stop:
        stopped = []
        for info in ([current] if current else []) + serving.recorded_servers(home, args.model_name):
            if info.pid not in stopped:
                serving.stop_server(info)
                stopped.append(info.pid)
                print(f"stopped {args.model_name} v{info.version} (pid {info.pid})")
        serving.clear_state(home, args.model_name)
        if not stopped:
            print(f"no local server for {args.model_name}")
        return 0
    if args.port:  # before anything else: a busy port is the user's to change
        serving.check_port_free(args.host, args.port)
    if args.tracking_uri:
        tracking_uri = args.tracking_uri
    else:
        if not (home / "mlflow.db").is_file():
            raise LooplineError(f"no local registry in {home}: run `loopline run` first (or give --tracking-uri)")
        tracking_uri = registry.local_tracking_uri(home)
    registry.check_store(tracking_uri)
    version = registry.alias_version(tracking_uri, args.model_name, args.alias, retry=registry.RetryPolicy(attempts=1))
    if version is None:
        raise LooplineError(f"model '{args.model_name}' has no '{args.alias}' alias in {registry.safe_uri(tracking_uri)}; "
                            "run `loopline run` first")
    if current and serving.is_alive(current):
        serving.stop_server(current)
    model_dir = registry.saved_model_dir(tracking_uri, args.model_name, str(version), model_cache_dir(home, args.model_name, str(version)))
    info = serving.start_server(str(model_dir), model_name=args.model_name, version=str(version),
                                log_dir=home / "serving", port=args.port or None, host=args.host)
    serving.write_state(home, info)
    print(f"serving {args.model_name} v{version} ({args.alias}) at {info.predict_url} (pid {info.pid}, listening on {info.host})")
    print(f"stop it with: loopline serve --stop --model-name {args.model_name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from loopline import __version__

    parser = _Parser(prog="loopline", description="Loopline: the closed ML loop on Kubeflow Pipelines.")
    parser.add_argument("--version", action="version", version=f"loopline {__version__}")
    _debug_option(parser, False)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the whole loop locally (kfp.local, MLflow, local KServe server)",
                         description="Run the training pipeline, then the drift monitor on a new batch, locally. "
                         "Without --data, uses the built-in synthetic transactions and a shifted batch.")
    run.add_argument("--data", help="CSV or Parquet file to train on (default: built-in demo data)")
    run.add_argument("--target", help="label column of --data")
    run.add_argument("--current", help="a newer labelled batch for the drift monitor (with --data)")
    run.add_argument("--ignore", nargs="*", help="columns that are not features (ids, timestamps)")
    run.add_argument("--partition-filter", help="the rows of a Parquet dataset or SQL --data to train on, e.g. "
                     "'dt >= 2026-11-01' (the drift monitor compares --current with the whole --data)")
    run.add_argument("--model-name", default="loopline-model", help="registered model name (default: %(default)s)")
    run.add_argument("--thresholds", help="gate rules as JSON (default: the training pipeline's DEFAULT_THRESHOLDS: "
                     "ROC AUC >= 0.75, no worse than the champion, single-row p95 latency <= 250 ms)")
    run.add_argument("--trials", type=int, default=TuningSettings.n_trials, help="Optuna trials per training (default: %(default)s)")
    run.add_argument("--max-epochs", type=int, default=TuningSettings.max_epochs, help="maximum epochs per trial (default: %(default)s)")
    run.add_argument("--seed", type=int, default=TuningSettings.seed, help="seed of splits, tuning and training (default: %(default)s)")
    run.add_argument("--drift-share", type=float, default=DriftSettings.drift_share, help="share of drifted features that triggers retraining (default: %(default)s)")
    run.add_argument("--rows", type=int, default=6000, help="rows of the demo data (default: %(default)s)")
    run.add_argument("--home", help="local state directory (default: $LOOPLINE_HOME or ./.loopline)")
    run.add_argument("--keep-serving", action="store_true", help="leave the local model server running and print its URL")
    run.add_argument("--runner", choices=("subprocess", "docker"), default="subprocess",
                     help="subprocess: steps in this environment (default); docker: every step in the image its "
                          "compiled YAML names (Docker, or podman's API service started for the run; `make images` first)")
    run.add_argument("--tracking-uri", help="MLflow tracking URI, e.g. an MLflow server (default: the local SQLite store)")
    run.add_argument("--deploy-target", choices=tuple(targets.TARGETS), default=targets.DeploySettings.target,
                     help=f"{targets.help_text()} (default: %(default)s)")
    run.add_argument("--storage-uri", help="with --deploy-target kserve: the s3:// or gs:// prefix under which each "
                                           "version gets its own URI <prefix>/<model>/v<version>")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="stream the run's whole log to the terminal (kfp.local, the steps, the libraries) instead of a line per step")
    run.set_defaults(func=cmd_run)

    runs = sub.add_parser("runs", help="list the past local runs and their pages",
                          description="List the runs of `loopline run` kept under the local state directory, newest first.")
    runs.add_argument("--home", help="local state directory (default: $LOOPLINE_HOME or ./.loopline)")
    runs.set_defaults(func=cmd_runs)

    comp = sub.add_parser("compile", help="compile the pipelines and components to YAML",
                          description="Compile both pipelines and every component to YAML.")
    comp.add_argument("--out", default="compiled", help="output directory (default: %(default)s)")
    comp.add_argument("--registry", help="image registry prefix (default: $LOOPLINE_IMAGE_REGISTRY or ghcr.io/loopline)")
    comp.add_argument("--kubernetes-config", metavar="FILE",
                      help="cluster settings (YAML) applied with kfp-kubernetes: secrets as environment variables, "
                      "image pull secrets, PVC for the Optuna storage, node selector and tolerations for training, "
                      "timeouts and retries (see docs/clusters.md); names only, never secret values")
    comp.set_defaults(func=cmd_compile)

    serve = sub.add_parser("serve", help="serve the champion from a local KServe model server",
                           description="Serve a registered model version (by alias) with the KServe ModelServer on loopback.")
    serve.add_argument("--model-name", default="loopline-model", help="registered model name (default: %(default)s)")
    serve.add_argument("--alias", default="champion", help="registry alias to serve (default: %(default)s)")
    serve.add_argument("--tracking-uri", help="MLflow tracking URI (default: the local SQLite store)")
    serve.add_argument("--port", type=int, default=0, help="HTTP port (default: a free port)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 for every interface)")
    serve.add_argument("--home", help="local state directory (default: $LOOPLINE_HOME or ./.loopline)")
    serve.add_argument("--stop", action="store_true", help="stop the local server of --model-name")
    serve.set_defaults(func=cmd_serve)

    add_check_commands(sub)
    add_traffic_commands(sub)

    epilog = ("examples:\n"
              "  loopline {cmd} --pipeline training --kfp-host http://localhost:8080 --params-file training.yaml\n"
              "  loopline {cmd} --pipeline drift_monitor --vertex-project my-project --vertex-location us-central1 \\\n"
              "      --pipeline-root gs://my-bucket/loopline --params-file monitor.yaml --param rerun_mode=submit")
    submit_cmd = sub.add_parser(
        "submit", help="submit a compiled pipeline to a KFP cluster or to Vertex AI",
        description="Submit compiled/<pipeline>.yaml as one run. Parameters are checked against the compiled "
        "pipeline's inputs (names and types) before anything is sent. On KFP the YAML is uploaded as a pipeline "
        "version named after the Loopline version and the file's SHA-256, and the run refers to it.",
        epilog=epilog.format(cmd="submit"), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(submit_cmd)
    submit_cmd.add_argument("--run-name", metavar="NAME", help="name of the run (default: <pipeline>-<UTC time>)")
    add_target_options(submit_cmd)
    submit_cmd.set_defaults(func=cmd_submit)

    schedule = sub.add_parser(
        "schedule", help="run a compiled pipeline on a schedule (KFP recurring run or Vertex AI schedule)",
        description="Create a KFP recurring run or a Vertex AI schedule of compiled/<pipeline>.yaml. Write a "
        "standard 5-field cron (minute hour day-of-month month day-of-week, or @daily ...); Loopline converts it "
        "to KFP's 6-field, seconds-first form and says so. Vertex AI takes an optional TZ=Area/City prefix. "
        "Default: training weekly (Mondays 03:00), the drift monitor daily (02:00).",
        epilog=epilog.format(cmd="schedule"), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(schedule)
    schedule.add_argument("--cron", metavar="CRON",
                          help="standard 5-field cron, e.g. '0 3 * * 1'; Vertex AI also 'TZ=Europe/Berlin 0 3 * * 1' "
                          "(default: training '0 3 * * 1', drift_monitor '0 2 * * *')")
    schedule.add_argument("--name", metavar="NAME", help="name of the schedule (default: loopline-<pipeline>)")
    schedule.add_argument("--max-concurrency", type=int, default=1, metavar="N",
                          help="runs of this schedule at the same time (default: %(default)s)")
    schedule.add_argument("--catchup", action="store_true",
                          help="KFP: start the runs missed while paused (default: no catch-up, only the latest)")
    add_target_options(schedule)
    schedule.set_defaults(func=cmd_schedule)

    schedules = sub.add_parser("schedules", help="list, pause, resume or delete schedules on KFP or Vertex AI",
                               description="Manage KFP recurring runs or Vertex AI pipeline schedules.")
    schedules.add_argument("action", choices=("list", "pause", "resume", "delete"), help="what to do")
    schedules.add_argument("schedule_id", nargs="?", help="the schedule id (from `loopline schedules list`)")
    add_target_options(schedules)
    schedules.set_defaults(func=cmd_schedules)
    for command in sub.choices.values():  # `loopline run --debug` as well as `loopline --debug run`
        _debug_option(command, argparse.SUPPRESS)
    return parser


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, `loopline: error: ...`, exit code 2."""

    def error(self, message: str):
        self.exit(2, f"loopline: error: {message} (see `{self.prog} --help`)\n")


def _debug_option(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show the traceback of an error (also $LOOPLINE_DEBUG=1)")


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 success; 1 a verdict on the data (not valid, drifted); 2 every usage, input or
    environment error, reported as one line `loopline: error: ...` (with --debug, after its traceback)."""
    streams = sys.stdout, sys.stderr
    # every line printed is masked; a full disk or a closed pipe is one line and exit code 2
    sys.stdout, sys.stderr = MaskingStream(sys.stdout), MaskingStream(sys.stderr, "standard error")
    try:
        code = _main(argv)
        sys.stdout.flush()  # what is still buffered: written now, where a failure is reported
        return code
    except OSError as exc:
        try:
            print(f"loopline: error: {exc.strerror or exc}", file=sys.stderr)
            sys.stderr.flush()
        except OSError:
            pass
        return 2
    finally:
        sys.stdout, sys.stderr = streams


def _main(argv: list[str] | None) -> int:
    import os

    from loopline.core.errors import describe, exit_code

    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False)) or os.environ.get("LOOPLINE_DEBUG", "") not in ("", "0")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging(sys.stderr)  # stdout is for results (--json)
    try:
        with terminated_as_interrupt():  # SIGTERM and SIGHUP clean up as Ctrl-C does
            return args.func(args)
    except Terminated as exc:
        print(f"loopline: stopped by {exc.name}: the servers this command started are stopped "
              f"(exit code {exc.exit_code})", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("loopline: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            import traceback

            traceback.print_exc()
        hint = "" if debug or isinstance(exc, (LooplineError, OSError)) else " (run with --debug for the traceback)"
        print(f"loopline: error: {describe(exc)}{hint}", file=sys.stderr)
        return exit_code(exc)
