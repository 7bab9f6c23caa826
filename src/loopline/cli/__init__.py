"""The `loopline` command line (`loopline ...` or `python -m loopline.cli ...`)."""

from loopline.cli.app import main

__all__ = ["main"]
