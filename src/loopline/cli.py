"""The `loopline` command line: run the loop locally, compile the pipelines, serve the champion,
submit and schedule the compiled pipelines on a KFP cluster or on Vertex AI."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from loopline import cluster, cron, logs, params, serving, submit
from loopline.errors import LooplineError
from loopline.home import loopline_home, model_cache_dir
from loopline.logs import quiet_libraries, setup_logging


def _home(value: str | None) -> Path:
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

    settings = None
    if args.kubernetes_config:

        settings = cluster.load(args.kubernetes_config)
    written = compile_all(Path(args.out), registry=args.registry, kubernetes=settings)
    for path in written:
        print(path)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from loopline import registry  # MLflow, pandas

    setup_logging()
    home = _home(args.home)
    tracking_uri = args.tracking_uri or registry.local_tracking_uri(home)
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
    model_dir = registry.saved_model_dir(tracking_uri, args.model_name, str(version), model_cache_dir(home, args.model_name, str(version)))
    info = serving.start_server(str(model_dir), model_name=args.model_name, version=str(version),
                                log_dir=home / "serving", port=args.port or None)
    serving.write_state(home, info)
    print(f"serving {args.model_name} v{version} ({args.alias}) at {info.predict_url} (pid {info.pid})")
    print(f"stop it with: loopline serve --stop --model-name {args.model_name}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Exit 0 when the data passes (pass or evolve), 1 when blocked, 2 on input errors."""
    from loopline import validation, validation_suite
    from loopline.data import read_table

    quiet_libraries()
    user_suite = validation_suite.load_suite_file(args.suite) if args.suite else None
    reference = read_table(args.reference)
    data = read_table(args.data)
    report_path = Path(args.report) / "validation.html" if args.report else None
    report = validation.validate_splits(
        {Path(args.data).name: data}, reference=reference, suite_expectations=user_suite,
        report_path=report_path, fail_on_error=False, max_null_fraction=args.max_null_fraction,
        skew_threshold=args.skew_threshold,
    )
    if args.json:
        print(json.dumps(report.contract()))
    else:
        print(f"validation: {report.outcome} ({'passed' if report.passed else 'FAILED'}), skew score "
              f"{report.skew_score:.3f}, {report.evaluated} expectations, {report.failed_critical} critical and "
              f"{report.failed_warning} warning failures")
        for item in report.evolutions():
            print(f"  evolve: {item}")
        for f in report.failures():
            print(f"  {f['severity']:<8} {f['column'] or '(table)'}: {f['expectation']}: {f['detail']}")
        if report_path:
            print(f"report: {report_path}")
    if not report.passed:
        print(f"loopline: data validation failed ({report.outcome}): {report.failure_summary()}", file=sys.stderr)
    return 0 if report.passed else 1


def _thresholds(items: list[str] | None) -> dict[str, float]:
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise LooplineError(f"--threshold '{item}' is not TEST=VALUE (for example psi=0.25)")
    return out


def cmd_drift(args: argparse.Namespace) -> int:
    """Exit 0 when not drifted, 1 when drifted, 2 on input errors."""
    from loopline import drift
    from loopline.data import read_table

    quiet_libraries()
    settings = drift.DriftSettings(
        drift_share=args.drift_share, numeric_test=args.numeric_test, categorical_test=args.categorical_test,
        thresholds=_thresholds(args.threshold), critical_features=list(args.critical or []),
    )
    reference = read_table(args.reference)
    current = drift.last_rows(read_table(args.current), args.last_rows)
    ignore = set(args.ignore or [])
    unknown = sorted(ignore - set(map(str, reference.columns)))
    if unknown:
        raise LooplineError(f"--ignore names columns not in the reference: {', '.join(unknown)}")
    reference = reference[[c for c in reference.columns if c not in ignore]]
    current = current[[c for c in current.columns if c not in ignore]]
    report_path = Path(args.report) / "drift.html" if args.report else None
    result = drift.detect(reference, current, report_path=report_path, settings=settings,
                          model_dir=args.model, report_sample_rows=args.report_sample)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"drift: {'DRIFTED' if result.drifted else 'no drift'} ({result.reason})")
        for name, f in sorted(result.features.items(), key=lambda kv: (not kv[1]["drifted"], -kv[1]["psi"])):
            print(f"  {'drifted' if f['drifted'] else 'ok':<8} {name}: {f['test']} {f['score']:.4g} "
                  f"(threshold {f['threshold']:g}), psi {f['psi']:.4f}")
        if report_path:
            print(f"report: {report_path}")
    return 1 if result.drifted else 0


