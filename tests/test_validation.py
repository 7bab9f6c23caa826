"""Data validation: the inferred suite, user suites and severities, the pass/evolve/block
outcome, the skew score, and Great Expectations run on good and corrupted data."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from loopline.core.errors import DataError, ValidationFailed
from loopline.data.checks import build_spec
from loopline.data.demo import DEMO_IGNORE, DEMO_TARGET, demo_transactions
from loopline.data.spec import conform
from loopline.data.tables import SplitSettings, split
from loopline.validation.suite import (
    FINITE_MAX,
    NUMERIC_TYPES,
    ExpectationSpec,
    infer_suite,
    load_suite_file,
    parse_suite,
)
from loopline.validation.validate import ValidationSettings, validate_splits

NUMERIC_COLUMNS = ["amount", "hour", "account_age_days", "tx_last_24h", "distance_km"]
CATEGORICAL_COLUMNS = ["merchant_category", "channel"]


@pytest.fixture(scope="module")
def data():
    raw = demo_transactions(2000, seed=7)
    spec = build_spec(raw, target=DEMO_TARGET, ignore_columns=DEMO_IGNORE)
    train, validation, holdout = split(conform(raw, spec), spec, settings=SplitSettings(seed=42))
    return spec, train, validation, holdout


def _by_type(suite, expectation_type: str) -> dict[str, ExpectationSpec]:
    return {e.column: e for e in suite.expectations if e.type == expectation_type}


# ---------------------------------------------------------------------------------------------
# infer_suite


def test_suite_expectations_per_column_kind(data):
    spec, train, _, _ = data
    assert sorted(spec.numeric) == sorted(NUMERIC_COLUMNS)
    assert sorted(spec.categorical) == sorted(CATEGORICAL_COLUMNS)
    suite = infer_suite(train, spec, max_null_fraction=ValidationSettings().max_null_fraction)
    assert suite.columns == {**spec.features, DEMO_TARGET: "categorical"}

    assert set(_by_type(suite, "expect_column_to_exist")) == {*NUMERIC_COLUMNS, *CATEGORICAL_COLUMNS, DEMO_TARGET}

    between = _by_type(suite, "expect_column_values_to_be_between")
    assert set(between) == set(NUMERIC_COLUMNS)
    for col, e in between.items():
        lo, hi = np.quantile(train[col].dropna(), [0.001, 0.999])
        # reference quantiles, padded by a tenth of the inter-quantile range on each side
        assert e.kwargs["min_value"] == pytest.approx(lo - 0.1 * (hi - lo)), col
        assert e.kwargs["max_value"] == pytest.approx(hi + 0.1 * (hi - lo)), col
        assert e.kwargs["mostly"] == 0.99 and e.severity == "critical", col
        assert col in _by_type(suite, "expect_column_max_to_be_between")
        assert _by_type(suite, "expect_column_max_to_be_between")[col].kwargs["max_value"] == FINITE_MAX
        assert _by_type(suite, "expect_column_min_to_be_between")[col].kwargs["min_value"] == -FINITE_MAX

    types = _by_type(suite, "expect_column_values_to_be_in_type_list")
    assert {c: e.kwargs["type_list"] for c, e in types.items() if c in NUMERIC_COLUMNS} == dict.fromkeys(
        NUMERIC_COLUMNS, NUMERIC_TYPES)
    assert types["channel"].kwargs["type_list"] == ["str"]

    in_set = _by_type(suite, "expect_column_values_to_be_in_set")
    assert set(in_set) == {*CATEGORICAL_COLUMNS, DEMO_TARGET}
    for col in CATEGORICAL_COLUMNS:
        assert in_set[col].kwargs["value_set"] == sorted(train[col].dropna().unique()), col
        assert in_set[col].kwargs["mostly"] == 0.99
    # the target's class set, strict (no `mostly`)
    assert in_set[DEMO_TARGET].kwargs == {"column": DEMO_TARGET, "value_set": ["0", "1"]}

    not_null = _by_type(suite, "expect_column_values_to_not_be_null")
    for col in [*NUMERIC_COLUMNS, *CATEGORICAL_COLUMNS]:
        mostly = not_null[col].kwargs["mostly"]
        assert 0.0 < mostly < 1.0 and train[col].notna().mean() >= mostly, col
    assert "mostly" not in not_null[DEMO_TARGET].kwargs

    rows = [e for e in suite.expectations if e.type == "expect_table_row_count_to_be_between"]
    assert [(e.kwargs, e.severity) for e in rows] == [
        ({"min_value": 1}, "critical"),
        ({"min_value": 140, "max_value": 14000}, "warning"),
    ]
    (unique,) = [e for e in suite.expectations if e.type == "expect_compound_columns_to_be_unique"]
    assert unique.kwargs == {"column_list": list(suite.columns), "mostly": 0.95}
    assert all(e.rule for e in suite.expectations)
    # GX JSON: meta carries severity and rule
    as_json = suite.to_json()
    assert as_json["expectations"][1]["meta"]["severity"] == "warning"


def test_suite_null_allowance_grows_with_reference_nulls(data):
    spec, train, _, _ = data
    reference = train.copy()
    reference.loc[reference.index[: int(0.2 * len(reference))], "amount"] = np.nan
    not_null = _by_type(infer_suite(reference, spec, max_null_fraction=ValidationSettings().max_null_fraction), "expect_column_values_to_not_be_null")
    # 20 % nulls observed -> 30 % allowed; a column without nulls keeps the 10 % default
    assert not_null["amount"].kwargs["mostly"] == pytest.approx(0.7, abs=1e-3)
    assert not_null["hour"].kwargs["mostly"] == pytest.approx(0.9)
    stricter = _by_type(infer_suite(train, spec, max_null_fraction=0.02), "expect_column_values_to_not_be_null")
    assert stricter["hour"].kwargs["mostly"] == pytest.approx(0.98)


# ---------------------------------------------------------------------------------------------
# validate_splits with Great Expectations


def test_same_distribution_passes_with_offline_data_docs(data, tmp_path):
    spec, train, validation, holdout = data
    frames = {"train": train, "validation": validation, "holdout": holdout}
    report_path = tmp_path / "reports" / "validation.html"
    report = validate_splits(frames, spec, settings=ValidationSettings(), report_path=report_path)

    assert report.passed is True and report.outcome == "pass"
    assert report.failed == 0 and report.skew_score == 0.0
    suite_size = len(infer_suite(train, spec, max_null_fraction=ValidationSettings().max_null_fraction).expectations)
    assert report.evaluated == 3 * suite_size
    assert [s.name for s in report.splits] == ["train", "validation", "holdout"]
    assert [s.rows for s in report.splits] == [len(train), len(validation), len(holdout)]

    page = report_path.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html>")
    # nothing is fetched from the network: no remote or relative assets at all
    assert not re.search(r"https?:", page), re.search(r".{60}https?:.{60}", page).group(0)
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert not re.search(r"<link[^>]*\bhref\s*=", page, re.I)
    assert not re.search(r"<img[^>]*\bsrc\s*=\s*[\"'](?!data:)", page, re.I)
    assert not re.search(r"@import|url\(", page, re.I)
    assert "Data validation: passed" in page
    # GX's own Data Docs rendering of each split is on the page
    for name in frames:
        assert f"Great Expectations Data Docs: {name}" in page
    assert page.count("Overview") >= 3 and "values must never be null" in page


def _corrupt_far_out_of_range(frame):
    bad = frame.copy()
    bad.loc[bad.index[: int(0.2 * len(bad))], "amount"] = 1e9
    return bad


def _corrupt_unseen_category(frame):
    bad = frame.copy()
    bad.loc[bad.index[: len(bad) // 2], "channel"] = "crypto_wallet"
    return bad


def _corrupt_numeric_nulls(frame):
    bad = frame.copy()
    bad.loc[bad.index[: int(0.3 * len(bad))], "hour"] = np.nan
    return bad


def _corrupt_categorical_nulls(frame):
    bad = frame.copy()
    bad.loc[bad.index[: int(0.3 * len(bad))], "channel"] = None
    return bad


def _corrupt_unknown_class(frame):
    bad = frame.copy()
    bad.loc[bad.index[:3], DEMO_TARGET] = "2"
    return bad


def _corrupt_missing_column(frame):
    return frame.drop(columns=["tx_last_24h"])


CORRUPTIONS = [
    pytest.param(_corrupt_far_out_of_range, "expect_column_values_to_be_between", "amount", "1000000000.0", id="out_of_range"),
    pytest.param(_corrupt_unseen_category, "expect_column_values_to_be_in_set", "channel", "crypto_wallet", id="unseen_category"),
    pytest.param(_corrupt_numeric_nulls, "expect_column_values_to_not_be_null", "hour", "30.0%", id="numeric_nulls"),
    pytest.param(_corrupt_categorical_nulls, "expect_column_values_to_not_be_null", "channel", "30.0%", id="categorical_nulls"),
    pytest.param(_corrupt_unknown_class, "expect_column_values_to_be_in_set", DEMO_TARGET, "'2'", id="unknown_class"),
    pytest.param(_corrupt_missing_column, "expect_column_to_exist", "tx_last_24h", "column not found", id="missing_column"),
]


@pytest.mark.parametrize(("corrupt", "expectation", "column", "observed"), CORRUPTIONS)
def test_corrupted_split_blocks_naming_expectation_column_and_rule(data, tmp_path, corrupt, expectation, column, observed):
    spec, train, validation, holdout = data
    frames = {"train": train, "validation": validation, "holdout": corrupt(holdout)}
    report_path = tmp_path / "validation.html"
    with pytest.raises(ValidationFailed) as excinfo:
        validate_splits(frames, spec, settings=ValidationSettings(), report_path=report_path)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith("data validation failed (block): ")
    assert f"holdout: {expectation}({column}) [critical]" in message
    assert observed in message and "(rule: " in message
    # only the corrupted split fails
    assert "train:" not in message and "validation:" not in message
    # the report is written even when validation fails, and shows the failure
    page = report_path.read_text(encoding="utf-8")
    assert "Data validation: FAILED (blocked)" in page
    assert re.search(rf"<td>holdout</td><td>{column}</td><td>{expectation}</td><td>critical</td>", page)


@pytest.mark.parametrize(("corrupt", "expectation", "column", "observed"), CORRUPTIONS)
def test_report_only_mode_returns_failed_report(data, tmp_path, corrupt, expectation, column, observed):
    spec, train, validation, _ = data
    frames = {"train": train, "validation": corrupt(validation)}
    report = validate_splits(frames, spec, settings=ValidationSettings(), report_path=tmp_path / "validation.html", fail_on_error=False)
    assert report.passed is False and report.outcome == "block"
    assert report.failed >= 1 and report.failed_critical >= 1
    train_result, validation_result = report.splits
    assert train_result.success is True
    assert validation_result.success is False
    assert (expectation, column) in {(c.expectation, c.column) for c in validation_result.failures}
    summary = report.to_dict()
    assert summary["passed"] is False and summary["failed"] == report.failed
    assert summary["splits"][1]["success"] is False
    assert {"split": "validation", "expectation": expectation, "column": column} .items() <= next(
        f for f in summary["failures"] if f["expectation"] == expectation and f["column"] == column).items()


def test_small_out_of_range_share_is_tolerated(data, tmp_path):
    """`mostly` lets a handful of outliers through; the range check is not all-or-nothing."""
    spec, train, validation, _ = data
    few = validation.copy()
    few.loc[few.index[:2], "amount"] = 1e9  # < 1 % of the rows
    report = validate_splits({"train": train, "validation": few}, spec, settings=ValidationSettings(), report_path=tmp_path / "v.html", fail_on_error=False)
    assert report.passed is True and report.outcome == "pass"


def test_missing_column_failures_explain_what_was_observed(data, tmp_path):
    spec, train, validation, _ = data
    frames = {"train": train, "validation": _corrupt_missing_column(validation)}
    report = validate_splits(frames, spec, settings=ValidationSettings(), report_path=tmp_path / "v.html", fail_on_error=False)
    failures = report.splits[1].failures
    assert failures
    for check in failures:
        assert check.detail not in ("", "None"), (check.expectation, check.detail)
    assert [c.change for c in report.splits[1].schema_changes] == ["missing_column"]


# ---------------------------------------------------------------------------------------------
# Schema outcomes: pass, evolve, block


def _outcome(reference, frame, tmp_path, *, settings=ValidationSettings(), **kwargs):  # noqa: B008 - frozen
    return validate_splits({"data": frame}, settings=settings, reference=reference, report_path=tmp_path / "v.html",
                           fail_on_error=False, **kwargs)


@pytest.fixture(scope="module")
def raw():
    return demo_transactions(1500, seed=11).drop(columns=["transaction_id"]), demo_transactions(1500, seed=12).drop(
        columns=["transaction_id"])


def test_outcome_pass_on_data_like_the_reference(raw, tmp_path):
    reference, current = raw
    report = _outcome(reference, current, tmp_path)
    assert report.outcome == "pass" and report.passed and report.failures() == []
    assert report.contract() == {"passed": True, "skew_score": 0.0, "outcome": "pass", "failures": []}


def test_outcome_evolve_on_a_new_nullable_column(raw, tmp_path):
    reference, current = raw
    grown = current.assign(loyalty_tier=np.where(np.arange(len(current)) % 3 == 0, None, "gold"))
    report = _outcome(reference, grown, tmp_path)
    assert report.outcome == "evolve" and report.passed is True
    assert any("loyalty_tier" in e and "nullable" in e for e in report.evolutions())
    # the column set expectation is a warning: reported, not blocking
    assert [(f["expectation"], f["severity"]) for f in report.failures()] == [
        ("expect_table_columns_to_match_set", "warning")]
    assert "loyalty_tier" in report.failures()[0]["detail"]
    assert 0.0 < report.skew_score <= 0.1


def test_outcome_evolve_on_a_new_category_within_tolerance(raw, tmp_path):
    reference, current = raw
    grown = current.copy()
    grown.loc[grown.index[:5], "channel"] = "wallet"  # 0.3 % of the rows
    report = _outcome(reference, grown, tmp_path)
    assert report.outcome == "evolve" and report.passed is True and report.failures() == []
    (evolution,) = report.evolutions()
    assert "channel" in evolution and "wallet" in evolution and "5 rows" in evolution


@pytest.mark.parametrize(
    ("change", "expectation", "column", "words"),
    [
        pytest.param(lambda d: d.drop(columns=["hour"]), "expect_column_to_exist", "hour", "column not found", id="missing"),
        pytest.param(lambda d: d.assign(amount=d["amount"].map(lambda v: f"{v} EUR")), "expect_column_values_to_be_in_type_list",
                     "amount", "numeric in the reference but arrives as text, e.g. '", id="retyped_numeric_as_text"),
        pytest.param(lambda d: d.assign(channel=np.arange(len(d))), "expect_column_values_to_be_in_type_list",
                     "channel", "arrives as int64 numbers", id="retyped_text_as_numbers"),
        pytest.param(lambda d: d.assign(extra=1.0), "expect_table_columns_to_match_set", "extra",
                     "without missing values", id="extra_column"),
    ],
)
def test_outcome_block_on_incompatible_schema_changes(raw, tmp_path, change, expectation, column, words):
    reference, current = raw
    report = _outcome(reference, change(current), tmp_path)
    assert report.outcome == "block" and report.passed is False
    failure = next(f for f in report.failures() if f["expectation"] == expectation)
    assert failure["column"] == column and failure["severity"] == "critical" and words in failure["detail"]
    assert f"data: {expectation}({column}) [critical]" in report.failure_summary()


# ---------------------------------------------------------------------------------------------
# Severity, user suites, skew score


def _write_suite(tmp_path, expectations):
    path = tmp_path / "suite.json"
    path.write_text(json.dumps({"name": "team_rules", "expectations": expectations}))
    return path


def test_a_failed_warning_is_reported_and_does_not_block(raw, tmp_path):
    reference, current = raw
    suite = load_suite_file(_write_suite(tmp_path, [
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "amount", "min_value": 0, "max_value": 1},
         "meta": {"severity": "warning", "rule": "amounts are small"}},
    ]))
    report = _outcome(reference, current, tmp_path, suite_expectations=suite)
    assert report.outcome == "pass" and report.passed is True
    assert report.failed_warning == 1 and report.failed_critical == 0
    (failure,) = report.failures()
    assert failure == {"expectation": "expect_column_mean_to_be_between", "column": "amount", "severity": "warning",
                       "detail": failure["detail"]}
    assert failure["detail"].startswith("observed ")


def test_a_failed_critical_expectation_from_the_suite_blocks(raw, tmp_path):
    reference, current = raw
    suite = parse_suite({"expectations": [
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "amount", "min_value": 0, "max_value": 1}},
    ]})
    report = _outcome(reference, current, tmp_path, suite_expectations=suite)
    assert report.outcome == "block" and report.failed_critical == 1
    assert "data: expect_column_mean_to_be_between(amount) [critical]" in report.failure_summary()


def test_suite_file_overrides_the_inferred_expectation(raw, tmp_path):
    """An expectation of the same type and column replaces the inferred one."""
    reference, current = raw
    nulls = current.copy()
    nulls.loc[nulls.index[: int(0.3 * len(nulls))], "hour"] = np.nan
    assert _outcome(reference, nulls, tmp_path).outcome == "block"
    suite = load_suite_file(_write_suite(tmp_path, [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "hour", "mostly": 0.5}},
    ]))
    report = _outcome(reference, nulls, tmp_path, suite_expectations=suite)
    assert report.outcome == "pass"
    not_null = [c for c in report.splits[0].checks if c.expectation == "expect_column_values_to_not_be_null" and c.column == "hour"]
    assert len(not_null) == 1 and not_null[0].rule == "from the suite file"


def test_skew_score_above_the_threshold_blocks_even_on_warnings(raw, tmp_path):
    reference, current = raw
    warnings = [
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": c, "min_value": -2, "max_value": -1},
         "meta": {"severity": "warning"}}
        for c in ["amount", "hour", "account_age_days", "tx_last_24h", "distance_km"]
    ]
    suite = parse_suite({"expectations": warnings})
    report = _outcome(reference, current, tmp_path, suite_expectations=suite,
                      settings=ValidationSettings(skew_threshold=0.05))
    assert report.failed == 5 and report.failed_critical == 0
    assert report.skew_score == pytest.approx(5 / report.evaluated)
    assert report.skew_score > 0.05 and report.outcome == "block"
    assert report.failure_summary().startswith(f"skew score {report.skew_score:.3f} above the threshold 0.05")
    assert _outcome(reference, current, tmp_path, suite_expectations=suite,
                    settings=ValidationSettings(skew_threshold=0.2)).outcome == "pass"


@pytest.mark.parametrize(
    ("suite", "message"),
    [
        ({"expectations": [{"type": "expect_the_moon", "kwargs": {}}]}, "expectation 1 has an unknown type 'expect_the_moon'"),
        ({"expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "a"}, "meta": {"severity": "info"}}]},
         "severity 'info'; use critical or warning"),
        ({"expectations": [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "a", "mostly": 7}}]},
         "expectation 1 (expect_column_values_to_be_between) has invalid arguments"),
        ({"rules": []}, "expected an object with an 'expectations' list"),
    ],
)
def test_bad_suites_are_named(suite, message):
    with pytest.raises(DataError, match=re.escape(message)):
        parse_suite(suite, where="suite file s.json")


def test_suite_file_that_is_not_json_is_named(tmp_path):
    path = tmp_path / "suite.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="suite file .*suite.json is not valid JSON"):
        load_suite_file(path)
    with pytest.raises(DataError, match="suite file not found"):
        load_suite_file(tmp_path / "nope.json")


def test_columns_named_alike_but_for_case_are_each_checked_against_their_own_expectations(raw, tmp_path):
    """Great Expectations finds a column without regard to case: `Channel` and `channel` are
    handed to it under aliases, and reported under their own names."""
    reference, current = raw
    cased = {"channel": "Channel", "merchant_category": "channel"}
    report = _outcome(reference.rename(columns=cased), current.rename(columns=cased), tmp_path)
    assert report.outcome == "pass" and report.failures() == []
    page = (tmp_path / "v.html").read_text()  # GX's Data Docs too name the columns as the data does
    assert "Channel__" not in page and "channel__" not in page and "Channel" in page
    swapped = current.rename(columns={"merchant_category": "Channel"})  # the two columns' values trade places
    report = _outcome(reference.rename(columns=cased), swapped, tmp_path)
    in_set = {f["column"] for f in report.failures() if f["expectation"] == "expect_column_values_to_be_in_set"}
    assert in_set == {"Channel", "channel"}


def test_booleans_with_missing_values_are_checked_as_booleans(raw, tmp_path):
    reference, current = raw
    flags = [True, False, None]
    reference = reference.assign(flag=[flags[i % 3] for i in range(len(reference))])
    current = current.assign(flag=[flags[(i + 1) % 3] for i in range(len(current))])
    report = _outcome(reference, current, tmp_path)
    assert report.outcome == "pass" and report.failures() == [], report.failures()
