"""The `register_model` component."""

from .component import register_model

__all__ = ["register_model"]
