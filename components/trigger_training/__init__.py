"""The `trigger_training` component."""

from .component import trigger_training

__all__ = ["trigger_training"]
