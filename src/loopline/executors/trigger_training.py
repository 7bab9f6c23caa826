"""The `trigger_training` step: a drift-triggered training run (or not: cooldown, dedupe) and
the decision written as the step's outputs."""

from __future__ import annotations

import logging

from loopline.core.files import write_text
from loopline.ops import domains, reruns

log = logging.getLogger(__name__)


def run(*, arguments: dict, settings: reruns.RetrainSettings, monitor_run: str, summary, reason_path: str,
        run_path: str) -> bool:
    """Submit a drift-triggered training run (or not: cooldown, dedupe); write the decision. Of
    `arguments`, those the training pipeline declares are handed to the run unchanged."""
    arguments = reruns.training_arguments(arguments)
    domains.check(arguments)  # the training run's parameters, before anything is sent
    decision = reruns.trigger_training(arguments=arguments, settings=settings, monitor_run=monitor_run)
    for path, text in ((reason_path, decision.reason), (run_path, decision.run_id), (summary.path, decision.markdown())):
        write_text(path, text)
    summary.metadata.update({"triggered": decision.triggered, "run": decision.run_id})
    log.info("drift-triggered training %s: %s", "started" if decision.triggered else "not started", decision.reason)
    return decision.triggered
