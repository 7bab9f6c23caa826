"""The `load_traffic` component."""

from .component import load_traffic

__all__ = ["load_traffic"]
