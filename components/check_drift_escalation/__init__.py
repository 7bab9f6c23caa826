"""The `check_drift_escalation` component."""

from .component import check_drift_escalation

__all__ = ["check_drift_escalation"]
