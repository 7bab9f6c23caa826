"""Data validation: the inferred suite, and Great Expectations run on good and corrupted splits."""

from __future__ import annotations

import re

import numpy as np
import pytest

from loopline.data import (
    DEMO_IGNORE,
    DEMO_TARGET,
    build_spec,
    conform,
    demo_transactions,
    split,
)
from loopline.errors import ValidationFailed
from loopline.validation import infer_suite, validate_splits

NUMERIC_COLUMNS = ["amount", "hour", "account_age_days", "tx_last_24h", "distance_km"]
CATEGORICAL_COLUMNS = ["merchant_category", "channel"]


@pytest.fixture(scope="module")
def data():
    raw = demo_transactions(2000, seed=7)
    spec = build_spec(raw, target=DEMO_TARGET, ignore_columns=DEMO_IGNORE)
    train, validation, holdout = split(conform(raw, spec), spec, seed=42)
    return spec, train, validation, holdout


def _by_type(suite, expectation_type: str) -> dict[str, dict]:
    return {e.column: e.kwargs for e in suite if e.type == expectation_type}


# ---------------------------------------------------------------------------------------------
# infer_suite


def test_suite_expectations_per_column_kind(data):
    spec, train, _, _ = data
    assert sorted(spec.numeric) == sorted(NUMERIC_COLUMNS)
    assert sorted(spec.categorical) == sorted(CATEGORICAL_COLUMNS)
    suite = infer_suite(train, spec)

    exist = _by_type(suite, "ExpectColumnToExist")
    assert set(exist) == {*NUMERIC_COLUMNS, *CATEGORICAL_COLUMNS, DEMO_TARGET}

    between = _by_type(suite, "ExpectColumnValuesToBeBetween")
    assert set(between) == set(NUMERIC_COLUMNS)
    for col, kw in between.items():
        lo, hi = train[col].min(), train[col].max()
        assert kw["min_value"] <= lo and kw["max_value"] >= hi, col
        # padded by a tenth of the observed range on each side, no more
        assert kw["min_value"] == pytest.approx(lo - 0.1 * (hi - lo)), col
        assert kw["max_value"] == pytest.approx(hi + 0.1 * (hi - lo)), col
        assert 0.9 <= kw["mostly"] < 1.0, col

    types = _by_type(suite, "ExpectColumnValuesToBeOfType")
    assert types == {col: {"column": col, "type_": "float64"} for col in NUMERIC_COLUMNS}

    in_set = _by_type(suite, "ExpectColumnValuesToBeInSet")
    assert set(in_set) == {*CATEGORICAL_COLUMNS, DEMO_TARGET}
    for col in CATEGORICAL_COLUMNS:
        assert in_set[col]["value_set"] == sorted(train[col].dropna().unique()), col
        assert "mostly" in in_set[col]
    assert set(in_set["channel"]["value_set"]) == {"chip", "contactless", "online", "phone"}
    # the target's class set, strict (no `mostly`)
    assert in_set[DEMO_TARGET] == {"column": DEMO_TARGET, "value_set": ["0", "1"]}

    not_null = _by_type(suite, "ExpectColumnValuesToNotBeNull")
    assert set(not_null) == {*NUMERIC_COLUMNS, *CATEGORICAL_COLUMNS, DEMO_TARGET}
    for col in [*NUMERIC_COLUMNS, *CATEGORICAL_COLUMNS]:
        mostly = not_null[col]["mostly"]
        assert 0.0 < mostly < 1.0, col
        # the reference itself must pass its own null check
        assert train[col].notna().mean() >= mostly, col
    assert "mostly" not in not_null[DEMO_TARGET]

    row_count = _by_type(suite, "ExpectTableRowCountToBeBetween")
    assert row_count == {"": {"min_value": 1}}


def test_suite_null_allowance_grows_with_reference_nulls(data):
    spec, train, _, _ = data
    reference = train.copy()
    reference.loc[reference.index[: int(0.2 * len(reference))], "amount"] = np.nan
    not_null = _by_type(infer_suite(reference, spec), "ExpectColumnValuesToNotBeNull")
    # 20 % nulls observed -> 30 % allowed; a column without nulls keeps the 10 % default
    assert not_null["amount"]["mostly"] == pytest.approx(0.7, abs=1e-3)
    assert not_null["hour"]["mostly"] == pytest.approx(0.9)