# --------------------------------------------------------------------------------------------
# submit, schedule, schedules


def _target(args: argparse.Namespace):
    kfp_chosen = bool(args.kfp_host or args.kfp_in_cluster)
    if args.vertex_project and kfp_chosen:
        raise LooplineError("choose one target: --kfp-host/--kfp-in-cluster or --vertex-project")
    if args.vertex_project:
        if not args.vertex_location:
            raise LooplineError("--vertex-location is required with --vertex-project (for example us-central1)")
        return submit.VertexTarget(project=args.vertex_project, location=args.vertex_location,
                                   api_endpoint=args.vertex_api_endpoint or "")
    if not kfp_chosen:
        raise LooplineError(
            "choose a target: --kfp-host URL (or $KF_PIPELINES_ENDPOINT), --kfp-in-cluster, "
            "or --vertex-project PROJECT --vertex-location REGION"
        )
    token = ""
    if args.kfp_token_file:
        path = Path(args.kfp_token_file)
        if not path.is_file():
            raise LooplineError(f"--kfp-token-file {path}: file not found")
        token = path.read_text().strip()
    return submit.KfpTarget(
        host=args.kfp_host or "", namespace=args.kfp_namespace or "", token=token, client_id=args.kfp_client_id or "",
        ssl_ca_cert=args.kfp_ssl_ca_cert or "", kube_context=args.kfp_kube_context or "",
        experiment=getattr(args, "experiment", None) or "loopline",
    )


def _labels(items: list[str] | None) -> dict[str, str]:
    labels = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LooplineError(f"--label '{item}' is not KEY=VALUE")
        labels[key] = value
    return labels


def _prepare(args: argparse.Namespace):
    """Target, compiled pipeline and checked parameters: everything is checked before sending."""

    target = _target(args)
    if target.kind == "kfp" and (args.label or args.kms_key or args.network):
        raise LooplineError("--label, --kms-key and --network are Vertex AI options; KFP does not use them")
    path = Path(args.package) if args.package else Path(args.compiled) / f"{args.pipeline}.yaml"
    pipeline = params.read_pipeline(path)
    checked = params.check(
        pipeline,
        from_file=params.load_params_file(args.params_file) if args.params_file else {},
        assignments=params.parse_assignments(args.param),
        allowed=submit.ALLOWED_VALUES,
    )
    checked = submit.with_rerun_defaults(
        pipeline, target, checked, pipeline_root=args.pipeline_root or "", service_account=args.service_account or "",
    )
    return target, pipeline, checked


