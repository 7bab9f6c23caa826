"""The `tune_model` component."""

from .component import tune_model

__all__ = ["tune_model"]
