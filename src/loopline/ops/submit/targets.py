"""Where Loopline's compiled pipelines go: a KFP cluster or a Vertex AI project (targets, what a
submission returns, and the clients' errors as one-line SubmitErrors)."""

from __future__ import annotations

import contextlib
import json
import warnings
from dataclasses import dataclass, field
from typing import Any

from loopline.core import services
from loopline.core.errors import LooplineError
from loopline.serving.targets import TARGETS as DEPLOY_TARGETS

PIPELINE_KEYS = ("training", "drift_monitor")

RERUN_MODES = ("nested", "submit")  # retrain inside the monitor run, or submit a new training run
RERUN_TARGETS = ("kfp", "vertex")
ALLOWED_VALUES = {  # the choice lists, each declared once where its rule lives
    "rerun_mode": RERUN_MODES,
    "rerun_target": RERUN_TARGETS,
    "deploy_target": tuple(DEPLOY_TARGETS),
}

DEFAULT_EXPERIMENT = "loopline"

KFP_FINISHED = {"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"}

VERTEX_FINISHED = {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"}

class SubmitError(LooplineError):
    """The KFP or Vertex AI API refused a request, or could not be reached."""

@dataclass(frozen=True)
class KfpTarget:
    """A KFP API server. Without `host`, the client finds it the usual way: inside a pod, the
    cluster's own `ml-pipeline` service with the pod's service-account token; elsewhere, the
    current kube config. `token`, `client_id` and the KF_PIPELINES_* environment variables are
    the KFP client's usual authentication options."""

    host: str = ""
    namespace: str = ""
    token: str = field(default="", repr=False)
    client_id: str = ""
    ssl_ca_cert: str = ""
    kube_context: str = ""
    experiment: str = DEFAULT_EXPERIMENT

    kind = "kfp"

    @property
    def key(self) -> str:
        """Identifies the target in registry tags (no credentials)."""
        return f"kfp:{self.host or 'in-cluster'}"

    def describe(self) -> str:
        return f"KFP at {self.host}" if self.host else "KFP (in-cluster API)"

    def client(self):
        # Inside a running KFP task (a drift-triggered run) kfp is imported in its runtime form: its
        # __init__ exports no Client, and kfp.client imports the compiler, which needs kfp.dsl's
        # modules in the order kfp.dsl's own __init__ imports them outside a task.
        import kfp.dsl.component_decorator  # noqa: F401
        from kfp.client import Client

        if self.host:  # a dead endpoint is one line within the bound, not the client's minutes of retries
            try:
                services.reachable("KFP", self.host)
            except services.ServiceUnavailable as exc:
                raise SubmitError(str(exc)) from exc
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "This client only works with KFP v2.0.0-beta.2 and later"
            with kfp_errors(self):
                return services.bounded("KFP", self.host or "the in-cluster API", lambda: Client(
                    host=self.host or None,
                    namespace=self.namespace or "kubeflow",
                    existing_token=self.token or None,
                    client_id=self.client_id or None,
                    ssl_ca_cert=self.ssl_ca_cert or None,
                    kube_context=self.kube_context or None,
                ))

    def run_url(self, run_id: str) -> str:
        return f"{self.host.rstrip('/')}/#/runs/details/{run_id}" if self.host else run_id

@dataclass(frozen=True)
class VertexTarget:
    """A Vertex AI project and region. `api_endpoint` overrides the regional endpoint (a private
    endpoint, or `http://host:port` for a plain-HTTP endpoint, which uses the REST transport).
    Credentials: Application Default Credentials unless `credentials` is given."""

    project: str
    location: str
    api_endpoint: str = ""
    credentials: Any = field(default=None, repr=False, compare=False)

    kind = "vertex"

    @property
    def key(self) -> str:
        return f"vertex:{self.project}/{self.location}"

    def describe(self) -> str:
        return f"Vertex AI ({self.project}, {self.location})"

    def init(self):
        from google.cloud import aiplatform

        if not self.project or not self.location:
            raise SubmitError("Vertex AI needs a project and a location (--vertex-project, --vertex-location)")
        credentials = self.credentials
        if credentials is None:  # Application Default Credentials, resolved now so that a missing one is one clear line
            import google.auth

            with vertex_errors():
                credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        services.reachable("the Vertex AI API", self.api_endpoint or f"https://{self.location}-aiplatform.googleapis.com")
        settings: dict[str, Any] = {"project": self.project, "location": self.location, "credentials": credentials}
        if self.api_endpoint:
            settings["api_endpoint"] = self.api_endpoint
            if self.api_endpoint.startswith("http://"):
                settings["api_transport"] = "rest"  # plain HTTP is only possible over REST
        with vertex_errors():
            aiplatform.init(**settings)
        return aiplatform

@dataclass
class Submitted:
    target: str
    run_id: str
    run_name: str
    url: str
    pipeline_version: str = ""  # KFP: the uploaded pipeline version's name

@dataclass
class Schedule:
    id: str
    name: str
    cron: str
    state: str
    detail: str = ""

def _first_line(text: str) -> str:
    return (str(text).strip().splitlines() or [""])[0][:300]

@contextlib.contextmanager
def kfp_errors(target: KfpTarget):
    import kfp_server_api
    import urllib3

    try:
        yield
    except kfp_server_api.ApiException as exc:
        detail = exc.body or exc.reason
        with contextlib.suppress(Exception):
            body = json.loads(exc.body)
            detail = body.get("error") or body.get("message") or detail
        raise SubmitError(f"{target.describe()} answered {exc.status}: {_first_line(detail)}") from None
    except urllib3.exceptions.HTTPError as exc:
        raise SubmitError(f"cannot reach {target.describe()}: {_first_line(exc)}") from None

@contextlib.contextmanager
def vertex_errors():
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions

    try:
        yield
    except auth_exceptions.DefaultCredentialsError:
        raise SubmitError(
            "no Google Cloud credentials: run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from None
    except auth_exceptions.GoogleAuthError as exc:
        raise SubmitError(f"Google Cloud authentication failed: {_first_line(exc)}") from None
    except api_exceptions.GoogleAPICallError as exc:
        raise SubmitError(f"Vertex AI answered {exc.code}: {_first_line(exc.message)}") from None
