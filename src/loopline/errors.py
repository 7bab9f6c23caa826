"""Errors that Loopline reports to users as one line naming the problem."""


class LooplineError(Exception):
    """Base class: the message is a complete, one-line explanation for the user."""


class DataError(LooplineError):
    """The input data cannot be used (missing column, unreadable file, single class, ...)."""


class ValidationFailed(LooplineError):
    """Data validation found failed expectations."""


class GateConfigError(LooplineError):
    """The evaluation gate is misconfigured (for example: no thresholds at all)."""


class DeploymentError(LooplineError):
    """A deployment could not be completed; the serving champion is left as it was."""


class TuningConfigError(LooplineError, ValueError):
    """A tuning setting cannot be used (budget, objective, pruner, storage URL, search space)."""
