"""The `loopline validate` and `loopline drift` commands: a data file checked offline against a
reference, the verdict in the exit code (0 passes, 1 blocked or drifted, 2 usage or input errors)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loopline.core.errors import LooplineError
from loopline.core.logs import quiet_libraries
from loopline.drift.settings import CATEGORICAL_TESTS, NUMERIC_TESTS, DriftSettings
from loopline.validation.suite import DEFAULT_MAX_NULL_FRACTION, DEFAULT_SKEW_THRESHOLD


def out_dir(value: str | None, option: str) -> Path | None:
    """An output folder the user named: it must be a folder, or not exist yet (it is created)."""
    if not value:
        return None
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise LooplineError(f"{option} {path} is a file, not a folder: name a folder for the output")
    return path


def cmd_validate(args: argparse.Namespace) -> int:
    """Exit 0 when the data passes (pass or evolve), 1 when blocked, 2 on input errors."""
    from loopline.data.tables import read_table
    from loopline.validation import suite as validation_suite
    from loopline.validation import validate as validation

    quiet_libraries()
    report_dir = out_dir(args.report, "--report")
    user_suite = validation_suite.load_suite_file(args.suite) if args.suite else None
    reference = read_table(args.reference)
    data = read_table(args.data)
    report_path = report_dir / "validation.html" if report_dir else None
    settings = validation.ValidationSettings(max_null_fraction=args.max_null_fraction,
                                             skew_threshold=args.skew_threshold)
    report = validation.validate_splits(
        {Path(args.data).name: data}, settings=settings, reference=reference, suite_expectations=user_suite,
        report_path=report_path, fail_on_error=False,
    )
    if args.json:
        print(json.dumps(report.contract()))
    else:
        print(f"validation: {report.outcome} ({'passed' if report.passed else 'FAILED'}), skew score "
              f"{report.skew_score:.3f}, {report.evaluated} expectations, {report.failed_critical} critical and "
              f"{report.failed_warning} warning failures")
        for item in report.evolutions():
            print(f"  evolve: {item}")
        for f in report.failures():
            print(f"  {f['severity']:<8} {f['column'] or '(table)'}: {f['expectation']}: {f['detail']}")
        if report_path:
            print(f"report: {report_path}")
    if not report.passed:
        print(f"loopline: data validation failed ({report.outcome}): {report.failure_summary()}", file=sys.stderr)
    return 0 if report.passed else 1


def _thresholds(items: list[str] | None) -> dict[str, float]:
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise LooplineError(f"--threshold '{item}' is not TEST=VALUE (for example psi=0.25)")
    return out


def cmd_drift(args: argparse.Namespace) -> int:
    """Exit 0 when not drifted, 1 when drifted, 2 on input errors."""
    from loopline import drift
    from loopline.data.tables import read_table

    quiet_libraries()
    settings = drift.DriftSettings(
        drift_share=args.drift_share, numeric_test=args.numeric_test, categorical_test=args.categorical_test,
        thresholds=_thresholds(args.threshold), critical_features=list(args.critical or []),
        report_sample_rows=args.report_sample,
    )
    report_dir = out_dir(args.report, "--report")
    reference = read_table(args.reference)
    current = drift.last_rows(read_table(args.current), args.last_rows)
    ignore = set(args.ignore or [])
    unknown = sorted(ignore - set(map(str, reference.columns)))
    if unknown:
        raise LooplineError(f"--ignore names columns not in the reference: {', '.join(unknown)}")
    reference = reference[[c for c in reference.columns if c not in ignore]]
    current = current[[c for c in current.columns if c not in ignore]]
    report_path = report_dir / "drift.html" if report_dir else None
    result = drift.detect(reference, current, report_path=report_path, settings=settings, model_dir=args.model)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"drift: {'DRIFTED' if result.drifted else 'no drift'} ({result.reason})")
        for name, f in sorted(result.features.items(), key=lambda kv: (not kv[1]["drifted"], -kv[1]["psi"])):
            print(f"  {'drifted' if f['drifted'] else 'ok':<8} {name}: {f['test']} {f['score']:.4g} "
                  f"(threshold {f['threshold']:g}), psi {f['psi']:.4f}")
        if report_path:
            print(f"report: {report_path}")
    return 1 if result.drifted else 0


def add_check_commands(sub) -> None:
    """The `validate` and `drift` subcommands of the `loopline` parser."""
    val = sub.add_parser("validate", help="validate a dataset against a suite inferred from a reference",
                         description="Validate DATA with a Great Expectations suite inferred from REF, merged with "
                         "--suite. Exit code 0 when valid (pass or evolve), 1 when blocked, 2 on usage or input errors.")
    val.add_argument("--reference", required=True, help="CSV or Parquet file the suite is inferred from")
    val.add_argument("--data", required=True, help="CSV or Parquet file to validate")
    val.add_argument("--suite", help="Great Expectations suite JSON: expectations added to or overriding the inferred ones")
    val.add_argument("--report", help="directory for the HTML report (validation.html)")
    val.add_argument("--json", action="store_true", help="print one JSON object: passed, skew_score, outcome, failures")
    val.add_argument("--max-null-fraction", type=float, default=DEFAULT_MAX_NULL_FRACTION,
                     help="null fraction allowed in a column without nulls in the reference (default: %(default)s)")
    val.add_argument("--skew-threshold", type=float, default=DEFAULT_SKEW_THRESHOLD,
                     help="largest share of failed expectations that does not block (default: %(default)s)")
    val.set_defaults(func=cmd_validate)

    dri = sub.add_parser("drift", help="measure drift between a reference and a current dataset",
                         description="Per-feature drift (PSI, KS, Wasserstein, chi-squared, Jensen-Shannon, null "
                         "rates) on every row. Exit code 0 when not drifted, 1 when drifted, 2 on usage or input errors.")
    dri.add_argument("--reference", required=True, help="CSV or Parquet file of the reference window")
    dri.add_argument("--current", required=True, help="CSV or Parquet file of the current window")
    dri.add_argument("--report", help="directory for the Evidently HTML report (drift.html)")
    dri.add_argument("--json", action="store_true", help="print one JSON object: drifted, share_drifted, features")
    dri.add_argument("--drift-share", type=float, default=DriftSettings.drift_share,
                     help="share of drifted features at which the data counts as drifted (default: %(default)s)")
    dri.add_argument("--numeric-test", default=DriftSettings.numeric_test, choices=NUMERIC_TESTS,
                     help="test that judges numeric features (default: %(default)s)")
    dri.add_argument("--categorical-test", default=DriftSettings.categorical_test, choices=CATEGORICAL_TESTS,
                     help="test that judges categorical features (default: %(default)s)")
    dri.add_argument("--threshold", action="append", metavar="TEST=VALUE",
                     help="override a test's threshold, e.g. psi=0.25 (repeatable)")
    dri.add_argument("--critical", nargs="*", help="features whose drift alone means the data drifted")
    dri.add_argument("--ignore", nargs="*", help="columns left out (ids, timestamps, the label)")
    dri.add_argument("--last-rows", type=int, default=DriftSettings.current_last_rows, help="use only the last N rows of --current (default: all)")
    dri.add_argument("--model", help="a Loopline SavedModel directory: also measure drift of its predictions")
    dri.add_argument("--report-sample", type=int, default=DriftSettings.report_sample_rows,
                     help="rows per window in the visual report, seeded sample; 0 for all (default: %(default)s)")
    dri.set_defaults(func=cmd_drift)
