"""Errors that Loopline reports to users as one line naming the problem."""


def one_line(exc: BaseException, limit: int = 500) -> str:
    """The first line of an exception's message (its type when the message is empty), shortened."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


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


class ModelError(LooplineError):
    """A model cannot be loaded or does not fit the data it is given."""


class BlessingError(LooplineError):
    """A model's blessing is missing, negative, or was issued for another model or holdout."""


class RegistryError(LooplineError):
    """The model registry could not complete an operation; the champion is left as it was."""


class TuningConfigError(LooplineError, ValueError):
    """A tuning setting cannot be used (budget, objective, pruner, storage URL, search space)."""
