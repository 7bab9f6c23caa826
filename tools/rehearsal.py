"""The cluster's data path on one machine: `loopline run` with its data, the drift monitor's batch,
the MLflow artifact store and the served model's files on S3-compatible object storage.

    python -m tools.rehearsal [--home DIR] [--s3-endpoint URL] [loopline run options ...]

It starts, on loopback:
  - an S3-compatible server, unless --s3-endpoint names one: moto's server mode, a STAND-IN for a
    real store (no S3-compatible server installs from PyPI or Debian here); the clients are the
    ones a cluster uses (s3fs through fsspec for data, boto3 for MLflow's artifacts);
  - a real `mlflow server` whose artifacts go to s3://loopline-artifacts/mlflow (clients write to
    the store directly, as in a cluster);
  - with `--runner docker`, the cluster's serving path: a STAND-IN for the Kubernetes API server
    with KServe's controller (tests.standins.kubernetes_api, tests.standins.kserve_controller). The deploy
    step (in the deployer image) creates or canary-patches the InferenceService with the real
    Kubernetes client ($KUBECONFIG, as a pod is given its API); the stand-in fetches the version's
    own `storageUri` (s3://loopline-artifacts/models/<model>/v<version>) with KServe's storage
    code and serves it in Loopline's serving image, the image the smoke test then calls;
then uploads the demo data (the reference batch as CSV, the shifted batch as Parquet) to
s3://loopline-data/, runs `loopline run --data s3://... --current s3://... --tracking-uri ...`
with the remaining options (e.g. `--runner docker`), and stops every server and serving container
it started. Credentials reach the steps as the usual AWS_* environment variables. What the
stand-in cluster served is written to <home>/kserve-standin.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from loopline.cli import app as cli
from loopline.core import images
from loopline.core.processes import stop_group
from loopline.local import container_runner
from tests.standins.kserve_controller import KServeControllerStandIn
from tests.standins.kubernetes_api import KubernetesApiStandIn

DATA_BUCKET, ARTIFACT_BUCKET = "loopline-data", "loopline-artifacts"
MODEL_PREFIX = f"s3://{ARTIFACT_BUCKET}/models"  # each version at <prefix>/<model>/v<version>
STANDIN_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "loopline", "AWS_SECRET_ACCESS_KEY": "loopline-secret",
                       "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """A server as a child process in its own session; stop() ends it and its workers."""

    def __init__(self, name: str, argv: list[str], url: str, health: str, log: Path, env: dict[str, str]):
        self.name, self.argv, self.url, self.health, self.log, self.env = name, argv, url, health, log, env
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> Service:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                            env={**os.environ, **self.env})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text(errors='replace')[-1500:]}")
            try:
                with urllib.request.urlopen(self.health, timeout=2):
                    return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer on {self.url} within {timeout:.0f}s (see {self.log})")

    def stop(self) -> None:
        if self.process is None:
            return
        stop_group(self.process)
        self.process = None


def s3_standin(home: Path) -> Service:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    return Service("stand-in S3 server (moto)", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                   url, f"{url}/moto-api/", home / "s3-standin.log", {})


def mlflow_server(home: Path, artifact_root: str) -> Service:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    root = home / "mlflow-server"
    root.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--default-artifact-root", artifact_root, "--no-serve-artifacts", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1"]
    return Service("mlflow server", argv, url, f"{url}/health", root / "server.log",
                   {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})


def upload_demo_data(rows: int) -> tuple[str, str]:
    """The demo batches on the store: the reference as CSV, the shifted batch as Parquet."""
    import boto3

    from loopline.data import demo as demo_data

    s3 = boto3.client("s3")
    for bucket in (DATA_BUCKET, ARTIFACT_BUCKET):
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    reference = f"s3://{DATA_BUCKET}/demo/transactions.csv"
    current = f"s3://{DATA_BUCKET}/demo/transactions_shifted.parquet"
    demo_data.demo_transactions(rows, shift=0.0, seed=7).to_csv(reference, index=False)
    demo_data.demo_transactions(rows, shift=1.0, seed=8).to_parquet(current, index=False)
    return reference, current


class StandInCluster:
    """The Kubernetes API and KServe's controller, stand-ins on loopback, and a kubeconfig for them
    where the steps' containers see it (under the pipeline root)."""

    def __init__(self, home: Path):
        self.home = home
        self.controller = KServeControllerStandIn(image=images.image("serving"), work_dir=home / "kserve-standin")
        self.api = KubernetesApiStandIn(controller=self.controller)
        kubeconfig = container_runner.shared_dir(home / "pipeline_root") / "kubeconfig"
        kubeconfig.write_text(json.dumps(self.api.kubeconfig(), indent=2))
        kubeconfig.chmod(0o644)
        self._saved_kubeconfig = os.environ.get("KUBECONFIG")
        os.environ["KUBECONFIG"] = str(kubeconfig)

    def close(self) -> dict:
        """Stop every serving container and the API; record and print what was served."""
        try:
            self.controller.stop_all()
        finally:
            self.api.close()
            if self._saved_kubeconfig is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = self._saved_kubeconfig
        record = {"api": self.api.url, "serving_image": self.controller.image,
                  "inference_services": [{"namespace": ns, "name": name,
                                          "storage_uri": obj["spec"]["predictor"]["model"]["storageUri"],
                                          "version": obj["metadata"]["labels"].get("loopline.dev/model-version"),
                                          "generation": obj["metadata"]["generation"], "status": obj.get("status")}
                                         for (ns, name), obj in self.api.objects.items()],
                  "predictors": self.controller.history}
        (self.home / "kserve-standin.json").write_text(json.dumps(record, indent=2))
        print(f"\nstand-in cluster (Kubernetes API and KServe controller at {self.api.url}):")
        for isvc in record["inference_services"]:
            print(f"  InferenceService {isvc['namespace']}/{isvc['name']}: v{isvc['version']}, "
                  f"storageUri {isvc['storage_uri']}")
        for predictor in record["predictors"]:
            print(f"  predictor {predictor['storage_uri']} ran in [{predictor['image']}] "
                  f"({'stopped' if predictor['stopped'] else 'STILL RUNNING'})")
        return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.rehearsal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=os.environ.get("LOOPLINE_HOME") or ".loopline/rehearsal")
    parser.add_argument("--s3-endpoint", help="a running S3-compatible store (credentials from AWS_*); "
                                              "default: start the moto stand-in on loopback")
    parser.add_argument("--runner", choices=("subprocess", "docker"), default="subprocess",
                        help="docker: every step in its image, and the deploy step on the stand-in cluster")
    parser.add_argument("--rows", type=int, default=6000, help="rows of the demo data (default: %(default)s)")
    args, run_args = parser.parse_known_args(argv)
    home = Path(args.home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    services: list[Service] = []
    cluster: StandInCluster | None = None
    try:
        if args.s3_endpoint:
            endpoint = args.s3_endpoint
        else:
            for key, value in STANDIN_CREDENTIALS.items():
                os.environ.setdefault(key, value)
            services.append(s3_standin(home).start())
            endpoint = services[-1].url
            print(f"object store: {endpoint} (moto server mode, a stand-in for S3)")
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = endpoint
        reference, current = upload_demo_data(args.rows)
        services.append(mlflow_server(home, f"s3://{ARTIFACT_BUCKET}/mlflow").start())
        print(f"MLflow server: {services[-1].url} (artifacts in s3://{ARTIFACT_BUCKET}/mlflow)")
        print(f"data: {reference} (CSV), drift batch: {current} (Parquet)")
        from loopline.data.demo import DEMO_IGNORE, DEMO_TARGET  # pandas: only once the servers run

        run_args = [*run_args, "--runner", args.runner]
        if args.runner == "docker":  # the deploy step takes the cluster's path
            cluster = StandInCluster(home)
            print(f"Kubernetes API with KServe's controller: {cluster.api.url} (stand-ins), "
                  f"serving image {cluster.controller.image}")
            run_args = [*run_args, "--deploy-target", "kserve", "--storage-uri", MODEL_PREFIX]
        return cli.main(["run", "--home", str(home), "--data", reference, "--current", current, "--target", DEMO_TARGET,
                         "--ignore", *DEMO_IGNORE, "--tracking-uri", services[-1].url, *run_args])
    finally:
        if cluster is not None:
            cluster.close()
        for service in reversed(services):
            service.stop()


if __name__ == "__main__":
    sys.exit(main())
