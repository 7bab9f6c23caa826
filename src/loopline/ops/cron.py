"""Schedules: users write a standard 5-field cron; Loopline checks it and converts it per target.

KFP's recurring runs take a 6-field, seconds-first cron (robfig/cron: `0 0 3 * * 1`); Vertex AI
schedules take the standard 5 fields with an optional `TZ=Area/City ` (or `CRON_TZ=`) prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopline.core.errors import LooplineError

# Defaults follow common practice: retrain weekly, watch for drift daily (times in UTC).
DEFAULT_CRON = {
    "training": "0 3 * * 1",  # Mondays at 03:00
    "drift_monitor": "0 2 * * *",  # every day at 02:00
}

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
# name, lowest, highest, names
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),  # 0 and 7 are both Sunday
)
_PART = re.compile(r"^(?:(\*)|([a-z0-9]+)(?:-([a-z0-9]+))?)(?:/(\d+))?$")
_TZ = re.compile(r"^(?:CRON_)?TZ=(\S+)\s+(.*)$")


class CronError(LooplineError):
    """A cron expression that cannot be scheduled."""


@dataclass(frozen=True)
class Cron:
    fields: tuple[str, str, str, str, str]
    timezone: str = ""

    @property
    def standard(self) -> str:
        return " ".join(self.fields)

    def for_kfp(self) -> str:
        """KFP's 6-field, seconds-first form; day of week 7 becomes 0 (robfig/cron knows 0-6)."""
        if self.timezone:
            raise CronError(
                f"cron time zone '{self.timezone}' is for Vertex AI schedules only; KFP recurring runs "
                "follow the KFP scheduler's clock (usually UTC): give the times in that zone without TZ="
            )
        minute, hour, dom, month, dow = self.fields
        return " ".join(("0", minute, hour, dom, month, _dow_without_seven(dow)))

    def for_vertex(self) -> str:
        return f"TZ={self.timezone} {self.standard}" if self.timezone else self.standard


def _value(text: str, field: str, low: int, high: int, names: dict[str, int], whole: str) -> int:
    value = names.get(text) if not text.isdigit() else int(text)
    if value is None:
        raise CronError(f"cron '{whole}': '{text}' is not a valid {field}")
    if not low <= value <= high:
        raise CronError(f"cron '{whole}': {field} {value} is outside {low}-{high}")
    return value


def _values(text: str, field: str, low: int, high: int, names: dict[str, int], whole: str) -> set[int]:
    """Every value a field matches (checks the field on the way)."""
    out: set[int] = set()
    for part in text.lower().split(","):
        match = _PART.match(part)
        if not match:
            hint = " ('?' is not standard cron: use '*')" if "?" in part else ""
            raise CronError(f"cron '{whole}': '{part}' is not a valid {field}{hint}")
        star, start, end, step = match.groups()
        first = low if star else _value(start, field, low, high, names, whole)
        last = high if star else (_value(end, field, low, high, names, whole) if end else first)
        if step is not None and int(step) < 1:
            raise CronError(f"cron '{whole}': step '/{step}' of the {field} must be at least 1")
        if not star and step and not end:
            last = high  # "5/15" means from 5 to the end, every 15
        if first > last:
            raise CronError(f"cron '{whole}': range {start}-{end} of the {field} runs backwards")
        out.update(range(first, last + 1, int(step or 1)))
    return out


def _dow_without_seven(dow: str) -> str:
    values = _values(dow, "day of week", 0, 7, _DAYS, dow)
    if 7 not in values or dow == "*":
        return dow
    return ",".join(str(v) for v in sorted({0 if v == 7 else v for v in values}))


def parse(text: str) -> Cron:
    """Check a standard cron (`m h dom mon dow`, or a macro such as @daily), with an optional
    `TZ=Area/City ` prefix; raise CronError naming the problem."""
    whole = " ".join(str(text).split())
    timezone = ""
    match = _TZ.match(whole)
    if match:
        timezone, whole = match.group(1), match.group(2)
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CronError(f"cron time zone '{timezone}' is not an IANA time zone (for example Europe/Berlin)") from None
    expression = MACROS.get(whole.lower(), whole)
    if expression.startswith("@"):
        raise CronError(f"cron '{whole}' is not a known macro (known: {', '.join(MACROS)})")
    parts = expression.split()
    if len(parts) == 6:
        raise CronError(
            f"cron '{whole}' has 6 fields; write the standard 5 (minute hour day-of-month month day-of-week): "
            "Loopline converts it to KFP's seconds-first form itself"
        )
    if len(parts) != 5:
        raise CronError(f"cron '{whole}' has {len(parts)} fields; a standard cron has 5: minute hour day-of-month month day-of-week")
    for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True):
        _values(part, name, low, high, names, whole)
    return Cron(fields=tuple(parts), timezone=timezone)  # type: ignore[arg-type]
