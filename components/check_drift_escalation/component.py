"""KFP component: drift too large to retrain automatically fails the monitor for a person.

The work is done by `loopline.executors.check_drift_escalation` (src/loopline/executors/check_drift_escalation.py).
"""

from kfp import dsl
from kfp.dsl import Input, Metrics

from loopline.core.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def check_drift_escalation(
    metrics: Input[Metrics],
    drift_share: float = 0.5,
    escalation_threshold: float = 1.0,
    rerun_mode: str = "nested",
) -> bool:
    """Lets drift retrain automatically, unless it is above the escalation threshold.

    Above the threshold the step fails with a message naming the share of drifted features and
    the features' drift scores, so that a person looks at the data before anything retrains.

    Args:
        metrics: Drift metrics of `detect_drift` (share of drifted features, each feature's score).
        drift_share: Share of drifted features at which the data counts as drifted.
        escalation_threshold: Share of drifted features above which the monitor fails instead of
            retraining; above drift_share, at most 1 (1 never escalates).
        rerun_mode: How the monitor retrains, "nested" or "submit" (checked here).

    Returns:
        Output: True when retraining may go ahead (the step fails otherwise).
    """
    from loopline.core.logs import setup_logging
    from loopline.executors import check_drift_escalation as executor
    from loopline.ops.reruns import EscalationSettings

    setup_logging()
    settings = EscalationSettings(drift_share=drift_share, escalation_threshold=escalation_threshold,
                                  rerun_mode=rerun_mode)
    return executor.run(metrics=metrics, settings=settings)
