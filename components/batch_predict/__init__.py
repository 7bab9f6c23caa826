"""The `batch_predict` component."""

from .component import batch_predict

__all__ = ["batch_predict"]
