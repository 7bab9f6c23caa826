"""Validation results: each expectation's outcome, each dataset's, and the verdict (pass, evolve,
block) with its skew score."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from loopline.data.spec import CATEGORICAL, NUMERIC
from loopline.validation.suite import (
    BLOCK,
    CRITICAL,
    EVOLVE,
    MAX_FAILURES_IN_MESSAGE,
    NUMERIC_TYPES,
    PASS,
    WARNING,
    Suite,
)


@dataclass
class CheckResult:
    expectation: str
    column: str
    success: bool
    detail: str
    severity: str = CRITICAL
    rule: str = ""
    result: dict[str, Any] = field(default_factory=dict, repr=False)

@dataclass
class SchemaChange:
    change: str  # missing_column | retyped_column | new_column | new_category
    column: str
    detail: str
    blocking: bool

@dataclass
class SplitResult:
    name: str
    rows: int
    checks: list[CheckResult] = field(default_factory=list)
    schema_changes: list[SchemaChange] = field(default_factory=list)
    gx_result: Any = field(default=None, repr=False)
    column_aliases: dict[str, str] = field(default_factory=dict, repr=False)  # column -> its name in GX

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success]

    @property
    def critical_failures(self) -> list[CheckResult]:
        return [c for c in self.failures if c.severity == CRITICAL]

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.failures if c.severity == WARNING]

    @property
    def success(self) -> bool:
        return not self.critical_failures and not any(s.blocking for s in self.schema_changes)

_SCHEMA_EXPECTATIONS = ("expect_column_to_exist", "expect_column_values_to_be_in_type_list",
                        "expect_table_columns_to_match_set")

def _failure_rank(c: CheckResult) -> tuple[int, int]:
    """Critical before warning; within each, schema failures first, unevaluable checks last."""
    kind = 0 if c.expectation in _SCHEMA_EXPECTATIONS else 2 if c.detail.startswith("could not be evaluated") else 1
    return (c.severity != CRITICAL, kind)

@dataclass
class ValidationReport:
    splits: list[SplitResult]
    skew_threshold: float
    suite_size: int = 0

    @property
    def evaluated(self) -> int:
        return sum(len(s.checks) for s in self.splits)

    @property
    def failed(self) -> int:
        return sum(len(s.failures) for s in self.splits)

    @property
    def failed_critical(self) -> int:
        return sum(len(s.critical_failures) for s in self.splits)

    @property
    def failed_warning(self) -> int:
        return sum(len(s.warnings) for s in self.splits)

    @property
    def skew_score(self) -> float:
        return self.failed / self.evaluated if self.evaluated else 0.0

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.splits)

    @property
    def outcome(self) -> str:
        if not all(s.success for s in self.splits) or self.skew_score > self.skew_threshold:
            return BLOCK
        if any(s.schema_changes for s in self.splits):
            return EVOLVE
        return PASS

    @property
    def passed(self) -> bool:
        return self.outcome != BLOCK

    success = passed  # the name earlier Loopline versions used

    @property
    def success_percent(self) -> float:
        return round(100.0 * (self.evaluated - self.failed) / max(self.evaluated, 1), 2)

    def failures(self, *, with_split: bool = False) -> list[dict[str, str]]:
        """Failed expectations, critical first: {"expectation", "column", "severity", "detail"}."""
        out = []
        for s in self.splits:
            for c in sorted(s.failures, key=_failure_rank):
                item = {"expectation": c.expectation, "column": c.column, "severity": c.severity, "detail": c.detail}
                if with_split:
                    item["split"] = s.name
                out.append(item)
        return out

    def failure_summary(self) -> str:
        """One line: the blocking reasons first, each naming its column and rule."""
        items = []
        for s in self.splits:
            schema_blocked = any(c.blocking for c in s.schema_changes)
            named: set[str] = set()
            for c in sorted(s.failures, key=_failure_rank):
                if c.column in named or (schema_blocked and _failure_rank(c)[1] == 2):
                    continue  # one line per column: its most telling failure; the JSON has them all
                named.add(c.column)
                rule = f" (rule: {c.rule})" if c.rule else ""
                column = c.column if c.column.count(",") < 3 else f"{c.column.count(',') + 1} columns"
                items.append(f"{s.name}: {c.expectation}({column}) [{c.severity}] {c.detail}{rule}")
        if self.skew_score > self.skew_threshold:
            skew = f"skew score {self.skew_score:.3f} above the threshold {self.skew_threshold:g}"
            if self.failed_critical or any(c.blocking for s in self.splits for c in s.schema_changes):
                items.append(skew)
            else:
                items.insert(0, skew)  # the skew alone blocks
        shown = items[:MAX_FAILURES_IN_MESSAGE]
        more = f"; and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
        return "; ".join(shown) + more

    def evolutions(self) -> list[str]:
        return [f"{s.name}: column '{c.column}' {c.detail}" for s in self.splits for c in s.schema_changes
                if not c.blocking]

    def contract(self) -> dict[str, Any]:
        """The JSON contract of `loopline validate --json`."""
        return {
            "passed": self.passed,
            "skew_score": self.skew_score,
            "outcome": self.outcome,
            "failures": self.failures(),
        }

    def to_dict(self) -> dict[str, Any]:
        """The contract plus counts, schema changes and every check of every split."""
        return {
            **self.contract(),
            "failures": self.failures(with_split=len(self.splits) > 1),
            "skew_threshold": self.skew_threshold,
            "success": self.passed,
            "rows": self.rows,
            "evaluated": self.evaluated,
            "failed": self.failed,
            "failed_critical": self.failed_critical,
            "failed_warning": self.failed_warning,
            "success_percent": self.success_percent,
            "splits": [
                {
                    "name": s.name, "rows": s.rows, "success": s.success,
                    "schema_changes": [c.__dict__ for c in s.schema_changes],
                    "checks": [{k: v for k, v in c.__dict__.items() if k != "result"} for c in s.checks],
                }
                for s in self.splits
            ],
        }

def schema_changes(frame: pd.DataFrame, suite: Suite) -> list[SchemaChange]:
    """Missing and retyped columns block; a new column evolves when nullable, else blocks."""
    changes = []
    for name, kind in suite.columns.items():
        if name not in frame.columns:
            changes.append(SchemaChange("missing_column", name, "is missing (it is in the reference)", True))
            continue
        col = frame[name]
        if kind == NUMERIC and not pd.api.types.is_numeric_dtype(col) and col.notna().any():
            bad = col[col.notna() & pd.to_numeric(col, errors="coerce").isna()]
            example = f", e.g. {bad.iloc[0]!r}" if len(bad) else ""
            changes.append(SchemaChange("retyped_column", name, f"is numeric in the reference but arrives as text{example}", True))
        elif kind == CATEGORICAL and col.notna().any():
            ref_numeric = any(e.type == "expect_column_values_to_be_in_type_list" and e.column == name
                              and e.kwargs.get("type_list") == NUMERIC_TYPES for e in suite.expectations)
            if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col) and not ref_numeric:
                changes.append(SchemaChange("retyped_column", name,
                                            f"holds text in the reference but arrives as {col.dtype} numbers", True))
    for name in frame.columns:
        if name in suite.columns:
            continue
        nulls = int(frame[name].isna().sum())
        if nulls:
            changes.append(SchemaChange("new_column", str(name),
                                        f"is new and nullable ({nulls} nulls): the schema evolves", False))
        else:
            changes.append(SchemaChange(
                "new_column", str(name),
                "is not in the reference and has no missing values: an extra column (only a nullable new column "
                "may evolve the schema)", True))
    return changes
