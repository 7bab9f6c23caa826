"""Data validation with Great Expectations 1.x.

A suite is inferred from a reference dataset, the way TFX's SchemaGen infers a schema: the
column set, types, nullability (a per-column maximum null fraction), numeric ranges from the
reference's quantiles with a tolerance, finite numbers, categorical value sets, duplicate rows
and row-count bounds. A user's suite file (GX JSON) adds expectations or overrides inferred
ones with the same type and column. Every expectation is `critical` or `warning` (its `meta`
says which, as does GX's own `severity`).

Great Expectations validates each dataset; Loopline then judges the outcome:

- **block**: a missing or retyped column, a new column without missing values, any failed
  critical expectation, or a skew score (failed / evaluated expectations) above the threshold;
- **evolve**: nothing blocks, and the schema grew compatibly: a new nullable column, or new
  categories within the set's tolerance; logged and reported, the run continues;
- **pass**: otherwise. Failed warnings are reported in every outcome.

The report is GX's Data Docs page of each dataset, made to open offline (the CDN stylesheets
and scripts GX links are removed and a small inline stylesheet stands in for them), below a
Loopline summary of the outcome.
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.data import CATEGORICAL, NUMERIC, DatasetSpec, infer_kind
from loopline.errors import DataError, ValidationFailed
from loopline.logs import quiet_libraries

log = logging.getLogger(__name__)

CRITICAL = "critical"
WARNING = "warning"
SEVERITIES = (CRITICAL, WARNING)
PASS, EVOLVE, BLOCK = "pass", "evolve", "block"

DEFAULT_MAX_NULL_FRACTION = 0.10
DEFAULT_MAX_DUPLICATE_FRACTION = 0.05
DEFAULT_SKEW_THRESHOLD = 0.1
RANGE_QUANTILES = (0.001, 0.999)
RANGE_TOLERANCE = 0.10  # of the inter-quantile range, on each side
MOSTLY_IN_RANGE = 0.99
MOSTLY_IN_SET = 0.99  # up to 1% new categories is an evolution, more is a failure
ROW_COUNT_FACTOR = 10  # warning when a dataset is 10x smaller or larger than the reference
FINITE_MAX = sys.float_info.max
NUMERIC_TYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "Int8", "Int16", "Int32", "Int64", "Float32", "Float64",
]
TEXT_TYPES = ["str"]
BOOL_TYPES = ["bool", "boolean"]
MAX_FAILURES_IN_MESSAGE = 5


# --------------------------------------------------------------------------------------------
# The suite


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


@dataclass
class ExpectationSpec:
    """One expectation: its GX type (snake_case, as in GX JSON), arguments, severity and rule."""

    type: str
    kwargs: dict[str, Any]
    severity: str = CRITICAL
    rule: str = ""
    source: str = "inferred"

    @property
    def column(self) -> str:
        if "column" in self.kwargs:
            return str(self.kwargs["column"])
        if "column_list" in self.kwargs:
            return ", ".join(str(c) for c in self.kwargs["column_list"])
        return ""

    @property
    def key(self) -> tuple[str, str]:
        """Expectations with the same key replace each other when suites are merged."""
        return (self.type, self.column)

    def to_gx(self):
        import great_expectations.expectations as gxe

        cls = getattr(gxe, _camel(self.type), None)
        if cls is None:
            raise DataError(f"unknown Great Expectations expectation type '{self.type}'")
        meta = {"severity": self.severity, "rule": self.rule, "source": self.source}
        return cls(**self.kwargs, meta=meta, severity=self.severity)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "kwargs": self.kwargs,
                "meta": {"severity": self.severity, "rule": self.rule, "source": self.source}}


@dataclass
class Suite:
    """An expectation suite and the reference schema it was inferred from (column -> kind)."""

    expectations: list[ExpectationSpec]
    columns: dict[str, str]
    reference_rows: int = 0
    name: str = "loopline"

    def merge(self, others: list[ExpectationSpec]) -> Suite:
        """A new suite: `others` replace expectations with the same type and column, or are added."""
        replaced = {e.key: e for e in others}
        merged = [replaced.pop(e.key, e) for e in self.expectations]
        merged.extend(e for e in others if e.key in replaced)
        return Suite(merged, dict(self.columns), self.reference_rows, self.name)

    def to_json(self) -> dict[str, Any]:
        """GX suite JSON; the reference schema rides in the suite's `meta`."""
        return {
            "name": self.name,
            "expectations": [e.to_json() for e in self.expectations],
            "meta": {"loopline": {"columns": self.columns, "reference_rows": self.reference_rows}},
        }


