"""The `validate_data` component."""

from .component import validate_data

__all__ = ["validate_data"]
