"""The data benchmarks: drift and validation on 1,000,000 rows against plain numpy/scipy, pandas,
Evidently's and Great Expectations' own defaults."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline import drift
from loopline.validation import report as validation_report
from loopline.validation import suite as validation_suite
from loopline.validation import validate as validation
from loopline.validation.suite import ExpectationSpec
from tools.bench.measure import timed

ROWS_1M = 1_000_000

N_NUMERIC = 20

CATEGORIES = [f"cat_{i:02d}" for i in range(12)]

SHIFTED = ["num_00", "num_05", "num_10", "num_15", "cat_1"]

DRIFT_RATIO_TARGET = 2.0  # Loopline within 2x of plain numpy/scipy PSI + KS

EVIDENTLY_SPEEDUP_TARGET = 10.0  # and at least 10x faster than Evidently's default preset

VALIDATE_RATIO_TARGET = 1.5  # validation within 1.5x of GX's own validate

REPEATS = 2  # timed runs of Loopline and of each fast baseline; the best counts

def wide_frame(n_rows: int, *, seed: int, shifted: bool = False) -> pd.DataFrame:
    """Seeded synthetic data: 20 numeric columns of four families (normal, lognormal,
    exponential, Poisson counts) and two categorical ones; `shifted` moves the SHIFTED columns
    (numeric ones by 0.75 standard deviations, cat_1's category weights reversed)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(N_NUMERIC):
        name = f"num_{i:02d}"
        family = i % 4
        if family == 0:
            values, sd = rng.normal(10.0 * i, 1.0 + i % 3, n_rows), 1.0 + i % 3
        elif family == 1:
            values, sd = rng.lognormal(1.0, 0.5, n_rows), float(np.sqrt((np.e**0.25 - 1) * np.e ** (2 + 0.25)))
        elif family == 2:
            values, sd = rng.exponential(5.0, n_rows), 5.0
        else:
            values, sd = rng.poisson(4.0, n_rows).astype(np.float64), 2.0
        if shifted and name in SHIFTED:
            values = values + 0.75 * sd
        columns[name] = values
    weights = np.linspace(3.0, 1.0, len(CATEGORIES))
    labels = np.array(CATEGORIES, dtype=object)
    for name in ("cat_0", "cat_1"):
        p = weights[::-1] if (shifted and name in SHIFTED) else weights
        columns[name] = labels[rng.choice(len(labels), n_rows, p=p / p.sum())]
    return pd.DataFrame(columns)

def _kinds(frame: pd.DataFrame) -> dict[str, str]:
    return {c: ("categorical" if c.startswith("cat") else "numeric") for c in frame.columns}

def plain_psi_ks(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The baseline: PSI (10 bins on the reference's deciles, eps 1e-6) and scipy's KS per numeric
    column, PSI per categorical column, written the plain way."""
    from scipy import stats

    out = {}
    for name in reference.columns:
        if name.startswith("cat"):
            ref = reference[name].value_counts()
            cur = current[name].value_counts()
            index = ref.index.union(cur.index)
            p = np.maximum(ref.reindex(index, fill_value=0).to_numpy() / len(reference), 1e-6)
            q = np.maximum(cur.reindex(index, fill_value=0).to_numpy() / len(current), 1e-6)
            out[name] = {"psi": float(np.sum((q - p) * np.log(q / p)))}
            continue
        a, b = reference[name].to_numpy(), current[name].to_numpy()
        edges = np.unique(np.quantile(a, np.linspace(0, 1, 11))[1:-1])
        edges = np.concatenate([[-np.inf], edges, [np.inf]])
        p = np.maximum(np.histogram(a, edges)[0] / len(a), 1e-6)
        q = np.maximum(np.histogram(b, edges)[0] / len(b), 1e-6)
        ks = stats.ks_2samp(a, b)
        out[name] = {"psi": float(np.sum((q - p) * np.log(q / p))), "ks_statistic": float(ks.statistic),
                     "ks_p_value": float(ks.pvalue)}
    return out

def evidently_default(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, bool]:
    """Evidently's DataDriftPreset with default settings on all rows: each column's verdict."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    kinds = _kinds(reference)
    definition = DataDefinition(numerical_columns=[c for c, k in kinds.items() if k == "numeric"],
                                categorical_columns=[c for c, k in kinds.items() if k == "categorical"])
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    verdicts = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if str(config.get("type", "")).endswith("ValueDrift"):
            method = str(config.get("method") or "")
            threshold, score = float(config.get("threshold") or 0.0), float(metric["value"])
            is_p_value = "p_value" in method or "test" in method.lower()
            verdicts[config["column"]] = score < threshold if is_p_value else score >= threshold
    return verdicts

def bench_drift_1m(home: Path) -> list[dict[str, Any]]:
    folder = home / "drift_1m"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    reference = wide_frame(ROWS_1M, seed=1)
    current = wide_frame(ROWS_1M, seed=2, shifted=True)
    generated = round(time.perf_counter() - started, 2)
    print(f"drift_1m: generated 2 x {ROWS_1M:,} rows in {generated}s; Loopline's statistics ...", flush=True)
    kinds = _kinds(reference)
    loopline_runs, plain_runs = [], []
    for _ in range(REPEATS):  # alternating, best of each: the machine is shared
        result, seconds, loopline_mb = timed(lambda: drift.compute(reference, current, kinds, drift.DriftSettings()))
        loopline_runs.append(seconds)
        print(f"drift_1m: Loopline {seconds}s; plain numpy/scipy PSI + KS ...", flush=True)
        plain, seconds, plain_mb = timed(lambda: plain_psi_ks(reference, current))
        plain_runs.append(seconds)
        print(f"drift_1m: numpy/scipy {seconds}s", flush=True)
    loopline_s, plain_s = min(loopline_runs), min(plain_runs)
    same_statistics = same_psi_ks(result.features, plain)
    print("drift_1m: Evidently DataDriftPreset (default settings, all rows; minutes) ...", flush=True)
    evidently, evidently_s, evidently_mb = timed(lambda: evidently_default(reference, current))
    loopline_drifted = sorted(result.drifted_features)
    evidently_drifted = sorted(c for c, d in evidently.items() if d)

    print("drift_1m: `loopline drift --json` on the same data as Parquet ...", flush=True)
    ref_path, cur_path = folder / "reference.parquet", folder / "current.parquet"
    reference.to_parquet(ref_path)
    current.to_parquet(cur_path)
    cli_started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "loopline.cli", "drift", "--reference", str(ref_path),
                           "--current", str(cur_path), "--json"], capture_output=True, text=True, timeout=900)
    cli_s = round(time.perf_counter() - cli_started, 2)
    cli = json.loads(proc.stdout) if proc.stdout.strip() else {"features": {}}
    cli_flagged = sorted(c for c, f in cli["features"].items() if f["drifted"])

    ratio = round(loopline_s / plain_s, 3)
    speedup = round(evidently_s / loopline_s, 1)
    return [{
        "name": "drift_1m",
        "rows": ROWS_1M,
        "columns": f"{N_NUMERIC} numeric + 2 categorical",
        "shifted_columns": ", ".join(SHIFTED),
        "generate_seconds": generated,
        "loopline_seconds": loopline_s,
        "loopline_seconds_runs": loopline_runs,
        "loopline_peak_mb": loopline_mb,
        "numpy_scipy_seconds": plain_s,
        "numpy_scipy_seconds_runs": plain_runs,
        "numpy_scipy_peak_mb": plain_mb,
        "evidently_default_seconds": evidently_s,
        "evidently_default_peak_mb": evidently_mb,
        "ratio_vs_numpy_scipy": ratio,
        "speedup_vs_evidently": speedup,
        "same_psi_ks_as_numpy_scipy": same_statistics,
        "loopline_drifted": ", ".join(loopline_drifted),
        "evidently_drifted": ", ".join(evidently_drifted),
        "verdicts_agree": loopline_drifted == evidently_drifted == sorted(SHIFTED),
        "cli_seconds": cli_s,
        "cli_exit_code": proc.returncode,
        "cli_flags_exactly_shifted": cli_flagged == sorted(SHIFTED),
        "targets_met": drift_targets_met(ratio, speedup),
    }]


def same_psi_ks(features: dict[str, dict[str, float]], plain: dict[str, dict[str, float]]) -> bool:
    """Whether Loopline's per-feature statistics equal the plain numpy/scipy ones (`plain_psi_ks`)."""
    return all(
        abs(features[c]["psi"] - v["psi"]) < 1e-9
        and ("ks_p_value" not in v or (abs(features[c]["ks_statistic"] - v["ks_statistic"]) < 1e-12
                                       and abs(features[c]["ks_p_value"] - v["ks_p_value"]) < 1e-12))
        for c, v in plain.items()
    )


def drift_targets_met(ratio_vs_plain: float, speedup_vs_evidently: float) -> bool:
    return ratio_vs_plain <= DRIFT_RATIO_TARGET and speedup_vs_evidently >= EVIDENTLY_SPEEDUP_TARGET

def corrupted_batch(n_rows: int, *, seed: int) -> pd.DataFrame:
    """A batch like the reference, with faults a suite should see: 3% of num_02 far out of range,
    two infinite values in num_03, 2% nulls in num_01 (tolerated), a new category in 0.5% of cat_0
    (an evolution)."""
    frame = wide_frame(n_rows, seed=seed)
    rng = np.random.default_rng(seed + 100)
    frame.loc[rng.choice(n_rows, n_rows * 3 // 100, replace=False), "num_02"] = 1e6
    frame.loc[[5, 7], "num_03"] = np.inf
    frame.loc[rng.choice(n_rows, n_rows // 50, replace=False), "num_01"] = np.nan
    frame.loc[rng.choice(n_rows, n_rows // 200, replace=False), "cat_0"] = "cat_new"
    return frame

def pandas_checks(frame: pd.DataFrame, expectations) -> list[bool]:
    """The same checks as the suite, in pandas: one success per expectation, in order."""
    out = []
    for e in expectations:
        kw, t = e.kwargs, e.type
        col = frame[kw["column"]] if kw.get("column") in frame.columns else None
        mostly = kw.get("mostly", 1.0)
        if t == "expect_table_row_count_to_be_between":
            ok = kw.get("min_value", 0) <= len(frame) <= kw.get("max_value", float("inf"))
        elif t == "expect_table_columns_to_match_set":
            ok = set(frame.columns) == set(kw["column_set"])
        elif t == "expect_column_to_exist":
            ok = col is not None
        elif t == "expect_column_values_to_not_be_null":
            ok = col.notna().mean() >= mostly
        elif t == "expect_column_values_to_be_in_type_list":
            ok = (pd.api.types.is_numeric_dtype(col) if "float64" in kw["type_list"]
                  else col.dropna().map(type).eq(str).all())
        elif t == "expect_column_values_to_be_between":
            values = col.dropna()
            ok = values.between(kw["min_value"], kw["max_value"]).mean() >= mostly if len(values) else True
        elif t == "expect_column_max_to_be_between":
            ok = col.max() <= kw["max_value"]
        elif t == "expect_column_min_to_be_between":
            ok = col.min() >= kw["min_value"]
        elif t == "expect_column_values_to_be_in_set":
            values = col.dropna()
            ok = values.isin(kw["value_set"]).mean() >= mostly if len(values) else True
        elif t == "expect_compound_columns_to_be_unique":
            hashed = pd.util.hash_pandas_object(frame[kw["column_list"]], index=False)
            ok = (~hashed.duplicated(keep=False)).mean() >= mostly
        else:
            raise ValueError(f"no pandas check for {t}")
        out.append(bool(ok))
    return out

def bench_validate_1m(home: Path) -> list[dict[str, Any]]:
    folder = home / "validate_1m"
    folder.mkdir(parents=True, exist_ok=True)
    reference = wide_frame(ROWS_1M, seed=1)
    batch = corrupted_batch(ROWS_1M, seed=3)
    # Warm up both engines (imports, GX's metric registry) on a few rows: not timed.
    settings = validation.ValidationSettings()
    small = validation_suite.infer_suite(reference.head(1000), max_null_fraction=settings.max_null_fraction)
    validation.run_suite({"warm-up": batch.head(1000)}, small, skew_threshold=settings.skew_threshold)
    print(f"validate_1m: {ROWS_1M:,} rows; Loopline (infer the suite, validate with GX, Data Docs) ...", flush=True)

    report_path = folder / "validation.html"
    runs: dict[str, list[float]] = {"infer": [], "run": [], "render": [], "loopline": [], "gx": []}
    for _ in range(REPEATS):  # alternating, best of each: the machine is shared
        suite, infer_s, _ = timed(lambda: validation_suite.infer_suite(reference, max_null_fraction=settings.max_null_fraction))
        report, run_s, run_mb = timed(lambda s=suite: validation.run_suite({"batch": batch}, s, skew_threshold=settings.skew_threshold))
        _, render_s, _ = timed(
            lambda r=report, s=suite: report_path.write_text(validation_report.render_html(r, s), encoding="utf-8"))
        for key, value in (("infer", infer_s), ("run", run_s), ("render", render_s)):
            runs[key].append(value)
        runs["loopline"].append(round(infer_s + run_s + render_s, 3))
        print(f"validate_1m: Loopline {runs['loopline'][-1]}s; GX's own validate of the same suite ...", flush=True)
        runner = validation._Runner(suite)  # GX's own context, suite and batch, built once: not timed
        gx_result, gx_s, gx_mb = timed(lambda r=runner: r.validate(batch))
        runs["gx"].append(gx_s)
        print(f"validate_1m: GX {gx_s}s", flush=True)
    best = runs["loopline"].index(min(runs["loopline"]))
    loopline_s, gx_s = runs["loopline"][best], min(runs["gx"])
    infer_s, run_s, render_s = runs["infer"][best], runs["run"][best], runs["render"][best]
    gx_verdicts = [bool(r.success) for r in gx_result.results]
    print("validate_1m: the same checks in pandas ...", flush=True)
    pandas_verdicts, pandas_s, _ = timed(lambda: pandas_checks(batch, [_spec_of(r) for r in gx_result.results]))
    loopline_verdicts = [c.success for c in report.splits[0].checks]
    ratio = round(loopline_s / gx_s, 3)
    return [{
        "name": "validate_1m",
        "rows": ROWS_1M,
        "columns": f"{N_NUMERIC} numeric + 2 categorical",
        "expectations": len(suite.expectations),
        "loopline_seconds": loopline_s,
        "loopline_seconds_runs": runs["loopline"],
        "loopline_infer_suite_seconds": infer_s,
        "loopline_validate_seconds": run_s,
        "loopline_data_docs_seconds": render_s,
        "loopline_peak_mb": run_mb,
        "gx_validate_seconds": gx_s,
        "gx_validate_seconds_runs": runs["gx"],
        "gx_peak_mb": gx_mb,
        "pandas_seconds": pandas_s,
        "ratio_vs_gx": ratio,
        "outcome": report.outcome,
        "failed": ", ".join(f"{c.expectation}({c.column})" for c in report.splits[0].failures),
        "verdicts_agree_gx": loopline_verdicts == gx_verdicts,
        "verdicts_agree_pandas": pandas_verdicts == gx_verdicts,
        "targets_met": ratio <= VALIDATE_RATIO_TARGET,
    }]

def _spec_of(gx_result):
    config = gx_result.expectation_config
    return ExpectationSpec(config.type, dict(config.kwargs))
