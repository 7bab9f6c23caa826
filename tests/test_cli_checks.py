"""`loopline validate` and `loopline drift`: JSON contracts, exit codes and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopline.cli.app import main
from loopline.data.demo import demo_transactions


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli")
    reference = demo_transactions(1500, seed=21).drop(columns=["transaction_id"])
    same = demo_transactions(1500, seed=22).drop(columns=["transaction_id"])
    shifted = demo_transactions(1500, shift=1.0, seed=23).drop(columns=["transaction_id"])
    paths = {"reference": folder / "reference.csv", "same": folder / "same.parquet", "shifted": folder / "shifted.csv"}
    reference.to_csv(paths["reference"], index=False)
    same.to_parquet(paths["same"])
    shifted.to_csv(paths["shifted"], index=False)
    return paths


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------------------
# JSON contracts and exit codes


def test_validate_json_contract_on_valid_data(files, capsys, tmp_path):
    code, out, _ = run(capsys, "validate", "--reference", str(files["reference"]), "--data", str(files["same"]),
                       "--json", "--report", str(tmp_path / "report"))
    assert code == 0
    result = json.loads(out)  # stdout holds exactly one JSON object
    assert result == {"passed": True, "skew_score": 0.0, "outcome": "pass", "failures": []}
    assert (tmp_path / "report" / "validation.html").stat().st_size > 10_000


def test_validate_json_contract_on_blocked_data(files, capsys, tmp_path):
    bad = pd.read_csv(files["reference"]).assign(amount=lambda d: d["amount"] * 1e6)
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    code, out, err = run(capsys, "validate", "--reference", str(files["reference"]), "--data", str(path), "--json")
    assert code == 1
    result = json.loads(out)
    assert set(result) == {"passed", "skew_score", "outcome", "failures"}
    assert result["passed"] is False and result["outcome"] == "block"
    assert isinstance(result["skew_score"], float) and 0 < result["skew_score"] < 1
    assert result["failures"]
    for failure in result["failures"]:
        assert set(failure) == {"expectation", "column", "severity", "detail"}
        assert failure["severity"] in ("critical", "warning")
    assert {"expectation": "expect_column_values_to_be_between", "column": "amount", "severity": "critical"}.items() \
        <= result["failures"][0].items()
    assert "expect_column_values_to_be_between(amount)" in err


def test_drift_json_contract_flags_exactly_the_shifted_columns(files, capsys, tmp_path):
    code, out, _ = run(capsys, "drift", "--reference", str(files["reference"]), "--current", str(files["shifted"]),
                       "--ignore", "is_fraud", "--json")
    assert code == 1
    result = json.loads(out)
    assert result["drifted"] is True and isinstance(result["share_drifted"], float)
    features = result["features"]
    assert set(features) == {"amount", "hour", "account_age_days", "tx_last_24h", "distance_km",
                             "merchant_category", "channel"}
    for name, f in features.items():
        assert isinstance(f["drifted"], bool) and isinstance(f["test"], str)
        assert isinstance(f["score"], float) and isinstance(f["psi"], float), name
    assert features["amount"]["test"] == "psi" and features["channel"]["test"] == "jensenshannon"
    assert {"ks_statistic", "ks_p_value", "wasserstein", "null_rate_change"} <= set(features["amount"])
    assert {"chi2_p_value", "jensenshannon", "null_rate_change"} <= set(features["channel"])
    assert result["share_drifted"] == sum(f["drifted"] for f in features.values()) / len(features)

    code, out, _ = run(capsys, "drift", "--reference", str(files["reference"]), "--current", str(files["same"]),
                       "--ignore", "is_fraud", "--json", "--report", str(tmp_path / "r"))
    assert code == 0
    result = json.loads(out)
    assert result["drifted"] is False and not any(f["drifted"] for f in result["features"].values())
    page = (tmp_path / "r" / "drift.html").read_text()
    assert "Loopline drift verdict: no drift" in page and "Evidently" in page


def test_drift_critical_feature_last_rows_and_threshold_options(files, capsys, tmp_path):
    # only the hour column moves: one drifted feature of seven is below the share, but it is critical
    current = pd.read_csv(files["reference"]).sample(frac=1.0, random_state=0)
    current["hour"] = current["hour"] // 2
    path = tmp_path / "hour.csv"
    current.to_csv(path, index=False)
    args = ["drift", "--reference", str(files["reference"]), "--current", str(path), "--ignore", "is_fraud", "--json"]
    code, out, _ = run(capsys, *args)
    assert code == 0 and [k for k, f in json.loads(out)["features"].items() if f["drifted"]] == ["hour"]
    code, out, _ = run(capsys, *args, "--critical", "hour")
    assert code == 1 and json.loads(out)["reason"] == "critical feature drifted: hour"
    code, out, _ = run(capsys, *args, "--last-rows", "300", "--numeric-test", "ks", "--threshold", "ks=0.01")
    result = json.loads(out)
    assert result["current_rows"] == 300 and result["features"]["hour"]["test"] == "ks"
    assert result["features"]["hour"]["threshold"] == 0.01


def test_console_entry_point_prints_only_json_on_stdout(files, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "loopline.cli", "drift", "--reference", str(files["reference"]), "--current",
         str(files["shifted"]), "--ignore", "is_fraud", "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert json.loads(result.stdout)["drifted"] is True
    assert "computing drift on 7 features" in result.stderr  # the log says what the step does


def test_usage_errors_exit_2(files, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["validate", "--data", str(files["same"])])
    assert excinfo.value.code == 2
    code, _, err = run(capsys, "drift", "--reference", str(files["reference"]), "--current", str(files["same"]),
                       "--threshold", "psi")
    assert code == 2 and "--threshold 'psi' is not TEST=VALUE" in err
    code, _, err = run(capsys, "drift", "--reference", str(files["reference"]), "--current", str(files["same"]),
                       "--drift-share", "0")
    assert code == 2 and "drift_share must be in (0, 1]" in err


# ---------------------------------------------------------------------------------------------
# Bad inputs: a clear message naming the column and the rule; nothing downstream runs


def _bad(name: str, reference: pd.DataFrame, folder: Path) -> Path:
    """Write one bad input of the issue's list next to the reference."""
    path = folder / f"{name}.csv"
    d = reference.copy()
    if name == "missing_column":
        d = d.drop(columns=["distance_km"])
    elif name == "extra_column":
        d["promo_code"] = "SPRING"
    elif name == "numeric_as_strings":
        d["account_age_days"] = d["account_age_days"].map(lambda v: f"{v:.0f} days")
    elif name == "all_null_column":
        d["tx_last_24h"] = np.nan
    elif name == "nulls_30_percent":
        d.loc[d.index[: int(0.3 * len(d))], "amount"] = np.nan
    elif name == "out_of_range":
        d.loc[d.index[: int(0.05 * len(d))], "hour"] = 99.0
    elif name == "unseen_categories":
        d.loc[d.index[: int(0.1 * len(d))], "merchant_category"] = "casino"
    elif name == "duplicate_flood":
        d = pd.concat([d.head(200)] * 6, ignore_index=True)
    elif name == "nan_and_inf":
        d.loc[d.index[:5], "distance_km"] = np.inf
        d.loc[d.index[5:10], "distance_km"] = np.nan
    else:
        raise ValueError(name)
    d.to_csv(path, index=False)
    return path


