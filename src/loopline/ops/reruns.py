"""Drift-triggered retraining: escalation, and a new training run with cooldown and dedupe.

When the drift monitor's `rerun_mode` is `submit`, its `trigger_training` step submits a new run
of the compiled training pipeline to the KFP cluster or Vertex AI project it runs in. Two rules
keep persisting drift from starting a storm of runs:

* no new run while the last drift-triggered run is still active, and
* no new run within `cooldown_hours` (default 24) after the last one started.

The state lives in tags of the registered model in MLflow (the registry outlives pods and
retries), and a retried step of the same monitor run never submits twice. The decision and its
reason are the step's outputs.

Escalation: drift above a second, higher threshold does not retrain automatically; the monitor
fails with a message for a person to look at.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from loopline import registry
from loopline.core import images, rules
from loopline.core.errors import DataVerdict, GateConfigError, LooplineError
from loopline.core.logs import quiet_libraries
from loopline.ops import compiled_pipelines, params, submit
from loopline.ops.submit.targets import RERUN_MODES, RERUN_TARGETS
from loopline.registry import claims

log = logging.getLogger(__name__)

TAG_RUN = "loopline.drift_retraining.run"
TAG_TARGET = "loopline.drift_retraining.target"
TAG_STARTED = "loopline.drift_retraining.started_at"
TAG_MONITOR = "loopline.drift_retraining.monitor_run"
PENDING = "(being submitted)"
LEASE_SECONDS = 900  # a monitor run that died holding the lease blocks others for at most this long


def training_arguments(values: dict[str, Any]) -> dict[str, Any]:
    """The arguments of a training run among `values`: those the shipped training pipeline declares
    (compiled/training.yaml's inputs, the one declaration the pipelines and this step share)."""
    declared = params.read_pipeline(compiled_pipelines.shipped_path("training")).inputs
    return {name: value for name, value in values.items() if name in declared}


class DriftEscalated(DataVerdict):
    """Drift above the escalation threshold: a person decides, nothing retrains automatically."""


@dataclass
class Decision:
    triggered: bool
    reason: str
    run_id: str = ""
    run_url: str = ""

    def markdown(self) -> str:
        lines = [f"## Drift-triggered training: {'started' if self.triggered else 'not started'}", "", self.reason]
        if self.run_id:
            lines += ["", f"Run: `{self.run_id}`" + (f" ({self.run_url})" if self.run_url and self.run_url != self.run_id else "")]
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# escalation


@dataclass(frozen=True, kw_only=True)
class EscalationSettings:
    """When drift retrains by itself and when it needs a person (`check_drift_escalation`): the
    one declaration of these settings and their defaults. Checked on construction."""

    drift_share: float = 0.5  # share of drifted features at which the data counts as drifted
    escalation_threshold: float = 1.0  # above it the monitor fails for a person (1: never)
    rerun_mode: str = "nested"

    def __post_init__(self) -> None:
        """The checks of the escalation settings, each a one-line LooplineError."""
        rules.number("drift_share", self.drift_share)
        rules.number("escalation_threshold", self.escalation_threshold)
        if self.rerun_mode not in RERUN_MODES:
            raise LooplineError(f"rerun_mode must be one of {', '.join(map(repr, RERUN_MODES))}, got '{self.rerun_mode}'")
        if not 0.0 < self.escalation_threshold <= 1.0:
            raise LooplineError(f"escalation_threshold must be in (0, 1], got {self.escalation_threshold:g}")
        if self.escalation_threshold < 1.0 and self.escalation_threshold <= self.drift_share:
            raise LooplineError(
                f"escalation_threshold ({self.escalation_threshold:g}) must be above drift_share ({self.drift_share:g}): "
                "every drift would escalate"
            )


def check_escalation(*, share_drifted: float, feature_scores: dict[str, float], settings: EscalationSettings) -> bool:
    """True when retraining may go ahead; raises DriftEscalated when the share of drifted
    features is above `settings.escalation_threshold` (1.0: never, a share cannot be above it)."""
    drift_share, escalation_threshold = settings.drift_share, settings.escalation_threshold
    if share_drifted > escalation_threshold:
        # Scores as detect_drift reports them (a distance or a p-value, by feature type and size:
        # the drift report names each feature's method and threshold).
        shown = list(feature_scores.items())[:6]
        named = ", ".join(f"{name} {score:.3g}" for name, score in shown) + (", ..." if len(feature_scores) > 6 else "")
        raise DriftEscalated(
            f"drift needs a person: {share_drifted:.0%} of features drifted, above the escalation threshold "
            f"{escalation_threshold:.0%} (retraining starts automatically from {drift_share:.0%}); "
            f"feature drift scores: {named or 'none'}; not retraining automatically: look at the drift report, "
            "then retrain by hand (`loopline submit --pipeline training`) if the new data is right"
        )
    log.info("drift %.0f%% is within the automatic range (escalation above %.0f%%): retraining (%s)",
             100 * share_drifted, 100 * escalation_threshold, settings.rerun_mode)
    return True


# --------------------------------------------------------------------------------------------
# where the new run goes


def target_for(rerun_target: str, *, kfp_host: str = "", vertex_project: str = "", vertex_location: str = ""):
    """The target a drift-triggered run goes to. KFP without a host: the cluster's own API (the
    pod's service account). Vertex AI: the given project and region, else those of the
    environment the step runs in."""
    if rerun_target == "kfp":
        return submit.KfpTarget(host=kfp_host)
    if rerun_target == "vertex":
        project = vertex_project or os.environ.get("CLOUD_ML_PROJECT_ID") or os.environ.get("GOOGLE_CLOUD_PROJECT", "")
        location = vertex_location or os.environ.get("CLOUD_ML_REGION") or os.environ.get("GOOGLE_CLOUD_REGION", "")
        if not project or not location:
            raise LooplineError("rerun_target 'vertex' needs vertex_project and vertex_location (none found in the environment)")
        return submit.VertexTarget(project=project, location=location)
    raise LooplineError(f"rerun_target must be 'kfp' or 'vertex', got '{rerun_target}'")


# --------------------------------------------------------------------------------------------
# cooldown and dedupe, with the state in registry tags


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _state(client, model_name: str) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    try:
        return dict(client.get_registered_model(model_name).tags)
    except MlflowException:
        client.create_registered_model(model_name, description="Loopline model (created to hold drift-retraining state)")
        return {}


def _write(client, model_name: str, tags: dict[str, str | None]) -> None:
    from mlflow.exceptions import MlflowException

    for key, value in tags.items():
        if value is None:
            try:
                client.delete_registered_model_tag(model_name, key)
            except MlflowException:  # it was not set
                pass
        else:
            client.set_registered_model_tag(model_name, key, value)


@dataclass(frozen=True, kw_only=True)
class RetrainSettings:
    """Where and how often a drift-triggered training run starts (`trigger_training`): the one
    declaration of these settings and their defaults. Checked on construction."""

    rerun_target: str = "kfp"  # kfp or vertex
    kfp_host: str = ""  # empty: the cluster the step runs in
    vertex_project: str = ""  # empty: the project the step runs in
    vertex_location: str = ""
    pipeline_root: str = ""  # of the training run
    service_account: str = ""  # of the training run
    cooldown_hours: float = 24.0
    image_registry: str = ""  # what the monitor was compiled with; empty: the default
    kubernetes_settings: dict[str, Any] = field(default_factory=dict)  # likewise, in the settings file's form

    def __post_init__(self) -> None:
        """The checks of the retraining settings, each a one-line LooplineError."""
        rules.choice("rerun_target", self.rerun_target, RERUN_TARGETS)
        if rules.number("cooldown_hours", self.cooldown_hours) < 0:
            raise LooplineError(f"cooldown_hours must be 0 or more, got {self.cooldown_hours:g}")
        if self.image_registry:
            images.check_registry(self.image_registry, "image_registry")
        if self.rerun_target == "vertex" and self.pipeline_root and not self.pipeline_root.startswith("gs://"):
            raise LooplineError(f"training_pipeline_root: Vertex AI needs a gs:// pipeline root, got '{self.pipeline_root}'")
        rules.mapping("kubernetes_settings", self.kubernetes_settings)


def retrain(
    *,
    tracking_uri: str,
    model_name: str,
    target,
    pipeline,
    arguments: dict[str, Any],
    settings: RetrainSettings,
    monitor_run: str = "",
    now: datetime | None = None,
) -> Decision:
    """Submit a new run of `pipeline` (a compiled training pipeline) to `target`, unless a
    drift-triggered run is still active or started less than `settings.cooldown_hours` ago."""
    checked = params.check(pipeline, from_file=arguments, allowed=submit.ALLOWED_VALUES)  # before anything is sent
    now = now or datetime.now(UTC)
    quiet_libraries()
    client = registry.connect(tracking_uri)
    # Exclusive: of any number of monitor runs detecting drift at once, one decides and submits;
    # the others find the lease taken, or (after it) the run it started and the cooldown.
    lease_name = claims.lease_name(model_name, "drift-retraining")
    holder = claims.default_holder(f"monitor run {monitor_run}" if monitor_run else "a drift monitor")
    taken = registry.with_retries(lambda: claims.acquire(client, lease_name, holder=holder, ttl_seconds=LEASE_SECONDS),
                                  what=f"taking the drift-retraining lease of {model_name}", tracking_uri=tracking_uri)
    if isinstance(taken, claims.Held):
        return Decision(False, f"another drift monitor run is starting a training run of {model_name} right now "
                               f"({taken.describe()}); not starting another")
    try:
        return _decide_and_submit(client, model_name=model_name, target=target, pipeline=pipeline, checked=checked,
                                  settings=settings, monitor_run=monitor_run, now=now)
    finally:
        registry.with_retries(lambda: claims.release(client, taken),
                              what=f"releasing the drift-retraining lease of {model_name}", tracking_uri=tracking_uri)


def _decide_and_submit(client, *, model_name, target, pipeline, checked, settings: RetrainSettings, monitor_run,
                       now) -> Decision:
    cooldown_hours = settings.cooldown_hours
    tags = _state(client, model_name)
    last_run, last_target = tags.get(TAG_RUN, ""), tags.get(TAG_TARGET, "")
    started = _parse_time(tags.get(TAG_STARTED))

    if monitor_run and tags.get(TAG_MONITOR) == monitor_run and last_run and last_run != PENDING:
        return Decision(True, f"this monitor run ({monitor_run}) started training run {last_run} already; "
                              "not starting another (the step was retried)", last_run)
    if last_run and last_run != PENDING:
        if last_target == target.key:
            active, state = submit.run_state(target, last_run)
            if active:
                return Decision(False, f"the drift-triggered training run {last_run} is still {state}; not starting another")
        else:
            log.info("the last drift-triggered run %s went to %s, not %s: only the cooldown applies", last_run, last_target, target.key)
    if last_run and started and now - started < timedelta(hours=cooldown_hours):
        hours = (now - started).total_seconds() / 3600
        resume = started + timedelta(hours=cooldown_hours)
        return Decision(False, f"cooldown: the last drift-triggered training run {last_run} started "
                               f"{started:%Y-%m-%d %H:%M} UTC, {hours:.1f} h ago; the cooldown is {cooldown_hours:g} h, "
                               f"so the next one can start from {resume:%Y-%m-%d %H:%M} UTC")

    previous = {key: tags.get(key) for key in (TAG_RUN, TAG_TARGET, TAG_STARTED, TAG_MONITOR)}
    _write(client, model_name, {TAG_RUN: PENDING, TAG_TARGET: target.key, TAG_STARTED: now.isoformat(),
                                TAG_MONITOR: monitor_run or None})
    run_name = f"{pipeline.name}-drift-{now:%Y%m%d-%H%M%S}"
    try:
        result = submit.submit(pipeline, target, params=checked, run_name=run_name, pipeline_root=settings.pipeline_root,
                               service_account=settings.service_account)
    except Exception:
        _write(client, model_name, previous)  # nothing started: the next detection may try again
        raise
    _write(client, model_name, {TAG_RUN: result.run_id})
    if last_run:
        since = f"the last one ({last_run}) started {(now - started).total_seconds() / 3600:.1f} h ago" if started else f"the last one was {last_run}"
    else:
        since = "the first drift-triggered run"
    reason = f"drift detected: started training run {result.run_name} ({result.run_id}) on {result.target}; {since}"
    log.info(reason)
    return Decision(True, reason, result.run_id, result.url)


def trigger_training(*, arguments: dict[str, Any], settings: RetrainSettings, monitor_run: str) -> Decision:
    """What the `trigger_training` step does: take the training pipeline the package ships,
    adapted to the image registry and cluster settings the monitor was compiled with (no
    compiler runs inside a KFP task), then `retrain` with it."""
    if not arguments.get("thresholds"):
        raise GateConfigError("thresholds is empty: the training run's gate would fail closed; give at least one rule")
    target = target_for(settings.rerun_target, kfp_host=settings.kfp_host, vertex_project=settings.vertex_project,
                        vertex_location=settings.vertex_location)
    text = compiled_pipelines.adapted_yaml("training", image_registry=settings.image_registry,
                                           kubernetes_settings=settings.kubernetes_settings)
    with tempfile.TemporaryDirectory() as tmp:  # the KFP client uploads the file itself
        path = Path(tmp) / "training.yaml"
        path.write_text(text)
        pipeline = params.read_pipeline(path)
        log.info("the training pipeline (sha256 %s) goes to %s", pipeline.sha256[:12], target.describe())
        return retrain(
            tracking_uri=arguments["tracking_uri"], model_name=arguments.get("model_name") or "loopline-model",
            target=target, pipeline=pipeline, arguments=arguments, settings=settings, monitor_run=monitor_run,
        )