def infer_suite(
    reference: pd.DataFrame,
    spec: DatasetSpec | None = None,
    *,
    max_null_fraction: float = DEFAULT_MAX_NULL_FRACTION,
    max_duplicate_fraction: float = DEFAULT_MAX_DUPLICATE_FRACTION,
) -> Suite:
    """Infer a suite from reference data. With a dataset spec: its features (with their kinds)
    and its target (its class set, no nulls); without one: every column, kinds inferred."""
    if not 0.0 <= max_null_fraction < 1.0:
        raise DataError(f"max_null_fraction must be in [0, 1), got {max_null_fraction}")
    if reference.empty:
        raise DataError("the reference data has no rows: no suite can be inferred from it")
    kinds = dict(spec.features) if spec else {str(c): infer_kind(reference[c]) for c in reference.columns}
    columns = dict(kinds)
    if spec:
        columns[spec.target] = CATEGORICAL
    missing = [c for c in columns if c not in reference.columns]
    if missing:
        raise DataError(f"the reference data lacks columns: {', '.join(missing)}")
    n = len(reference)
    suite: list[ExpectationSpec] = [
        ExpectationSpec("expect_table_row_count_to_be_between", {"min_value": 1}, CRITICAL, "at least one row"),
        ExpectationSpec(
            "expect_table_row_count_to_be_between",
            {"min_value": max(1, math.ceil(n / ROW_COUNT_FACTOR)), "max_value": n * ROW_COUNT_FACTOR},
            WARNING, f"within {ROW_COUNT_FACTOR}x of the reference's {n} rows",
        ),
        ExpectationSpec(
            "expect_table_columns_to_match_set", {"column_set": list(columns), "exact_match": True},
            WARNING, "the reference's column set",
        ),
    ]
    for name, kind in kinds.items():
        suite.extend(_column_expectations(reference[name], name, kind, max_null_fraction))
    if spec:
        t = spec.target
        suite += [
            ExpectationSpec("expect_column_to_exist", {"column": t}, CRITICAL, "column present"),
            ExpectationSpec("expect_column_values_to_not_be_null", {"column": t}, CRITICAL, "target never null"),
            ExpectationSpec("expect_column_values_to_be_in_set", {"column": t, "value_set": spec.classes},
                            CRITICAL, "one of the target's classes"),
        ]
    # Rows hashed, not compared: the same duplicates in a fraction of the time. Selecting columns
    # copies the frame, so only when the reference holds other columns too.
    rows = reference if set(reference.columns) == set(columns) else reference[list(columns)]
    observed = float(pd.util.hash_pandas_object(rows, index=False).duplicated(keep=False).mean())
    allowed = max(max_duplicate_fraction, round(observed * 1.5, 4))
    suite.append(
        ExpectationSpec(
            "expect_compound_columns_to_be_unique", {"column_list": list(columns), "mostly": round(1 - allowed, 4)},
            CRITICAL, f"at most {allowed:.1%} duplicate rows",
        )
    )
    return Suite(suite, columns, n)


