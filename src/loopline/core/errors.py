"""Errors that Loopline reports to users as one line naming the problem."""

from loopline.core.masking import mask


def redact(text: str) -> str:
    """`text` without credentials (Loopline's one secret filter, `loopline.core.masking.mask`)."""
    return mask(text)


def one_line(exc: BaseException, limit: int = 500) -> str:
    """The first line of an exception's message (its type when the message is empty), shortened,
    without credentials."""
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)[:limit]


def describe(exc: BaseException, limit: int = 500) -> str:
    """One line for any exception: Loopline's own messages as they are; others with their type,
    and OS errors with the file they concern."""
    if isinstance(exc, LooplineError):
        return one_line(exc, limit)
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return redact(f"{exc.strerror}{where}")[:limit]
    if isinstance(exc, UnicodeDecodeError):
        return redact(f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})")[:limit]
    return f"{type(exc).__name__}: {one_line(exc, limit)}"[:limit]


class LooplineError(Exception):
    """Base class: the message is a complete, one-line explanation for the user."""


class DataError(LooplineError):
    """The input data cannot be used (missing column, unreadable file, single class, ...)."""


class DataVerdict(LooplineError):
    """A verdict on the data (not valid, drifted beyond what retrains by itself): exit code 1."""


class ValidationFailed(DataVerdict):
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


class StepFailed(LooplineError):
    """A step of a local pipeline run failed; the message is the step's one-line cause."""

    def __init__(self, message: str, *, verdict: bool = False):
        super().__init__(message)
        self.verdict = verdict


def exit_code(exc: BaseException) -> int:
    """1 for a verdict on the data, 2 for every usage, input or environment error."""
    if isinstance(exc, DataVerdict) or (isinstance(exc, StepFailed) and exc.verdict):
        return 1
    return 2
