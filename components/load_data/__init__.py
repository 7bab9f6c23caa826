"""The `load_data` component."""

from .component import load_data

__all__ = ["load_data"]
