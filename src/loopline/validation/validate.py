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

This module runs a suite with GX and holds the entry points (`validate_splits`, the step's
`ValidationSettings`); the suite is `validation_suite`, the results `validation_results`, the
report `validation_report`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from loopline.core.errors import ValidationFailed
from loopline.core.logs import quiet_libraries
from loopline.data.spec import DatasetSpec
from loopline.validation.names import alias_kwargs, case_aliases, user_kwargs, user_result
from loopline.validation.report import render_html
from loopline.validation.results import (
    CheckResult,
    SchemaChange,
    SplitResult,
    ValidationReport,
    schema_changes,
)
from loopline.validation.suite import (
    CRITICAL,
    DEFAULT_MAX_NULL_FRACTION,
    DEFAULT_SKEW_THRESHOLD,
    NUMERIC_TYPES,
    SEVERITIES,
    WARNING,
    ExpectationSpec,
    Suite,
    check_max_null_fraction,
    check_skew_threshold,
    infer_suite,
    jsonable,
)

log = logging.getLogger(__name__)


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
        # columns named alike but for case go to GX under aliases (`validation_names`)
        self.aliases = case_aliases(suite.columns)
        expectations = [dataclasses.replace(item, kwargs=alias_kwargs(item.kwargs, self.aliases)).to_gx()
                        for item in suite.expectations]
        # Built whole, then added once: adding expectations one by one to a stored suite saves
        # the suite after each of them.
        self.gx_suite = self.context.suites.add(
            gx.ExpectationSuite(name=suite.name, expectations=expectations)
        )

    def validate(self, frame: pd.DataFrame):
        if self.aliases:
            frame = frame.rename(columns=self.aliases)
        batch = self.batches.get_batch(batch_parameters={"dataframe": frame})
        return batch.validate(self.gx_suite, result_format="SUMMARY")

def _check(r, changes: list[SchemaChange], aliases: dict[str, str] | None = None) -> CheckResult:
    config = r.expectation_config
    meta = config.meta or {}
    severity = str(meta.get("severity") or getattr(config, "severity", CRITICAL) or CRITICAL)
    severity = severity.split(".")[-1].lower()
    result = user_result(jsonable(dict(r.result or {})), aliases or {})
    kwargs = user_kwargs(dict(config.kwargs), aliases or {})
    column = str(kwargs.get("column") or ", ".join(map(str, kwargs.get("column_list") or [])))
    detail = "" if r.success else describe(config.type, kwargs, result, _exception_message(r.exception_info))
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
    frames: dict[str, pd.DataFrame], suite: Suite, *, skew_threshold: float
) -> ValidationReport:
    """Validate each named frame with Great Expectations and judge the outcome."""
    check_skew_threshold(skew_threshold)
    runner = _Runner(suite)
    report = ValidationReport(splits=[], skew_threshold=skew_threshold, suite_size=len(suite.expectations))
    for name, frame in frames.items():
        log.info("validating %s (%d rows, %d columns) against %d expectations",
                 name, len(frame), frame.shape[1], len(suite.expectations))
        changes = schema_changes(frame, suite)
        result = runner.validate(frame)
        split = SplitResult(name=name, rows=len(frame), schema_changes=changes, gx_result=result,
                            column_aliases=runner.aliases)
        split.checks = [_check(r, changes, runner.aliases) for r in result.results]
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

@dataclass(frozen=True, kw_only=True)
class ValidationSettings:
    """How `validate_data` judges the splits: the one declaration of these settings and their
    defaults. Checked on construction."""

    fail_on_error: bool = True  # a blocked outcome fails the step
    reference_data_uri: str = ""  # infer the suite from this file instead of the training split
    suite_uri: str = ""  # the user's suite file
    max_null_fraction: float = DEFAULT_MAX_NULL_FRACTION
    skew_threshold: float = DEFAULT_SKEW_THRESHOLD

    def __post_init__(self) -> None:
        """The checks of the validation settings, each a one-line DataError."""
        check_max_null_fraction(self.max_null_fraction)
        check_skew_threshold(self.skew_threshold)

def validate_splits(
    frames: dict[str, pd.DataFrame],
    spec: DatasetSpec | None = None,
    *,
    settings: ValidationSettings,
    report_path: str | Path | None = None,
    fail_on_error: bool = True,
    reference: pd.DataFrame | None = None,
    suite_expectations: list[ExpectationSpec] | None = None,
) -> ValidationReport:
    """Infer the suite from `reference` (default: the first frame, the training split), merge the
    user's expectations, validate every frame with `settings.max_null_fraction` and
    `settings.skew_threshold`, and write the HTML report.

    Raises ValidationFailed with a one-line summary when blocked and `fail_on_error`.
    """
    base = reference if reference is not None else next(iter(frames.values()))
    suite = infer_suite(base, spec, max_null_fraction=settings.max_null_fraction)
    if suite_expectations:
        suite = suite.merge(suite_expectations)
    report = run_suite(frames, suite, skew_threshold=settings.skew_threshold)
    if report_path is not None:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(render_html(report, suite), encoding="utf-8")
    if not report.passed and fail_on_error:
        raise ValidationFailed(f"data validation failed ({report.outcome}): {report.failure_summary()}")
    return report