def _column_expectations(col: pd.Series, name: str, kind: str, max_null_fraction: float) -> list[ExpectationSpec]:
    out = [ExpectationSpec("expect_column_to_exist", {"column": name}, CRITICAL, "column present")]
    null_fraction = float(col.isna().mean())
    allowed = min(0.9999, max(max_null_fraction, round(null_fraction * 1.5, 4)))
    out.append(
        ExpectationSpec("expect_column_values_to_not_be_null", {"column": name, "mostly": round(1 - allowed, 4)},
                        CRITICAL, f"at most {allowed:.0%} nulls")
    )
    if kind == NUMERIC:
        out.append(ExpectationSpec("expect_column_values_to_be_in_type_list",
                                   {"column": name, "type_list": NUMERIC_TYPES}, CRITICAL, "numeric type"))
        numbers = col if pd.api.types.is_numeric_dtype(col) else pd.to_numeric(col, errors="coerce")
        array = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        array = array[np.isfinite(array)]
        if len(array):
            lo, hi = (float(v) for v in np.quantile(array, RANGE_QUANTILES))
            pad = (hi - lo) * RANGE_TOLERANCE
            low, high = lo - pad, hi + pad
            out.append(
                ExpectationSpec(
                    "expect_column_values_to_be_between",
                    {"column": name, "min_value": low, "max_value": high, "mostly": MOSTLY_IN_RANGE},
                    CRITICAL, f"{MOSTLY_IN_RANGE:.0%} of values within [{low:.6g}, {high:.6g}]",
                )
            )
        out += [
            ExpectationSpec("expect_column_max_to_be_between", {"column": name, "max_value": FINITE_MAX},
                            CRITICAL, "finite values (no +inf)"),
            ExpectationSpec("expect_column_min_to_be_between", {"column": name, "min_value": -FINITE_MAX},
                            CRITICAL, "finite values (no -inf)"),
        ]
    else:
        if pd.api.types.is_bool_dtype(col):
            types = BOOL_TYPES
        elif pd.api.types.is_numeric_dtype(col):
            types = NUMERIC_TYPES
        else:
            types = TEXT_TYPES
        out.append(ExpectationSpec("expect_column_values_to_be_in_type_list", {"column": name, "type_list": types},
                                   CRITICAL, f"values of type {types[0]}"))
        value_set = sorted(_jsonable([v for v in pd.unique(col) if not pd.isna(v)]), key=str)
        out.append(
            ExpectationSpec("expect_column_values_to_be_in_set",
                            {"column": name, "value_set": value_set, "mostly": MOSTLY_IN_SET},
                            CRITICAL, f"{MOSTLY_IN_SET:.0%} of values among the reference's {len(value_set)} categories")
        )
    return out


def load_suite_file(path: str | Path) -> list[ExpectationSpec]:
    """Read a GX suite JSON file: {"expectations": [{"type", "kwargs", "meta": {"severity"}}]}."""
    text_path = str(path)
    try:
        if "://" in text_path and not text_path.startswith("file://"):
            import fsspec

            with fsspec.open(text_path, "r", encoding="utf-8") as fh:
                text = fh.read()
        else:
            local = Path(text_path.removeprefix("file://"))
            if not local.is_file():
                raise DataError(f"suite file not found: {path}")
            text = local.read_text(encoding="utf-8")
        raw = json.loads(text)
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"cannot read suite file {path}: {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"suite file {path} is not valid JSON: {exc}") from None
    return parse_suite(raw, where=f"suite file {path}")


def parse_suite(raw: Any, *, where: str = "suite") -> list[ExpectationSpec]:
    """Expectations of a GX suite given as a dict (or a bare list of expectations)."""
    items = raw.get("expectations") if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise DataError(f"{where}: expected an object with an 'expectations' list")
    out = []
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise DataError(f"{where}: expectation {i} is not an object")
        kind = item.get("type") or item.get("expectation_type")
        if not isinstance(kind, str) or not kind:
            raise DataError(f"{where}: expectation {i} has no 'type'")
        meta = item.get("meta") or {}
        severity = str(meta.get("severity") or item.get("severity") or CRITICAL).lower()
        if severity not in SEVERITIES:
            raise DataError(f"{where}: expectation {i} ({kind}) has severity '{severity}'; use critical or warning")
        spec = ExpectationSpec(kind, dict(item.get("kwargs") or {}), severity,
                               str(meta.get("rule") or meta.get("notes") or "from the suite file"), "suite")
        try:
            spec.to_gx()
        except DataError:
            raise DataError(f"{where}: expectation {i} has an unknown type '{kind}'") from None
        except Exception as exc:  # GX's pydantic validation of the arguments
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"{where}: expectation {i} ({kind}) has invalid arguments: {first}") from None
        out.append(spec)
    return out


