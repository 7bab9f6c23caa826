"""The `train_model` component."""

from .component import train_model

__all__ = ["train_model"]
