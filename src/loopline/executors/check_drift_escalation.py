"""The `check_drift_escalation` step: drift above the escalation threshold fails the monitor."""

from __future__ import annotations

from loopline.data import tables as data_lib
from loopline.ops import reruns


def run(*, metrics, settings: reruns.EscalationSettings) -> bool:
    """Whether retraining may go ahead, from the drift metrics of `detect_drift`."""
    meta = dict(getattr(metrics, "metadata", {}) or {})
    if "share_drifted" not in meta:
        raise data_lib.DataError("drift metrics lack 'share_drifted': connect the metrics output of detect_drift")
    scores = {k[len("drift_"):]: float(v) for k, v in meta.items() if k.startswith("drift_") and isinstance(v, (int, float))}
    return reruns.check_escalation(share_drifted=float(meta["share_drifted"]), feature_scores=scores, settings=settings)