# --------------------------------------------------------------------------------------------
# Results


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
    skew_threshold: float = DEFAULT_SKEW_THRESHOLD
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


# --------------------------------------------------------------------------------------------
# Running the suite


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


def _jsonable(value: Any) -> Any:
    """Plain Python values (GX's renderers and JSON choke on numpy scalars)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _examples(result: dict[str, Any]) -> str:
    counts = result.get("partial_unexpected_counts") or []
    values = [c["value"] for c in counts] or list(result.get("partial_unexpected_list") or [])
    unique = list(dict.fromkeys(repr(v) for v in values))
    return ("; e.g. " + ", ".join(unique[:3])) if unique else ""


def _num(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def describe(expectation: str, kwargs: dict[str, Any], result: dict[str, Any], exception: str) -> str:
    """What GX observed, in words."""
    if exception:
        return f"could not be evaluated: {exception}"
    count, pct = result.get("unexpected_count") or 0, result.get("unexpected_percent")
    pct_text = f"{pct:.1f}%" if isinstance(pct, (int, float)) else "?"
    if expectation == "expect_column_to_exist":
        return "column not found"
    if expectation == "expect_column_values_to_not_be_null":
        if result.get("unexpected_percent") == 100.0:
            return f"all values are null ({count} rows)"
        return f"{pct_text} null ({count} rows)"
    if expectation == "expect_column_values_to_be_between":
        return f"{count} values ({pct_text}) outside [{_num(kwargs.get('min_value'))}, {_num(kwargs.get('max_value'))}]{_examples(result)}"
    if expectation == "expect_column_values_to_be_in_set":
        return f"{count} values ({pct_text}) not in the expected set{_examples(result)}"
    if expectation == "expect_column_values_to_be_in_type_list":
        expected = "a numeric type" if kwargs.get("type_list") == NUMERIC_TYPES else ", ".join(kwargs.get("type_list", []))
        if "observed_value" in result:
            return f"type {result['observed_value']}, expected {expected}"
        return f"{count} values ({pct_text}) of another type{_examples(result)}"
    if expectation == "expect_compound_columns_to_be_unique":
        return f"{count} rows ({pct_text}) are duplicates"
    if expectation == "expect_table_columns_to_match_set":
        details = result.get("details", {}).get("mismatched", {}) if isinstance(result.get("details"), dict) else {}
        parts = []
        if details.get("unexpected"):
            parts.append("new columns: " + ", ".join(map(str, details["unexpected"])))
        if details.get("missing"):
            parts.append("missing columns: " + ", ".join(map(str, details["missing"])))
        return "; ".join(parts) or f"observed {result.get('observed_value')}"
    if "observed_value" in result:
        return f"observed {result['observed_value']}"
    if count:
        return f"{count} unexpected ({pct_text}){_examples(result)}"
    return "not met"


def _exception_message(info: Any) -> str:
    """GX 1.x keeps exception details flat or keyed by metric id; find the first message."""
    if isinstance(info, dict):
        if info.get("raised_exception") is False:
            return ""
        message = info.get("exception_message")
        if message:
            return str(message).splitlines()[0]
        for value in info.values():
            found = _exception_message(value)
            if found:
                return found
    return ""


class _Runner:
    """One ephemeral GX context, one suite, run on any number of frames."""

    def __init__(self, suite: Suite):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        quiet_libraries()
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self.context.data_sources.add_pandas(name="loopline")
        self.batches = source.add_dataframe_asset(name="data").add_batch_definition_whole_dataframe("whole")
        # Built whole, then added once: adding expectations one by one to a stored suite saves
        # the suite after each of them.
        self.gx_suite = self.context.suites.add(
            gx.ExpectationSuite(name=suite.name, expectations=[item.to_gx() for item in suite.expectations])
        )

    def validate(self, frame: pd.DataFrame):
        batch = self.batches.get_batch(batch_parameters={"dataframe": frame})
        return batch.validate(self.gx_suite, result_format="SUMMARY")


def _check(r, changes: list[SchemaChange]) -> CheckResult:
    config = r.expectation_config
    meta = config.meta or {}
    severity = str(meta.get("severity") or getattr(config, "severity", CRITICAL) or CRITICAL)
    severity = severity.split(".")[-1].lower()
    result = _jsonable(dict(r.result or {}))
    column = str(config.kwargs.get("column") or ", ".join(map(str, config.kwargs.get("column_list") or [])))
    detail = "" if r.success else describe(config.type, config.kwargs, result, _exception_message(r.exception_info))
    if config.type == "expect_table_columns_to_match_set" and not r.success:
        blocking = [c.column for c in changes if c.blocking and c.change == "new_column"]
        if blocking:  # an extra column without nulls is a block, not a compatible evolution
            severity, column = CRITICAL, ", ".join(blocking)
            detail = (f"extra column{'s' if len(blocking) > 1 else ''} {', '.join(repr(c) for c in blocking)} not in "
                      "the reference and without missing values (only a nullable new column evolves the schema)")
    if config.type == "expect_column_values_to_be_in_type_list" and not r.success:
        retyped = [c for c in changes if c.change == "retyped_column" and c.column == column]
        if retyped:
            detail = retyped[0].detail
    return CheckResult(config.type, column, bool(r.success), detail, severity if severity in SEVERITIES else WARNING,
                       str(meta.get("rule") or ""), result)


def run_suite(
    frames: dict[str, pd.DataFrame], suite: Suite, *, skew_threshold: float = DEFAULT_SKEW_THRESHOLD
) -> ValidationReport:
    """Validate each named frame with Great Expectations and judge the outcome."""
    if not 0.0 <= skew_threshold <= 1.0:
        raise DataError(f"skew_threshold must be in [0, 1], got {skew_threshold}")
    runner = _Runner(suite)
    report = ValidationReport(splits=[], skew_threshold=skew_threshold, suite_size=len(suite.expectations))
    for name, frame in frames.items():
        log.info("validating %s (%d rows, %d columns) against %d expectations",
                 name, len(frame), frame.shape[1], len(suite.expectations))
        changes = schema_changes(frame, suite)
        result = runner.validate(frame)
        split = SplitResult(name=name, rows=len(frame), schema_changes=changes, gx_result=result)
        split.checks = [_check(r, changes) for r in result.results]
        for check in split.checks:  # new categories within the set's tolerance: the schema evolves
            if (check.success and check.expectation == "expect_column_values_to_be_in_set"
                    and check.result.get("unexpected_count")):
                new = sorted({str(v["value"]) for v in check.result.get("partial_unexpected_counts") or []})
                split.schema_changes.append(SchemaChange(
                    "new_category", check.column,
                    f"has new categories within tolerance ({check.result['unexpected_count']} rows): {', '.join(new)}",
                    False))
        for change in split.schema_changes:
            (log.error if change.blocking else log.warning)("%s: column '%s' %s", name, change.column, change.detail)
        for check in split.failures:
            log.warning("%s: %s(%s) [%s] %s", name, check.expectation, check.column, check.severity, check.detail)
        log.info("%s: %d/%d expectations met, %d critical and %d warning failures",
                 name, len(split.checks) - len(split.failures), len(split.checks),
                 len(split.critical_failures), len(split.warnings))
        report.splits.append(split)
    log.info("validation outcome: %s (skew score %.3f, threshold %g)", report.outcome, report.skew_score, skew_threshold)
    return report


# --------------------------------------------------------------------------------------------
# Reports

_OFFLINE_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#212529;font-size:14px}
.container-fluid{padding:1rem 2rem}.row{display:flex;flex-wrap:wrap}.col-12{flex:0 0 100%}
.col-md-2,.col-lg-2{flex:0 0 16%;max-width:16%}.col-md-10,.col-lg-10{flex:0 0 83%;max-width:83%}
.card{border:1px solid #dee2e6;border-radius:4px;margin-bottom:1rem}.card-header{background:#f7f7f9;padding:.5rem 1rem;
border-bottom:1px solid #dee2e6}.card-body{padding:.75rem 1rem}.table{border-collapse:collapse;width:100%;margin-bottom:1rem}
.table td,.table th{border-top:1px solid #dee2e6;padding:.35rem .5rem;vertical-align:top;text-align:left}
.table-sm td,.table-sm th{padding:.25rem .4rem}.badge{display:inline-block;padding:.15em .4em;border-radius:3px;
background:#e9ecef;font-size:85%}.text-danger{color:#dc3545}.text-success{color:#28a745}.text-muted{color:#6c757d}
.collapse{display:block}.d-none{display:none}.nav{list-style:none;padding-left:0}.nav-link{display:block;padding:.2rem .5rem}
.ge-navigation-sidebar-container{position:sticky;top:0}code{color:#e83e8c}img{max-width:100%}
.fa-check-circle::before{content:"\\2714";color:#28a745}.fa-times::before{content:"\\2718";color:#dc3545}
.fa-exclamation-triangle::before{content:"\\26A0";color:#d39e00}.fa-question-circle::before{content:"?"}
footer,.sticky .card:has(input[type=radio]){display:none}
#loopline-summary{margin:1rem 2rem;padding:1rem;border:2px solid #888;background:#fafafa}
#loopline-summary.block{border-color:#dc3545}#loopline-summary.evolve{border-color:#d39e00}
#loopline-summary table{border-collapse:collapse}#loopline-summary td,#loopline-summary th{border:1px solid #ccc;padding:3px 8px}
"""