def cmd_submit(args: argparse.Namespace) -> int:
    target, pipeline, values = _prepare(args)
    if args.dry_run:
        print(f"checked: {pipeline.path} ({pipeline.name}) for {target.describe()} with parameters {json.dumps(values, sort_keys=True)}")
        return 0
    if target.kind == "vertex":
        result = submit.submit_vertex(
            pipeline, target, params=values, pipeline_root=args.pipeline_root or "", run_name=args.run_name or "",
            service_account=args.service_account or "", network=args.network or "", labels=_labels(args.label),
            kms_key=args.kms_key or "",
        )
    else:
        result = submit.submit_kfp(
            pipeline, target, params=values, run_name=args.run_name or "", pipeline_root=args.pipeline_root or "",
            service_account=args.service_account or "",
        )
    print(f"submitted {pipeline.name} to {result.target}: run {result.run_name}")
    print(f"  run id: {result.run_id}")
    if result.pipeline_version:
        print(f"  pipeline version: {result.pipeline_version} ({pipeline.path}, sha256 {pipeline.sha256[:12]})")
    print(f"  {result.url}")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    expression = cron.parse(args.cron or cron.DEFAULT_CRON[args.pipeline])
    target, pipeline, values = _prepare(args)
    name = args.name or f"loopline-{args.pipeline.replace('_', '-')}"
    if target.kind == "kfp":
        converted = expression.for_kfp()
        print(f"loopline: cron '{expression.standard}' is sent to KFP as '{converted}' (6 fields, seconds first)", file=sys.stderr)
    if args.dry_run:
        print(f"checked: {pipeline.path} ({pipeline.name}) for {target.describe()}, cron '{expression.standard}', "
              f"parameters {json.dumps(values, sort_keys=True)}")
        return 0
    if target.kind == "vertex":
        schedule = submit.schedule_vertex(
            pipeline, target, cron=expression, name=name, params=values, pipeline_root=args.pipeline_root or "",
            service_account=args.service_account or "", network=args.network or "", labels=_labels(args.label),
            kms_key=args.kms_key or "", max_concurrency=args.max_concurrency,
        )
    else:
        schedule = submit.schedule_kfp(
            pipeline, target, cron=expression, name=name, params=values, pipeline_root=args.pipeline_root or "",
            service_account=args.service_account or "", max_concurrency=args.max_concurrency,
            no_catchup=not args.catchup,
        )
    print(f"scheduled {pipeline.name} on {target.describe()}: {schedule.name} ({schedule.cron})")
    print(f"  schedule id: {schedule.id}")
    if schedule.detail:
        print(f"  {schedule.detail}")
    return 0