VALIDATION_CASES = [
    ("missing_column", "distance_km", "expect_column_to_exist", "column not found"),
    ("extra_column", "promo_code", "expect_table_columns_to_match_set", "without missing values"),
    ("numeric_as_strings", "account_age_days", "expect_column_values_to_be_in_type_list", "arrives as text, e.g. '"),
    ("all_null_column", "tx_last_24h", "expect_column_values_to_not_be_null", "all values are null"),
    ("nulls_30_percent", "amount", "expect_column_values_to_not_be_null", "30.0% null"),
    ("out_of_range", "hour", "expect_column_values_to_be_between", "99.0"),
    ("unseen_categories", "merchant_category", "expect_column_values_to_be_in_set", "'casino'"),
    ("duplicate_flood", "", "expect_compound_columns_to_be_unique", "are duplicates"),
    ("nan_and_inf", "distance_km", "expect_column_max_to_be_between", "observed inf"),
]


@pytest.mark.parametrize(("case", "column", "expectation", "words"), VALIDATION_CASES, ids=[c[0] for c in VALIDATION_CASES])
def test_bad_data_blocks_validation_naming_column_and_rule(files, capsys, tmp_path, case, column, expectation, words):
    path = _bad(case, pd.read_csv(files["reference"]), tmp_path)
    code, out, err = run(capsys, "validate", "--reference", str(files["reference"]), "--data", str(path))
    assert code == 1, out + err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"loopline: data validation failed (block): {path.name}: {expectation}(")
    if column:
        assert f"({column}" in line or f"'{column}'" in line, line
    assert words in line and "(rule: " in line, line


