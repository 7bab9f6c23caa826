"""Column names that differ only in case, validated with Great Expectations.

GX finds an expectation's column in a pandas frame by comparing names without case, and takes
the first column that matches: with `Channel` and `channel` in one frame, both columns'
expectations check `Channel`. Loopline hands GX such columns under aliases that no other column
matches in any case (`<name>__<8 hex digits of its SHA-256>`), in the frame and in the suite's
arguments alike, and reads the results back under the user's names, so every report shows the
columns as the data names them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

COLUMN_KEYS = ("column", "column_A", "column_B")
LIST_KEYS = ("column_list", "column_set")


def case_aliases(columns: Iterable[str]) -> dict[str, str]:
    """Column -> alias for every column whose name another one matches but for case."""
    names = [str(c) for c in columns]
    folded: dict[str, int] = {}
    for name in names:
        folded[name.casefold()] = folded.get(name.casefold(), 0) + 1
    return {name: f"{name}__{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"
            for name in names if folded[name.casefold()] > 1}


def _swap(kwargs: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    out = dict(kwargs)
    for key in COLUMN_KEYS:
        if isinstance(out.get(key), str):
            out[key] = names.get(out[key], out[key])
    for key in LIST_KEYS:
        if isinstance(out.get(key), (list, tuple, set)):
            out[key] = [names.get(c, c) if isinstance(c, str) else c for c in out[key]]
    return out


def alias_kwargs(kwargs: dict[str, Any], aliases: dict[str, str]) -> dict[str, Any]:
    """An expectation's arguments with the aliased columns under their aliases."""
    return _swap(kwargs, aliases) if aliases else kwargs


def user_kwargs(kwargs: dict[str, Any], aliases: dict[str, str]) -> dict[str, Any]:
    """An expectation's arguments as GX reports them, under the user's column names."""
    return _swap(kwargs, {alias: name for name, alias in aliases.items()}) if aliases else kwargs


def user_result(result: Any, aliases: dict[str, str]) -> Any:
    """A result (JSON-like) with every aliased column name given back its user's name."""
    if not aliases:
        return result
    back = {alias: name for name, alias in aliases.items()}

    def walk(value):
        if isinstance(value, str):
            return back.get(value, value)
        if isinstance(value, dict):
            return {walk(k): walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        return value

    return walk(result)