def cmd_schedules(args: argparse.Namespace) -> int:
    target = _target(args)
    if args.action == "list":
        schedules = submit.list_schedules(target)
        if not schedules:
            print(f"no schedules on {target.describe()}")
        for s in schedules:
            print(f"{s.id}\t{s.name}\t{s.cron}\t{s.state}" + (f"\t{s.detail}" if s.detail else ""))
        return 0
    if not args.schedule_id:
        raise LooplineError(f"`loopline schedules {args.action}` needs the schedule id (see `loopline schedules list`)")
    submit.change_schedule(target, args.schedule_id, args.action)
    done = {"pause": "paused", "resume": "resumed", "delete": "deleted"}[args.action]
    print(f"{done} schedule {args.schedule_id} on {target.describe()}")
    return 0


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    import os

    kfp = parser.add_argument_group("KFP cluster (authentication: the KFP client's usual options, or in-cluster credentials)")
    kfp.add_argument("--kfp-host", default=os.environ.get("KF_PIPELINES_ENDPOINT"), metavar="URL",
                     help="KFP API endpoint, e.g. http://localhost:8080 after `kubectl port-forward svc/ml-pipeline-ui` "
                     "(default: $KF_PIPELINES_ENDPOINT)")
    kfp.add_argument("--kfp-in-cluster", action="store_true",
                     help="use the cluster's own KFP API with the pod's service-account token (inside a pod), "
                     "or the current kube config")
    kfp.add_argument("--kfp-namespace", metavar="NS", help="Kubernetes namespace of a multi-user KFP (your profile)")
    kfp.add_argument("--kfp-token-file", metavar="FILE", help="file holding a bearer token for the KFP API (never the token itself on the command line)")
    kfp.add_argument("--kfp-client-id", metavar="ID", help="OAuth client id of an IAP-protected KFP (also $KF_PIPELINES_IAP_OAUTH2_CLIENT_ID)")
    kfp.add_argument("--kfp-ssl-ca-cert", metavar="FILE", help="CA certificate to verify the KFP endpoint")
    kfp.add_argument("--kfp-kube-context", metavar="CONTEXT", help="kube config context (with --kfp-in-cluster outside a pod)")
    vertex = parser.add_argument_group("Vertex AI (credentials: Application Default Credentials)")
    vertex.add_argument("--vertex-project", metavar="PROJECT", help="Google Cloud project: submit to Vertex AI Pipelines")
    vertex.add_argument("--vertex-location", metavar="REGION", help="Vertex AI region, e.g. us-central1 (required with --vertex-project)")
    vertex.add_argument("--vertex-api-endpoint", metavar="ENDPOINT",
                        help="Vertex AI API endpoint instead of the regional default (a private endpoint)")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", required=True, choices=("training", "drift_monitor"), help="which pipeline")
    parser.add_argument("--compiled", default="compiled", metavar="DIR",
                        help="directory of the compiled pipelines; DIR/<pipeline>.yaml is sent (default: %(default)s)")
    parser.add_argument("--package", metavar="FILE", help="a compiled pipeline YAML to send instead of DIR/<pipeline>.yaml")
    parser.add_argument("--param", action="append", metavar="NAME=VALUE",
                        help="a pipeline parameter (repeatable); lists and mappings as JSON, lists also as a,b,c; "
                        "overrides --params-file")
    parser.add_argument("--params-file", metavar="FILE", help="YAML mapping of pipeline parameters")
    parser.add_argument("--pipeline-root", metavar="URI",
                        help="where the run's artifacts go (KFP: s3://, minio://, gs://; default: the cluster's; "
                        "Vertex AI: a gs:// URI, required)")
    parser.add_argument("--service-account", metavar="NAME",
                        help="KFP: Kubernetes service account of the run's pods; Vertex AI: the service account e-mail the run uses")
    parser.add_argument("--label", action="append", metavar="KEY=VALUE", help="Vertex AI: a label on the run (repeatable)")
    parser.add_argument("--kms-key", metavar="KEY", help="Vertex AI: CMEK key (projects/P/locations/L/keyRings/R/cryptoKeys/K)")
    parser.add_argument("--network", metavar="NETWORK", help="Vertex AI: VPC network to peer (projects/NUMBER/global/networks/NAME)")
    parser.add_argument("--experiment", default="loopline", help="KFP: experiment of the runs (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="check the pipeline and the parameters, send nothing")


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
    comp.add_argument("--kubernetes-config", metavar="FILE",
                      help="cluster settings (YAML) applied with kfp-kubernetes: secrets as environment variables, "
                      "image pull secrets, PVC for the Optuna storage, node selector and tolerations for training, "
                      "timeouts and retries (see the README); names only, never secret values")
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

    val = sub.add_parser("validate", help="validate a dataset against a suite inferred from a reference",
                         description="Validate DATA with a Great Expectations suite inferred from REF, merged with "
                         "--suite. Exit code 0 when valid (pass or evolve), 1 when blocked, 2 on usage or input errors.")
    val.add_argument("--reference", required=True, help="CSV or Parquet file the suite is inferred from")
    val.add_argument("--data", required=True, help="CSV or Parquet file to validate")
    val.add_argument("--suite", help="Great Expectations suite JSON: expectations added to or overriding the inferred ones")
    val.add_argument("--report", help="directory for the HTML report (validation.html)")
    val.add_argument("--json", action="store_true", help="print one JSON object: passed, skew_score, outcome, failures")
    val.add_argument("--max-null-fraction", type=float, default=0.1,
                     help="null fraction allowed in a column without nulls in the reference (default: %(default)s)")
    val.add_argument("--skew-threshold", type=float, default=0.1,
                     help="largest share of failed expectations that does not block (default: %(default)s)")
    val.set_defaults(func=cmd_validate)

    dri = sub.add_parser("drift", help="measure drift between a reference and a current dataset",
                         description="Per-feature drift (PSI, KS, Wasserstein, chi-squared, Jensen-Shannon, null "
                         "rates) on every row. Exit code 0 when not drifted, 1 when drifted, 2 on usage or input errors.")
    dri.add_argument("--reference", required=True, help="CSV or Parquet file of the reference window")
    dri.add_argument("--current", required=True, help="CSV or Parquet file of the current window")
    dri.add_argument("--report", help="directory for the Evidently HTML report (drift.html)")
    dri.add_argument("--json", action="store_true", help="print one JSON object: drifted, share_drifted, features")
    dri.add_argument("--drift-share", type=float, default=0.5,
                     help="share of drifted features at which the data counts as drifted (default: %(default)s)")
    dri.add_argument("--numeric-test", default="psi", choices=["psi", "ks", "wasserstein"],
                     help="test that judges numeric features (default: %(default)s)")
    dri.add_argument("--categorical-test", default="jensenshannon", choices=["jensenshannon", "chisquare", "psi"],
                     help="test that judges categorical features (default: %(default)s)")
    dri.add_argument("--threshold", action="append", metavar="TEST=VALUE",
                     help="override a test's threshold, e.g. psi=0.25 (repeatable)")
    dri.add_argument("--critical", nargs="*", help="features whose drift alone means the data drifted")
    dri.add_argument("--ignore", nargs="*", help="columns left out (ids, timestamps, the label)")
    dri.add_argument("--last-rows", type=int, default=0, help="use only the last N rows of --current (default: all)")
    dri.add_argument("--model", help="a Loopline SavedModel directory: also measure drift of its predictions")
    dri.add_argument("--report-sample", type=int, default=50_000,
                     help="rows per window in the visual report, seeded sample; 0 for all (default: %(default)s)")
    dri.set_defaults(func=cmd_drift)

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
    _add_run_options(submit_cmd)
    submit_cmd.add_argument("--run-name", metavar="NAME", help="name of the run (default: <pipeline>-<UTC time>)")
    _add_target_options(submit_cmd)
    submit_cmd.set_defaults(func=cmd_submit)

    schedule = sub.add_parser(
        "schedule", help="run a compiled pipeline on a schedule (KFP recurring run or Vertex AI schedule)",
        description="Create a KFP recurring run or a Vertex AI schedule of compiled/<pipeline>.yaml. Write a "
        "standard 5-field cron (minute hour day-of-month month day-of-week, or @daily ...); Loopline converts it "
        "to KFP's 6-field, seconds-first form and says so. Vertex AI takes an optional TZ=Area/City prefix. "
        "Default: training weekly (Mondays 03:00), the drift monitor daily (02:00).",
        epilog=epilog.format(cmd="schedule"), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_options(schedule)
    schedule.add_argument("--cron", metavar="CRON",
                          help="standard 5-field cron, e.g. '0 3 * * 1'; Vertex AI also 'TZ=Europe/Berlin 0 3 * * 1' "
                          "(default: training '0 3 * * 1', drift_monitor '0 2 * * *')")
    schedule.add_argument("--name", metavar="NAME", help="name of the schedule (default: loopline-<pipeline>)")
    schedule.add_argument("--max-concurrency", type=int, default=1, metavar="N",
                          help="runs of this schedule at the same time (default: %(default)s)")
    schedule.add_argument("--catchup", action="store_true",
                          help="KFP: start the runs missed while paused (default: no catch-up, only the latest)")
    _add_target_options(schedule)
    schedule.set_defaults(func=cmd_schedule)

    schedules = sub.add_parser("schedules", help="list, pause, resume or delete schedules on KFP or Vertex AI",
                               description="Manage KFP recurring runs or Vertex AI pipeline schedules.")
    schedules.add_argument("action", choices=("list", "pause", "resume", "delete"), help="what to do")
    schedules.add_argument("schedule_id", nargs="?", help="the schedule id (from `loopline schedules list`)")
    _add_target_options(schedules)
    schedules.set_defaults(func=cmd_schedules)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=logs.FORMAT, datefmt=logs.DATE_FORMAT)
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
