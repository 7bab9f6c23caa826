"""Data validation with Great Expectations 1.x: a suite inferred from the training split, run
on every split, with an HTML report and a one-line failure naming the failed expectations."""

from __future__ import annotations

import html
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from loopline.data import DatasetSpec
from loopline.errors import ValidationFailed

log = logging.getLogger(__name__)

DEFAULT_MAX_NULL_FRACTION = 0.10
RANGE_TOLERANCE = 0.10  # of the observed range, on each side
MOSTLY_IN_RANGE = 0.99


@dataclass
class ExpectationSpec:
    """One expectation of the inferred suite: a GX expectation class name and its arguments."""

    type: str
    kwargs: dict[str, Any]

    @property
    def column(self) -> str:
        return str(self.kwargs.get("column", ""))


@dataclass
class CheckResult:
    expectation: str
    column: str
    success: bool
    detail: str


@dataclass
class SplitResult:
    name: str
    rows: int
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success]

    @property
    def success(self) -> bool:
        return not self.failures


@dataclass
class ValidationReport:
    splits: list[SplitResult]

    @property
    def success(self) -> bool:
        return all(s.success for s in self.splits)

    @property
    def evaluated(self) -> int:
        return sum(len(s.checks) for s in self.splits)

    @property
    def failed(self) -> int:
        return sum(len(s.failures) for s in self.splits)

    def failure_summary(self) -> str:
        items = [f"{s.name}: {c.expectation}({c.column}) {c.detail}" for s in self.splits for c in s.failures]
        return "; ".join(items)

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "evaluated": self.evaluated,
            "failed": self.failed,
            "splits": [
                {"name": s.name, "rows": s.rows, "success": s.success, "checks": [c.__dict__ for c in s.checks]}
                for s in self.splits
            ],
        }


def infer_suite(reference: pd.DataFrame, spec: DatasetSpec) -> list[ExpectationSpec]:
    """Infer expectations from reference data, the way TFX's SchemaGen infers a schema."""
    suite: list[ExpectationSpec] = [ExpectationSpec("ExpectTableRowCountToBeBetween", {"min_value": 1})]
    for name, kind in spec.features.items():
        col = reference[name]
        suite.append(ExpectationSpec("ExpectColumnToExist", {"column": name}))
        null_fraction = float(col.isna().mean())
        allowed = max(DEFAULT_MAX_NULL_FRACTION, round(null_fraction * 1.5, 4))
        suite.append(ExpectationSpec("ExpectColumnValuesToNotBeNull", {"column": name, "mostly": round(1 - allowed, 4)}))
        values = col.dropna()
        if kind == "numeric":
            suite.append(ExpectationSpec("ExpectColumnValuesToBeOfType", {"column": name, "type_": "float64"}))
            if len(values):
                lo, hi = float(values.min()), float(values.max())
                pad = (hi - lo) * RANGE_TOLERANCE
                suite.append(
                    ExpectationSpec(
                        "ExpectColumnValuesToBeBetween",
                        {"column": name, "min_value": lo - pad, "max_value": hi + pad, "mostly": MOSTLY_IN_RANGE},
                    )
                )
        else:
            suite.append(
                ExpectationSpec(
                    "ExpectColumnValuesToBeInSet",
                    {"column": name, "value_set": sorted(values.astype(str).unique()), "mostly": MOSTLY_IN_RANGE},
                )
            )
    suite.append(ExpectationSpec("ExpectColumnToExist", {"column": spec.target}))
    suite.append(ExpectationSpec("ExpectColumnValuesToNotBeNull", {"column": spec.target}))
    suite.append(ExpectationSpec("ExpectColumnValuesToBeInSet", {"column": spec.target, "value_set": spec.classes}))
    return suite


def _describe(result: dict[str, Any]) -> str:
    """A short human description of what GX observed."""
    if not result:
        return ""
    parts = []
    if "observed_value" in result:
        parts.append(f"observed {result['observed_value']}")
    if result.get("unexpected_count"):
        parts.append(f"{result['unexpected_count']} unexpected ({result.get('unexpected_percent', 0):.1f}%)")
        sample = result.get("partial_unexpected_list") or []
        if sample:
            parts.append("e.g. " + ", ".join(repr(v) for v in sample[:3]))
    return "; ".join(parts)


