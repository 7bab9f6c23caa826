"""The `deploy_model` component."""

from .component import deploy_model

__all__ = ["deploy_model"]
