"""The validation suite: expectations inferred from reference data (columns, types, null fractions,
ranges, value sets, duplicates, row counts), a user's suite file merged in, severities."""

from __future__ import annotations

import json
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.core.errors import DataError
from loopline.data.checks import is_datetime
from loopline.data.spec import CATEGORICAL, NUMERIC, DatasetSpec, infer_kind

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
DATETIME_TYPES = ["datetime64", "datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]", "timedelta64"]

MAX_FAILURES_IN_MESSAGE = 5

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
    max_null_fraction: float,
    max_duplicate_fraction: float = DEFAULT_MAX_DUPLICATE_FRACTION,
) -> Suite:
    """Infer a suite from reference data. With a dataset spec: its features (with their kinds)
    and its target (its class set, no nulls); without one: every column, kinds inferred."""
    check_max_null_fraction(max_null_fraction)
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
    elif is_datetime(col):  # dates move on from window to window: their type is checked, not their values
        if not isinstance(col.dtype, pd.DatetimeTZDtype):  # GX cannot check the type of zoned times
            out.append(ExpectationSpec("expect_column_values_to_be_in_type_list",
                                       {"column": name, "type_list": DATETIME_TYPES}, CRITICAL, "dates or times"))
    else:
        values = col.dropna()
        if pd.api.types.is_bool_dtype(col) or (len(values) and values.map(type).isin((bool, np.bool_)).all()):
            types = BOOL_TYPES  # booleans, with missing values too (an object column of True, False and NaN)
        elif pd.api.types.is_numeric_dtype(col):
            types = NUMERIC_TYPES
        else:
            types = TEXT_TYPES
        out.append(ExpectationSpec("expect_column_values_to_be_in_type_list", {"column": name, "type_list": types},
                                   CRITICAL, f"values of type {types[0]}"))
        value_set = sorted(jsonable([v for v in pd.unique(col) if not pd.isna(v)]), key=str)
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

def check_max_null_fraction(value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise DataError(f"max_null_fraction must be in [0, 1), got {value}")

def check_skew_threshold(value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise DataError(f"skew_threshold must be in [0, 1], got {value}")

def jsonable(value: Any) -> Any:
    """Plain Python values (GX's renderers and JSON choke on numpy scalars)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