_NOT_MET = {"expect_column_to_exist": "column not found"}


def _exception_message(info: Any) -> str:
    """GX 1.x keeps exception details flat or keyed by metric id; find the first message."""
    if isinstance(info, dict):
        message = info.get("exception_message")
        if message:
            return str(message).splitlines()[0]
        for value in info.values():
            found = _exception_message(value)
            if found:
                return found
    return ""


def run_suite(frames: dict[str, pd.DataFrame], suite: list[ExpectationSpec]) -> ValidationReport:
    """Run the suite on each named frame with Great Expectations."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_pandas(name="loopline")
    asset = source.add_dataframe_asset(name="split")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    gx_suite = context.suites.add(gx.ExpectationSuite(name="loopline_inferred"))
    for item in suite:
        gx_suite.add_expectation(getattr(gxe, item.type)(**item.kwargs))

    report = ValidationReport(splits=[])
    for name, frame in frames.items():
        log.info("validating %s split (%d rows) against %d expectations", name, len(frame), len(suite))
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(gx_suite, result_format="SUMMARY")
        split = SplitResult(name=name, rows=len(frame))
        for r in result.results:
            config = r.expectation_config
            split.checks.append(
                CheckResult(
                    expectation=config.type,
                    column=str(config.kwargs.get("column", "")),
                    success=bool(r.success),
                    detail="" if r.success else (
                        _describe(r.result) or _exception_message(r.exception_info) or _NOT_MET.get(config.type, "not met")
                    ),
                )
            )
        log.info("%s split: %d/%d expectations met", name, len(split.checks) - len(split.failures), len(split.checks))
        report.splits.append(split)
    return report


def render_html(report: ValidationReport, suite: list[ExpectationSpec]) -> str:
    """A self-contained HTML page (no external assets) with the results of every split."""
    rows = []
    for split in report.splits:
        for c in split.checks:
            status = "pass" if c.success else "FAIL"
            rows.append(
                f"<tr class='{status.lower()}'><td>{html.escape(split.name)}</td><td>{html.escape(c.expectation)}</td>"
                f"<td>{html.escape(c.column)}</td><td>{status}</td><td>{html.escape(c.detail)}</td></tr>"
            )
    summary = " · ".join(
        f"<b>{html.escape(s.name)}</b>: {len(s.checks) - len(s.failures)}/{len(s.checks)} met ({s.rows} rows)"
        for s in report.splits
    )
    verdict = "passed" if report.success else "FAILED"
    suite_json = html.escape(json.dumps([{"type": e.type, "kwargs": e.kwargs} for e in suite], indent=1))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Loopline data validation</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}}tr.fail td{{background:#fde2e2}}
tr.pass td:nth-child(4){{color:#0a7a2f}}</style></head><body>
<h1>Data validation: {verdict}</h1><p>{summary}</p>
<table><tr><th>split</th><th>expectation</th><th>column</th><th>result</th><th>observed</th></tr>
{''.join(rows)}</table>
<details><summary>Inferred expectation suite ({len(suite)} expectations)</summary><pre>{suite_json}</pre></details>
</body></html>"""


def validate_splits(
    frames: dict[str, pd.DataFrame],
    spec: DatasetSpec,
    *,
    report_path: str | Path,
    fail_on_error: bool = True,
) -> ValidationReport:
    """Infer the suite from the first frame (the training split), run it on all, write the HTML.

    Raises ValidationFailed naming the failed expectations when `fail_on_error`.
    """
    reference = next(iter(frames.values()))
    suite = infer_suite(reference, spec)
    report = run_suite(frames, suite)
    Path(report_path).parent.mkdir(parents=True, exist_ok=True)
    Path(report_path).write_text(render_html(report, suite), encoding="utf-8")
    if not report.success and fail_on_error:
        raise ValidationFailed(f"data validation failed: {report.failure_summary()}")
    return report