_EXTERNAL = re.compile(
    r"<script[^>]*\bsrc\s*=\s*[\"'][^\"']*[\"'][^>]*>\s*</script>"  # every script file (CDN or relative)
    r"|<link[^>]*\bhref\s*=\s*[\"'][^\"']*[\"'][^>]*/?>"  # stylesheets and icons
    r"|<img[^>]*\bsrc\s*=\s*[\"']https?://[^\"']*[\"'][^>]*/?>",
    re.I,
)
_INLINE_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.I | re.S)
_LINK_HREF = re.compile(r"\bhref\s*=\s*[\"'](https?://|\.\./|index\.html)[^\"']*[\"']", re.I)
_CSS_URL = re.compile(r"url\(\s*[\"']?(https?:)?//[^)]*\)", re.I)


def offline(page: str) -> str:
    """A GX Data Docs page that fetches nothing: CDN scripts/stylesheets, remote images and
    scripts (which need the CDN's jQuery and Bootstrap) removed; links out of the page dropped."""
    page = _EXTERNAL.sub("", page)
    page = _INLINE_SCRIPT.sub("", page)
    page = _CSS_URL.sub("none", page)  # GX's logo, as a CSS background
    return _LINK_HREF.sub("", page)


def _gx_body(result, prefix: str, *, with_style: bool) -> str:
    """The body of GX's Data Docs page for one validation result, with ids made unique."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    for r in result.results:  # GX's renderers format plain numbers only
        r.result = _jsonable(dict(r.result or {}))
    page = offline(DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result)))
    start = page.find(">", page.find("<body")) + 1
    body = page[start:page.rfind("</body>")]
    style = "".join(re.findall(r"<style[^>]*>.*?</style>", page[:start], re.S)) if with_style else ""
    body = re.sub(r'\bid="', f'id="{prefix}-', body)
    body = re.sub(r'href="#', f'href="#{prefix}-', body)
    return style + body


def render_html(report: ValidationReport, suite: Suite) -> str:
    """Loopline's outcome summary above GX's Data Docs page of every validated dataset."""
    outcome = report.outcome
    failures = "".join(
        f"<tr><td>{html.escape(f.get('split', ''))}</td><td>{html.escape(f['column'])}</td>"
        f"<td>{html.escape(f['expectation'])}</td><td>{f['severity']}</td><td>{html.escape(f['detail'])}</td></tr>"
        for f in report.failures(with_split=True)
    )
    changes = "".join(
        f"<li>{html.escape(s.name)}: column <b>{html.escape(c.column)}</b> {html.escape(c.detail)}"
        f" ({'blocks' if c.blocking else 'evolve'})</li>"
        for s in report.splits for c in s.schema_changes
    )
    summary = " · ".join(
        f"<b>{html.escape(s.name)}</b>: {len(s.checks) - len(s.failures)}/{len(s.checks)} met ({s.rows} rows)"
        for s in report.splits
    )
    verdict = {PASS: "passed", EVOLVE: "passed, schema evolves", BLOCK: "FAILED (blocked)"}[outcome]
    parts = [
        f"<div id='loopline-summary' class='{outcome}'><h1>Data validation: {verdict}</h1>",
        f"<p>outcome <b>{outcome}</b> · skew score {report.skew_score:.3f} (threshold {report.skew_threshold:g}) · "
        f"{report.failed_critical} critical and {report.failed_warning} warning failures · {summary}</p>",
    ]
    if changes:
        parts.append(f"<h3>Schema changes</h3><ul>{changes}</ul>")
    if failures:
        parts.append("<h3>Failed expectations</h3><table><tr><th>dataset</th><th>column</th><th>expectation</th>"
                      f"<th>severity</th><th>observed</th></tr>{failures}</table>")
    suite_json = html.escape(json.dumps(suite.to_json(), indent=1, default=str))
    parts.append(f"<details><summary>Expectation suite ({len(suite.expectations)} expectations)</summary>"
                 f"<pre>{suite_json}</pre></details></div>")
    for i, split in enumerate(report.splits):
        if split.gx_result is not None:
            parts.append(f"<h2 style='margin:1rem 2rem'>Great Expectations Data Docs: {html.escape(split.name)}</h2>")
            parts.append(_gx_body(split.gx_result, f"s{i}", with_style=i == 0))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Loopline data validation</title>"
        f"<style>{_OFFLINE_CSS}</style></head><body>{''.join(parts)}</body></html>"
    )


def summary_markdown(report: ValidationReport) -> str:
    lines = [
        f"## Data validation: {report.outcome}",
        "",
        f"{'passed' if report.passed else 'FAILED'} · skew score {report.skew_score:.3f} "
        f"(threshold {report.skew_threshold:g}) · {report.evaluated} expectations evaluated on {report.rows:,} rows · "
        f"{report.failed_critical} critical and {report.failed_warning} warning failures",
        "",
    ]
    changes = [(s.name, c) for s in report.splits for c in s.schema_changes]
    if changes:
        lines += ["### Schema changes", ""]
        lines += [f"- {n}: `{c.column}` {c.detail} ({'blocks' if c.blocking else 'evolve'})" for n, c in changes]
        lines.append("")
    failures = report.failures(with_split=True)
    if failures:
        lines += ["| dataset | column | expectation | severity | observed |", "|---|---|---|---|---|"]
        for f in failures:
            detail = f["detail"].replace("|", "\\|")
            lines.append(f"| {f.get('split', '')} | {f['column']} | {f['expectation']} | {f['severity']} | {detail} |")
    else:
        lines.append("Every expectation was met.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Entry points


def validate_splits(
    frames: dict[str, pd.DataFrame],
    spec: DatasetSpec | None = None,
    *,
    report_path: str | Path | None = None,
    fail_on_error: bool = True,
    reference: pd.DataFrame | None = None,
    suite_expectations: list[ExpectationSpec] | None = None,
    max_null_fraction: float = DEFAULT_MAX_NULL_FRACTION,
    skew_threshold: float = DEFAULT_SKEW_THRESHOLD,
) -> ValidationReport:
    """Infer the suite from `reference` (default: the first frame, the training split), merge the
    user's expectations, validate every frame and write the HTML report.

    Raises ValidationFailed with a one-line summary when blocked and `fail_on_error`.
    """
    base = reference if reference is not None else next(iter(frames.values()))
    suite = infer_suite(base, spec, max_null_fraction=max_null_fraction)
    if suite_expectations:
        suite = suite.merge(suite_expectations)
    report = run_suite(frames, suite, skew_threshold=skew_threshold)
    if report_path is not None:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(render_html(report, suite), encoding="utf-8")
    if not report.passed and fail_on_error:
        raise ValidationFailed(f"data validation failed ({report.outcome}): {report.failure_summary()}")
    return report
