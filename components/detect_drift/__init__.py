"""The `detect_drift` component."""

from .component import detect_drift

__all__ = ["detect_drift"]
