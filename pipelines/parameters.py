"""The training pipeline's parameters, declared once: the signature and docstring of the training
pipeline function. The drift monitor takes every one of them (and hands each, unchanged, to the
retraining it runs or submits) by building its own signature from that declaration, so a parameter
added to training reaches a drift-triggered retraining with no second list to keep in step.

Standard library only (a pipeline module imports `kfp` and the standard library).
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable, Iterable
from typing import Any


def documented(func: Callable) -> dict[str, str]:
    """The `Args:` section of a function's docstring: name -> description (its lines, as KFP keeps them)."""
    doc = inspect.getdoc(func) or ""
    section = re.search(r"^Args:\n(?P<body>(?:[ \t]+.*\n?|\n)*)", doc, flags=re.M)
    found: dict[str, str] = {}
    if not section:
        return found
    name = None
    for line in textwrap.dedent(section["body"]).splitlines():
        entry = re.match(r"^(\w+):\s*(.*)$", line)
        if entry:
            name = entry[1]
            found[name] = entry[2].strip()
        elif name and line.strip():
            found[name] += "\n" + line.strip()
    return found


def parameters(func: Callable, *, without: Iterable[str] = ()) -> list[inspect.Parameter]:
    """The parameters of a (pipeline) function, in order, less those named in `without`."""
    skip = set(without)
    return [p for p in inspect.signature(func).parameters.values() if p.name not in skip]


def with_parameters(func: Callable, params: list[inspect.Parameter], docs: dict[str, str], summary: str) -> Callable:
    """`func(**values)` given the signature `params` and a docstring of `summary` and `docs`, so that
    `@dsl.pipeline` sees typed, documented inputs. Parameters without a default come first."""
    ordered = [p for p in params if p.default is inspect.Parameter.empty]
    ordered += [p for p in params if p.default is not inspect.Parameter.empty]
    signature = inspect.Signature([p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in ordered])
    names = [p.name for p in ordered]

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        return func(**dict(zip(names, args, strict=False)), **kwargs)  # KFP passes all, in order

    pipeline.__name__ = pipeline.__qualname__ = func.__name__
    pipeline.__module__ = func.__module__
    pipeline.__signature__ = signature  # type: ignore[attr-defined]
    args = "\n".join(f"    {name}: " + docs.get(name, "").replace("\n", "\n        ") for name in names)
    pipeline.__doc__ = f"{summary}\n\nArgs:\n{args}\n"
    return pipeline
