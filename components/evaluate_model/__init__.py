"""The `evaluate_model` component."""

from .component import evaluate_model

__all__ = ["evaluate_model"]