def test_nan_alone_within_the_null_allowance_passes(files, capsys, tmp_path):
    d = pd.read_csv(files["reference"])
    d.loc[d.index[:20], "distance_km"] = np.nan
    path = tmp_path / "few_nan.csv"
    d.to_csv(path, index=False)
    code, out, _ = run(capsys, "validate", "--reference", str(files["reference"]), "--data", str(path), "--json")
    assert code == 0 and json.loads(out)["outcome"] == "pass"


def _unreadable(name: str, reference: pd.DataFrame, folder: Path) -> Path:
    path = folder / f"{name}.csv"
    if name == "empty_file":
        path.write_bytes(b"")
    elif name == "header_only":
        path.write_text(",".join(reference.columns) + "\n")
    elif name == "non_utf8":
        text = reference.head(20).to_csv(index=False).replace("grocery", "caf\xe9")
        path.write_bytes(text.encode("latin-1"))
    elif name == "semicolons":
        reference.head(20).to_csv(path, index=False, sep=";")
    return path


UNREADABLE_CASES = [
    ("empty_file", "data file is empty"),
    ("header_only", "data file has no rows"),
    ("non_utf8", "not UTF-8 text (byte 0xe9"),
    ("semicolons", "is one column delimited by ';'"),
]


@pytest.mark.parametrize(("case", "words"), UNREADABLE_CASES, ids=[c[0] for c in UNREADABLE_CASES])
@pytest.mark.parametrize("command", ["validate", "drift"])
def test_unreadable_files_exit_2_with_one_line(files, capsys, tmp_path, case, words, command):
    path = _unreadable(case, pd.read_csv(files["reference"]), tmp_path)
    flag = "--data" if command == "validate" else "--current"
    code, out, err = run(capsys, command, "--reference", str(files["reference"]), flag, str(path), "--json")
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("loopline: error: ") and words in line and path.name in line


DRIFT_CASES = [
    ("missing_column", "different columns (missing from the current data: distance_km)"),
    ("extra_column", "different columns (not in the reference: promo_code)"),
    ("numeric_as_strings", "column 'account_age_days' is numeric in the reference but holds text in the current data"),
    ("all_null_column", "column 'tx_last_24h' has no values in the current data (all null)"),
    ("nan_and_inf", "column 'distance_km' holds 5 infinite values in the current data: numeric values must be finite"),
]


@pytest.mark.parametrize(("case", "words"), DRIFT_CASES, ids=[c[0] for c in DRIFT_CASES])
def test_bad_data_stops_drift_with_exit_2(files, capsys, tmp_path, case, words):
    path = _bad(case, pd.read_csv(files["reference"]), tmp_path)
    report = tmp_path / "report"
    code, out, err = run(capsys, "drift", "--reference", str(files["reference"]), "--current", str(path),
                         "--json", "--report", str(report))
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line == f"loopline: error: {words}" or (line.startswith("loopline: error: ") and words in line), line
    assert not report.exists()  # nothing was computed or written
