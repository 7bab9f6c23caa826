"""The `loopline submit`, `schedule` and `schedules` commands: compiled pipelines to a KFP cluster or
Vertex AI, with their target and run options."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loopline.core.errors import LooplineError
from loopline.core.masking import mask, register
from loopline.ops import cron, params, submit
from loopline.ops.submit import options as submit_options


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
        register(token)
    return submit.KfpTarget(
        host=args.kfp_host or "", namespace=args.kfp_namespace or "", token=token, client_id=args.kfp_client_id or "",
        ssl_ca_cert=args.kfp_ssl_ca_cert or "", kube_context=args.kfp_kube_context or "",
        experiment=getattr(args, "experiment", None) or "loopline",
    )

def _labels(items: list[str] | None) -> dict[str, str]:
    return submit_options.parse_labels(items)

def _prepare(args: argparse.Namespace):
    """Target, compiled pipeline and checked parameters: everything is checked before sending."""

    target = _target(args)
    if target.kind == "kfp" and (args.label or args.kms_key or args.network):
        raise LooplineError("--label, --kms-key and --network are Vertex AI options; KFP does not use them")
    submit_options.SubmitOptions(target=target.kind, pipeline_root=args.pipeline_root or "", labels=_labels(args.label),
                                 max_concurrency=getattr(args, "max_concurrency", 1))
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
    # every parameter against its domain, the pipeline's defaults included (drift_share and
    # escalation_threshold are judged together)
    from loopline.ops import domains  # the steps' settings objects: pandas, numpy

    defaults = {name: spec.default for name, spec in pipeline.inputs.items() if spec.default is not None}
    domains.check({**defaults, **checked})
    return target, pipeline, checked

def cmd_submit(args: argparse.Namespace) -> int:
    target, pipeline, values = _prepare(args)
    if args.dry_run:
        print(mask(f"checked: {pipeline.path} ({pipeline.name}) for {target.describe()} with parameters "
                   f"{json.dumps(values, sort_keys=True)}"))
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
        print(mask(f"checked: {pipeline.path} ({pipeline.name}) for {target.describe()}, cron '{expression.standard}', "
                   f"parameters {json.dumps(values, sort_keys=True)}"))
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

def add_target_options(parser: argparse.ArgumentParser) -> None:
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

def add_run_options(parser: argparse.ArgumentParser) -> None:
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
