"""The `loopline` command line: run the loop locally, compile the pipelines, serve the champion."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from loopline.errors import LooplineError


def _home(value: str | None) -> Path:
    from loopline.steps import loopline_home

    return loopline_home(value or "")


def cmd_run(args: argparse.Namespace) -> int:
    from loopline import local

    home = _home(args.home)
    if args.data:
        if not args.target:
            raise LooplineError("--target is required with --data (the label column)")
        data_uri, current_uri, target = args.data, args.current or "", args.target
        ignore = args.ignore or []
    else:
        from loopline.data import DEMO_IGNORE, DEMO_TARGET

        data_uri, current_uri = local.prepare_demo_data(home, rows=args.rows)
        target, ignore = DEMO_TARGET, list(DEMO_IGNORE)
    settings = local.LoopSettings(
        home=home,
        data_uri=data_uri,
        target=target,
        current_uri=current_uri,
        ignore_columns=ignore,
        model_name=args.model_name,
        thresholds=None if args.thresholds is None else json.loads(args.thresholds),
        n_trials=args.trials,
        max_epochs=args.max_epochs,
        seed=args.seed,
        drift_share=args.drift_share,
        keep_serving=args.keep_serving,
    )
    if not settings.current_uri:
        print("no --current batch given: running the training pipeline only (no drift monitor)")
    summary = local.run_loop(settings)
    print(local.format_summary(summary))
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from loopline.compile import compile_all

    written = compile_all(Path(args.out), registry=args.registry)
    for path in written:
        print(path)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from loopline import registry, serving, steps

    steps.setup_logging()
    home = _home(args.home)
    tracking_uri = args.tracking_uri or registry.local_tracking_uri(home)
    registry.quiet()
    current = serving.read_state(home, args.model_name)
    if args.stop:
        if current:
            serving.stop_server(current)
            serving.clear_state(home, args.model_name)
            print(f"stopped {args.model_name} v{current.version}")
        else:
            print(f"no local server for {args.model_name}")
        return 0
    version = registry.aliases(tracking_uri, args.model_name).get(args.alias)
    if version is None:
        raise LooplineError(f"model '{args.model_name}' has no '{args.alias}' alias in {tracking_uri}; run `loopline run` first")
    if current and serving.is_alive(current):
        serving.stop_server(current)
    model_dir = registry.saved_model_dir(tracking_uri, args.model_name, str(version), home / "models" / args.model_name / f"v{version}")
    info = serving.start_server(str(model_dir), model_name=args.model_name, version=str(version),
                                log_dir=home / "serving", port=args.port or None)
    serving.write_state(home, info)
    print(f"serving {args.model_name} v{version} ({args.alias}) at {info.predict_url} (pid {info.pid})")
    print(f"stop it with: loopline serve --stop --model-name {args.model_name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from loopline import __version__

    parser = argparse.ArgumentParser(prog="loopline", description="Loopline: the closed ML loop on Kubeflow Pipelines.")
    parser.add_argument("--version", action="version", version=f"loopline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the whole loop locally (kfp.local, MLflow, local KServe server)",
                         description="Run the training pipeline, then the drift monitor on a new batch, locally. "
                         "Without --data, uses the built-in synthetic transactions and a shifted batch.")
    run.add_argument("--data", help="CSV or Parquet file to train on (default: built-in demo data)")
    run.add_argument("--target", help="label column of --data")
    run.add_argument("--current", help="a newer labelled batch for the drift monitor (with --data)")
    run.add_argument("--ignore", nargs="*", help="columns that are not features (ids, timestamps)")
    run.add_argument("--model-name", default="loopline-model", help="registered model name (default: %(default)s)")
    run.add_argument("--thresholds", help="gate rules as JSON (default: the training pipeline's DEFAULT_THRESHOLDS: "
                     "ROC AUC >= 0.75, no worse than the champion, single-row p95 latency <= 250 ms)")
    run.add_argument("--trials", type=int, default=4, help="Optuna trials per training (default: %(default)s)")
    run.add_argument("--max-epochs", type=int, default=15, help="maximum epochs per trial (default: %(default)s)")
    run.add_argument("--seed", type=int, default=42, help="seed of splits, tuning and training (default: %(default)s)")
    run.add_argument("--drift-share", type=float, default=0.5, help="share of drifted features that triggers retraining (default: %(default)s)")
    run.add_argument("--rows", type=int, default=6000, help="rows of the demo data (default: %(default)s)")
    run.add_argument("--home", help="local state directory (default: $LOOPLINE_HOME or ./.loopline)")
    run.add_argument("--keep-serving", action="store_true", help="leave the local model server running and print its URL")
    run.set_defaults(func=cmd_run)

    comp = sub.add_parser("compile", help="compile the pipelines and components to YAML",
                          description="Compile both pipelines and every component to YAML.")
    comp.add_argument("--out", default="compiled", help="output directory (default: %(default)s)")
    comp.add_argument("--registry", help="image registry prefix (default: $LOOPLINE_IMAGE_REGISTRY or ghcr.io/loopline)")
    comp.set_defaults(func=cmd_compile)

    serve = sub.add_parser("serve", help="serve the champion from a local KServe model server",
                           description="Serve a registered model version (by alias) with the KServe ModelServer on loopback.")
    serve.add_argument("--model-name", default="loopline-model", help="registered model name (default: %(default)s)")
    serve.add_argument("--alias", default="champion", help="registry alias to serve (default: %(default)s)")
    serve.add_argument("--tracking-uri", help="MLflow tracking URI (default: the local SQLite store)")
    serve.add_argument("--port", type=int, default=0, help="HTTP port (default: a free port)")
    serve.add_argument("--home", help="local state directory (default: $LOOPLINE_HOME or ./.loopline)")
    serve.add_argument("--stop", action="store_true", help="stop the local server of --model-name")
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except LooplineError as exc:
        print(f"loopline: error: {exc}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        print(f"loopline: error: --thresholds is not valid JSON: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # a pipeline task failed; kfp.local printed its log above
        print(f"loopline: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