# ---------------------------------------------------------------------------------------------
# validate_splits with Great Expectations


def test_same_distribution_passes_and_writes_self_contained_html(data, tmp_path):
    spec, train, validation, holdout = data
    frames = {"train": train, "validation": validation, "holdout": holdout}
    report_path = tmp_path / "reports" / "validation.html"
    report = validate_splits(frames, spec, report_path=report_path)

    assert report.success is True
    assert report.failed == 0
    suite_size = len(infer_suite(train, spec))
    assert report.evaluated == 3 * suite_size
    assert [s.name for s in report.splits] == ["train", "validation", "holdout"]
    assert [s.rows for s in report.splits] == [len(train), len(validation), len(holdout)]

    page = report_path.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert not re.search(r"<link[^>]*\bhref\s*=", page, re.I)
    assert not re.search(r"@import|url\(", page, re.I)
    assert "Data validation: passed" in page
    for name, frame in frames.items():
        assert f"<b>{name}</b>: {suite_size}/{suite_size} met ({len(frame)} rows)" in page
        assert f"<td>{name}</td>" in page
    assert "FAIL" not in page


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
    pytest.param(_corrupt_missing_column, "expect_column_to_exist", "tx_last_24h", "", id="missing_column"),
]


@pytest.mark.parametrize(("corrupt", "expectation", "column", "observed"), CORRUPTIONS)
def test_corrupted_split_fails_naming_expectation_and_column(data, tmp_path, corrupt, expectation, column, observed):
    spec, train, validation, holdout = data
    frames = {"train": train, "validation": validation, "holdout": corrupt(holdout)}
    report_path = tmp_path / "validation.html"
    with pytest.raises(ValidationFailed) as excinfo:
        validate_splits(frames, spec, report_path=report_path)
    message = str(excinfo.value)
    assert "\n" not in message
    assert f"holdout: {expectation}({column})" in message
    assert observed in message
    # only the corrupted split fails
    assert "train:" not in message and "validation:" not in message
    # the report is written even when validation fails, and shows the failure
    page = report_path.read_text(encoding="utf-8")
    assert "Data validation: FAILED" in page
    assert re.search(rf"<td>holdout</td><td>{expectation}</td><td>{column}</td><td>FAIL</td>", page)


@pytest.mark.parametrize(("corrupt", "expectation", "column", "observed"), CORRUPTIONS)
def test_report_only_mode_returns_failed_report(data, tmp_path, corrupt, expectation, column, observed):
    spec, train, validation, _ = data
    frames = {"train": train, "validation": corrupt(validation)}
    report = validate_splits(frames, spec, report_path=tmp_path / "validation.html", fail_on_error=False)
    assert report.success is False
    assert report.failed >= 1
    train_result, validation_result = report.splits
    assert train_result.success is True
    assert validation_result.success is False
    assert (expectation, column) in {(c.expectation, c.column) for c in validation_result.failures}
    summary = report.to_dict()
    assert summary["success"] is False and summary["failed"] == report.failed
    assert summary["splits"][1]["success"] is False


def test_small_out_of_range_share_is_tolerated(data, tmp_path):
    """`mostly` lets a handful of outliers through; the range check is not all-or-nothing."""
    spec, train, validation, _ = data
    few = validation.copy()
    few.loc[few.index[:2], "amount"] = 1e9  # < 1 % of the rows
    report = validate_splits(
        {"train": train, "validation": few}, spec, report_path=tmp_path / "v.html", fail_on_error=False
    )
    assert report.success is True


def test_missing_column_failures_explain_what_was_observed(data, tmp_path):
    spec, train, validation, _ = data
    frames = {"train": train, "validation": _corrupt_missing_column(validation)}
    report = validate_splits(frames, spec, report_path=tmp_path / "v.html", fail_on_error=False)
    failures = report.splits[1].failures
    assert failures
    for check in failures:
        assert check.detail not in ("", "None"), (check.expectation, check.detail)
